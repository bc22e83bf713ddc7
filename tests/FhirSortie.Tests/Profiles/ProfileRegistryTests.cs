using FhirSortie.Server.Profiles;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Configuration;

namespace FhirSortie.Tests.Profiles;

/// <summary>A profile that does not compile stops the start rather than validating against half a profile.</summary>
public sealed class ProfileRegistryTests
{
    private static IEnumerable<StructureDefinition> Base() =>
        ((Bundle)ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "base", "r4-base-structuredefinitions.json")))
        .Entry.Select(e => e.Resource).OfType<StructureDefinition>();

    private static StructureDefinition Profile(params ElementDefinition[] elements) => new()
    {
        Url = "https://fhirsortie.fr/fhir/StructureDefinition/Test",
        Name = "Test",
        Status = PublicationStatus.Draft,
        Kind = StructureDefinition.StructureDefinitionKind.Resource,
        Abstract = false,
        Type = "Patient",
        BaseDefinition = "http://hl7.org/fhir/StructureDefinition/Patient",
        Derivation = StructureDefinition.TypeDerivationRule.Constraint,
        Differential = new StructureDefinition.DifferentialComponent { Element = [.. elements] },
    };

    [Fact]
    public void Unknown_element_path_is_refused()
    {
        var e = Assert.Throws<InvalidOperationException>(() => new ProfileRegistry([Profile(new ElementDefinition("Patient.nickname") { Min = 1 })], Base()));
        Assert.Contains("Patient.nickname does not exist in R4", e.Message);
    }

    private static ElementDefinition.SlicingComponent SlicedBySystem() => new()
    {
        Rules = ElementDefinition.SlicingRules.Open,
        Discriminator = [new ElementDefinition.DiscriminatorComponent { Type = ElementDefinition.DiscriminatorType.Value, Path = "system" }],
    };

    [Fact]
    public void Differential_out_of_base_element_order_is_refused()
    {
        // Patient.identifier comes before Patient.name in R4: the official snapshot generator refuses this order.
        var e = Assert.Throws<InvalidOperationException>(() => new ProfileRegistry(
            [Profile(new ElementDefinition("Patient.name") { Min = 1 }, new ElementDefinition("Patient.identifier") { Min = 1 })], Base()));
        Assert.Contains("Test: differential element Patient.identifier is out of base element order (it comes after Patient.name)", e.Message);
    }

    [Fact]
    public void Differential_returning_to_an_earlier_slice_is_refused()
    {
        var slicing = SlicedBySystem();
        var e = Assert.Throws<InvalidOperationException>(() => new ProfileRegistry([Profile(
            new ElementDefinition("Patient.identifier") { Slicing = slicing },
            new ElementDefinition("Patient.identifier") { ElementId = "Patient.identifier:a", SliceName = "a" },
            new ElementDefinition("Patient.identifier") { ElementId = "Patient.identifier:b", SliceName = "b" },
            new ElementDefinition("Patient.identifier.system") { ElementId = "Patient.identifier:a.system", Fixed = new FhirUri("urn:a") },
            new ElementDefinition("Patient.identifier.system") { ElementId = "Patient.identifier:b.system", Fixed = new FhirUri("urn:b") })], Base()));
        Assert.Contains("differential element Patient.identifier:a.system is out of base element order (it comes after Patient.identifier:b)", e.Message);
    }

    [Fact]
    public void Differential_in_base_element_order_with_slices_and_data_type_paths_loads()
    {
        var slicing = SlicedBySystem();
        var registry = new ProfileRegistry([Profile(
            new ElementDefinition("Patient.identifier") { Slicing = slicing },
            new ElementDefinition("Patient.identifier.use") { Min = 1 },
            new ElementDefinition("Patient.identifier") { ElementId = "Patient.identifier:a", SliceName = "a" },
            new ElementDefinition("Patient.identifier.system") { ElementId = "Patient.identifier:a.system", Fixed = new FhirUri("urn:a") },
            new ElementDefinition("Patient.identifier.value") { ElementId = "Patient.identifier:a.value", Min = 1 },
            new ElementDefinition("Patient.identifier") { ElementId = "Patient.identifier:b", SliceName = "b" },
            new ElementDefinition("Patient.identifier.system") { ElementId = "Patient.identifier:b.system", Fixed = new FhirUri("urn:b") },
            new ElementDefinition("Patient.name.family") { Min = 1 },
            new ElementDefinition("Patient.contact.name.family") { Min = 1 })], Base());
        Assert.Single(registry.Profiles);
    }

    [Fact]
    public void Target_profile_of_a_type_the_base_element_does_not_allow_is_refused()
    {
        var element = new ElementDefinition("Patient.generalPractitioner")
        {
            Type = [new ElementDefinition.TypeRefComponent { Code = "Reference", TargetProfile = ["http://hl7.org/fhir/StructureDefinition/Patient"] }],
        };
        var e = Assert.Throws<InvalidOperationException>(() => new ProfileRegistry([Profile(element)], Base()));
        Assert.Contains("Test: Patient.generalPractitioner targets Patient, which R4 does not allow there (allowed: Organization, Practitioner, PractitionerRole)", e.Message);
    }

    [Fact]
    public void Binding_to_a_value_set_not_shipped_is_refused()
    {
        var element = new ElementDefinition("Patient.maritalStatus")
        {
            Binding = new ElementDefinition.ElementDefinitionBindingComponent { Strength = BindingStrength.Required, ValueSet = "https://example.org/ValueSet/none" },
        };
        var e = Assert.Throws<InvalidOperationException>(() => new ProfileRegistry([Profile(element)], Base()));
        Assert.Contains("not shipped", e.Message);
    }

    [Fact]
    public void Constraint_that_does_not_parse_is_refused()
    {
        var element = new ElementDefinition("Patient")
        {
            Constraint = [new ElementDefinition.ConstraintComponent { Key = "t-1", Severity = ConstraintSeverity.Error, Human = "broken", Expression = "name.where(" }],
        };
        var e = Assert.Throws<InvalidOperationException>(() => new ProfileRegistry([Profile(element)], Base()));
        Assert.Contains("t-1", e.Message);
    }

    [Fact]
    public void Data_type_paths_are_resolved_through_the_base_types()
    {
        var registry = new ProfileRegistry([Profile(new ElementDefinition("Patient.contact.name.family") { Min = 1 })], Base());
        var run = new ProfileValidator(registry).Validate(
            new Patient { Contact = [new Patient.ContactComponent { Name = new HumanName { Given = ["Ana"] } }] },
            ["https://fhirsortie.fr/fhir/StructureDefinition/Test"]);
        Assert.Contains(run.Issues, i => i.Expression.Contains("Patient.contact[0].name.family"));
    }

    [Fact]
    public void Base_minimum_cardinality_is_checked_for_profiled_types()
    {
        var consent = (Consent)ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", "valid", "Consent-treatment.json"));
        consent.Scope = null!;
        var run = ProfileFixture.Validate(consent);
        Assert.Contains(run.Issues, i => i.Expression.Contains("Consent.scope") && i.Diagnostics!.Contains("http://hl7.org/fhir/StructureDefinition/Consent"));
    }

    [Fact]
    public void Core_FHIR_profile_not_shipped_gives_a_warning_not_an_error()
    {
        var run = ProfileFixture.Validator.Validate(new CodeSystem { Status = PublicationStatus.Draft, Content = CodeSystemContentMode.Complete },
            ["http://hl7.org/fhir/StructureDefinition/shareablecodesystem"]);
        Assert.False(run.HasErrors);
        Assert.Equal(OperationOutcome.IssueSeverity.Warning, Assert.Single(run.Issues).Severity);
    }

    [Theory]
    [InlineData(BindingStrength.Required, "http://terminology.hl7.org/CodeSystem/v3-ActCode", "PSY", null)]
    [InlineData(BindingStrength.Required, "http://terminology.hl7.org/CodeSystem/v3-ActCode", "XYZ", OperationOutcome.IssueSeverity.Error)]
    [InlineData(BindingStrength.Required, "http://example.org/codes", "PSY", OperationOutcome.IssueSeverity.Error)]
    [InlineData(BindingStrength.Extensible, "http://terminology.hl7.org/CodeSystem/v3-ActCode", "XYZ", OperationOutcome.IssueSeverity.Error)]
    [InlineData(BindingStrength.Extensible, "http://example.org/codes", "PSY", OperationOutcome.IssueSeverity.Warning)]
    public void Bindings_by_strength(BindingStrength strength, string system, string code, OperationOutcome.IssueSeverity? expected)
    {
        var shipped = Directory.EnumerateFiles(ProfileFixture.Folder, "*.json").Select(ProfileFixture.Read).Where(r => r is ValueSet or CodeSystem);
        var element = new ElementDefinition("Patient.maritalStatus")
        {
            Binding = new ElementDefinition.ElementDefinitionBindingComponent { Strength = strength, ValueSet = "https://fhirsortie.fr/fhir/ValueSet/sharing-security-labels" },
        };
        var registry = new ProfileRegistry([.. shipped, Profile(element)], Base());
        var run = new ProfileValidator(registry).Validate(new Patient { MaritalStatus = new CodeableConcept(system, code) }, ["https://fhirsortie.fr/fhir/StructureDefinition/Test"]);
        var issue = run.Issues.SingleOrDefault(i => i.Expression.Contains("Patient.maritalStatus"));
        Assert.Equal(expected, issue?.Severity);
    }

    [Fact]
    public void Mandatory_profiles_proposed_in_appsettings_load_for_their_types()
    {
        // The proposal is commented out in appsettings.json (nothing mandatory by default); it must stay loadable.
        string? file = null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null && file is null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "src", "FhirSortie.Server", "appsettings.json");
            if (File.Exists(candidate)) file = candidate;
        }
        Assert.NotNull(file);
        var proposed = System.Text.RegularExpressions.Regex.Matches(File.ReadAllText(file), @"//\s+""(\w+)"":\s+""([^""]+)""")
            .ToDictionary(m => $"{ProfileEnforcement.RequiredSection}:{m.Groups[1].Value}", m => (string?)m.Groups[2].Value);
        Assert.Equal(5, proposed.Count);
        var configuration = new ConfigurationBuilder().AddJsonFile(file).AddInMemoryCollection(proposed).Build();

        var enforcement = ProfileEnforcement.FromConfiguration(ProfileFixture.Validator, configuration);

        Assert.Equal(["https://fhirsortie.fr/fhir/StructureDefinition/ExitReferral"], enforcement.ProfilesFor(new ServiceRequest()));
        Assert.Empty(enforcement.ProfilesFor(new Hl7.Fhir.Model.Task()));
    }
}
