using Firely.Fhir.Validation;
using Hl7.Fhir.Model;
using Hl7.Fhir.Specification.Snapshot;
using Hl7.Fhir.Specification.Source;
using Hl7.Fhir.Specification.Terminology;

namespace FhirSortie.Tests.Profiles;

/// <summary>
/// profiles/ and conformance/scenarios/ checked by Firely's official validator (Firely.Fhir.Validation.R4, with the
/// R4 specification.zip): our compiled validator covers only the rules we rely on, so this is where what it does
/// not check (base invariants, base reference targets, snapshot generation of our differentials) is caught.
/// </summary>
public sealed class OfficialValidatorTests
{
    public static TheoryData<string> StructureDefinitions() =>
        new(Directory.EnumerateFiles(ProfileFixture.Folder, "StructureDefinition-*.json").Select(Path.GetFileName).Order(StringComparer.Ordinal)!);

    public static TheoryData<string> ValidExamples() => new(ProfileFixture.Examples("valid").Select(Path.GetFileName)!);

    public static TheoryData<string> Scenarios() =>
        new(Directory.EnumerateFiles(OfficialValidator.ScenarioFolder, "*.json").Select(Path.GetFileName).Order(StringComparer.Ordinal)!);

    [Theory]
    [MemberData(nameof(StructureDefinitions))]
    public async System.Threading.Tasks.Task StructureDefinition_gets_an_official_snapshot_and_validates(string file)
    {
        var sd = (StructureDefinition)ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, file));
        var problems = await OfficialValidator.SnapshotProblemsAsync(sd);
        problems.AddRange(OfficialValidator.Errors(sd));
        Assert.True(problems.Count == 0, $"{file}:\n  " + string.Join("\n  ", problems));
    }

    [Theory]
    [MemberData(nameof(ValidExamples))]
    public void Valid_example_has_no_errors_for_the_official_validator(string file)
    {
        var resource = ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", "valid", file));
        var errors = OfficialValidator.Errors(resource);
        Assert.True(errors.Count == 0, $"{file}:\n  " + string.Join("\n  ", errors));
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Scenario_bundle_has_no_errors_for_the_official_validator(string file)
    {
        var bundle = ProfileFixture.Read(Path.Combine(OfficialValidator.ScenarioFolder, file));
        var errors = OfficialValidator.Errors(bundle);
        Assert.True(errors.Count == 0, $"{file}:\n  " + string.Join("\n  ", errors));
    }

    public static TheoryData<string> DemoPackages() =>
        new(FhirSortie.Server.Demo.DemoPackages.All(DateTimeOffset.UtcNow).Select(p => p.Name));

    [Theory]
    [MemberData(nameof(DemoPackages))]
    public void Demo_package_has_no_errors_for_the_official_validator(string name)
    {
        var package = FhirSortie.Server.Demo.DemoPackages.All(DateTimeOffset.UtcNow).Single(p => p.Name == name);
        var errors = OfficialValidator.Errors(package.Transaction);
        Assert.True(errors.Count == 0, $"{name}:\n  " + string.Join("\n  ", errors));
    }

    [Fact]
    public void The_official_validator_finds_a_reference_to_a_type_R4_does_not_allow()
    {
        // Guards the tests above against a validator set up to find nothing: it checks the types of the targets it
        // can resolve (contained, in the Bundle), as it did for the exit package's reasonReference to its prescription.
        var referral = (ServiceRequest)ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", "valid", "ServiceRequest-exit-referral-csapa.json"));
        referral.Contained = [new MedicationRequest
        {
            Id = "bup", Status = MedicationRequest.MedicationrequestStatus.Active, Intent = MedicationRequest.MedicationRequestIntent.Order,
            Medication = new CodeableConcept("http://www.whocc.no/atc", "N07BC01"), Subject = new ResourceReference("Patient/example-ins"),
        }];
        referral.SupportingInfo = [];
        referral.ReasonReference = [new ResourceReference("#bup")];
        Assert.Contains(OfficialValidator.Errors(referral), e => e.Contains("is of type 'MedicationRequest', which is not one of the allowed target types", StringComparison.Ordinal));
    }
}

/// <summary>
/// Firely's validator over profiles/ (our differentials, snapshots generated on the fly) and the R4 core
/// definitions and terminology of specification.zip. Not thread-safe (Firely's warning): one caller at a time.
/// </summary>
internal static class OfficialValidator
{
    public static string ScenarioFolder => Path.Combine(AppContext.BaseDirectory, "conformance", "scenarios");

    private static readonly Lock Gate = new();

    private static readonly Lazy<(IAsyncResourceResolver Resolver, Validator Validator)> Shared = new(() =>
    {
        var ours = new DirectorySource(ProfileFixture.Folder, new DirectorySourceSettings { IncludeSubDirectories = false });
        var core = ZipSource.CreateValidationSource(Path.Combine(AppContext.BaseDirectory, "specification.zip"));
        var resolver = new CachedResolver(new SnapshotSource(new CachedResolver(new MultiResolver(ours, core))));
        var terminology = LocalTerminologyService.CreateDefaultForCore(resolver);
        return (resolver, new Validator(resolver, terminology));
    });

    /// <summary>The error and fatal issues, one readable line each (location: text), minus the known exclusions.</summary>
    public static List<string> Errors(Resource resource)
    {
        OperationOutcome outcome;
        lock (Gate) outcome = Shared.Value.Validator.Validate(resource);
        return outcome.Issue
            .Where(i => i.Severity is OperationOutcome.IssueSeverity.Error or OperationOutcome.IssueSeverity.Fatal)
            .Where(i => !Excluded(i))
            .Select(i => $"{string.Join(",", i.Expression.Concat(i.Location).Distinct())}: {i.Details?.Text ?? i.Diagnostics}")
            .ToList();
    }

    /// <summary>
    /// ref-1 ("SHALL have a contained resource if a local reference is provided"): its R4 expression misfires in SDK
    /// 6.8 on a Reference without a literal reference (identifier only, as our consents name their organisation).
    /// Mime-type checks need a terminology server: offline they are warnings, which these tests do not count.
    /// </summary>
    private static bool Excluded(OperationOutcome.IssueComponent issue) =>
        (issue.Details?.Text ?? issue.Diagnostics ?? "").Contains("constraint ref-1 ", StringComparison.Ordinal);

    /// <summary>What the official snapshot generator says about a differential (out of order elements, unknown paths...).</summary>
    public static async System.Threading.Tasks.Task<List<string>> SnapshotProblemsAsync(StructureDefinition sd)
    {
        var copy = (StructureDefinition)sd.DeepCopy();
        var generator = new SnapshotGenerator(Shared.Value.Resolver, SnapshotGeneratorSettings.CreateDefault());
        await generator.UpdateAsync(copy);
        return generator.Outcome?.Issue
            .Where(i => i.Severity is OperationOutcome.IssueSeverity.Error or OperationOutcome.IssueSeverity.Fatal)
            .Select(i => $"{string.Join(",", i.Expression.Concat(i.Location).Distinct())}: {i.Details?.Text ?? i.Diagnostics}")
            .ToList() ?? [];
    }
}
