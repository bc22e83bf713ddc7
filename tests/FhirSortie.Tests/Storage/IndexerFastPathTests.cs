using System.Text;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Tests.Rest;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Storage;

/// <summary>
/// The indexer walks plain element paths on the POCO and skips parameters whose first element the instance lacks,
/// instead of running FHIRPath for every parameter (write-path CPU). Those shortcuts must give exactly the index rows
/// the FHIRPath engine gives: compared on the official R4 examples, the gateway's profile examples and the exit
/// package, with references in the forms resolve() sees once a transaction has rewritten them.
/// </summary>
public sealed class IndexerFastPathTests
{
    private static readonly string Repository = FindRepository();
    private static readonly SearchParameters Parameters = new(SearchParameters.LoadCustom(Path.Combine(Repository, "conformance", "searchparameters")));
    private static readonly Compartments Compartments = Compartments.Load(Path.Combine(Repository, "conformance"));
    private static readonly ResourceIndexer Fast = new(Parameters, Compartments);
    private static readonly ResourceIndexer FhirPathOnly = new(Parameters, Compartments) { FhirPathOnly = true, SkipAbsentElements = false };

    [OfficialExamplesTheory]
    [MemberData(nameof(OfficialJson))]
    public void Official_example_gets_the_same_index_rows_as_with_fhirpath_alone(string file)
    {
        foreach (var resource in ResourcesOf(Path.Combine(OfficialExamples.Folder!, file))) AssertSameRows(resource);
    }

    public static TheoryData<string> OfficialJson() => OfficialExamples.Files("json");

    [Fact]
    public void Profile_examples_and_the_exit_package_get_the_same_index_rows_as_with_fhirpath_alone()
    {
        var files = Directory.EnumerateFiles(Path.Combine(Repository, "profiles", "examples", "valid"), "*.json")
            .Append(Path.Combine(Repository, "conformance", "scenarios", "exit-package-transaction.json")).ToList();
        var count = 0;
        foreach (var file in files)
            foreach (var resource in ResourcesOf(file))
            {
                AssertSameRows(resource);
                count++;
            }
        Assert.True(count > 20, $"only {count} resources compared");
    }

    [Fact]
    public void Patient_reference_is_indexed_only_when_it_resolves_to_a_patient()
    {
        var observation = new Observation
        {
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "1234-5"),
            Subject = new ResourceReference("Group/g1"),
        };
        Assert.DoesNotContain(Fast.Index(observation).References, r => r.Param == "patient");
        AssertSameRows(observation);

        observation.Subject = new ResourceReference("http://other.example/fhir/Patient/p9");
        Assert.Contains(Fast.Index(observation).References, r => r.Param == "patient" && r.TargetId == "p9");
        AssertSameRows(observation);

        observation.Subject = new ResourceReference("#p1");
        observation.Contained.Add(new Patient { Id = "p1" });
        AssertSameRows(observation); // contained references are not indexed as references, either way

        observation.Subject = new ResourceReference { Identifier = new Identifier("urn:oid:1.2.250.1.213.1.4.8", "1234567890123") };
        AssertSameRows(observation);

        observation.Subject = new ResourceReference("urn:uuid:6f2c8d1e-0000-4000-8000-000000000001");
        AssertSameRows(observation);
    }

    [Fact]
    public void Parameter_whose_element_is_absent_indexes_nothing_and_one_present_is_indexed()
    {
        var patient = new Patient { BirthDate = "1980-02" };
        var entries = Fast.Index(patient);
        Assert.Single(entries.Dates, d => d.Param == "birthdate");
        Assert.Empty(entries.Strings);
        AssertSameRows(patient);
        patient.Name.Add(new HumanName { Family = "Élise" });
        Assert.Contains(Fast.Index(patient).Strings, s => s.Param == "family" && s.Value == "elise");
        AssertSameRows(patient);
    }

    [Fact]
    public void Casts_unions_and_composites_get_the_same_index_rows_as_with_fhirpath_alone()
    {
        Quantity Kg(decimal v) => new() { Value = v, System = "http://unitsofmeasure.org", Code = "kg", Unit = "kilogram" };
        var observation = new Observation
        {
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "29463-7"),
            Value = Kg(72),
            // _tag, _security, _profile, _source: expressions written without the type ("meta.tag").
            Meta = new Meta
            {
                Tag = [new Coding("urn:test", "t1")],
                Security = [new Coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"), new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "ETH")],
                Profile = ["https://fhirsortie.example/StructureDefinition/weight"],
                Source = "urn:usmp:1",
            },
        };
        AssertSameRows(observation);
        Assert.Equal(2, Fast.Index(observation).Tokens.Count(t => t.Param == "_security"));
        // Components: "as" applied to several values, and a union (value | component.value) with more than one value.
        observation.Component.Add(new Observation.ComponentComponent { Code = new CodeableConcept("http://loinc.org", "8480-6"), Value = Kg(1) });
        AssertSameRows(observation);
        observation.Component.Add(new Observation.ComponentComponent { Code = new CodeableConcept("http://loinc.org", "8462-4"), Value = Kg(2) });
        AssertSameRows(observation);
        // The same value twice in a union: FHIRPath keeps one.
        observation.Component.Add(new Observation.ComponentComponent { Code = new CodeableConcept("http://loinc.org", "29463-7"), Value = Kg(72) });
        AssertSameRows(observation);
        foreach (DataType value in new DataType[]
        {
            new FhirString("positive"), new CodeableConcept { Text = "trace" }, new CodeableConcept("http://snomed.info/sct", "10828004"),
            new FhirBoolean(true), new FhirDateTime("2026-11-02"), new Period { Start = "2026-11-01" }, new Integer(3),
            new Age { Value = 40, Code = "a", System = "http://unitsofmeasure.org" },
        })
        {
            observation.Value = value;
            observation.Component[0].Value = (DataType)value.DeepCopy();
            AssertSameRows(observation);
        }

        var organization = new Organization { Name = "CSAPA Lyon" };
        organization.AliasElement.Add(new FhirString("CSAPA Lyon"));
        AssertSameRows(organization);
        organization.AliasElement.Add(new FhirString("Centre de soins"));
        AssertSameRows(organization);

        var request = new MedicationRequest
        {
            Status = MedicationRequest.MedicationrequestStatus.Active,
            Intent = MedicationRequest.MedicationRequestIntent.Order,
            Subject = new ResourceReference("Patient/p1"),
            Medication = new ResourceReference("Medication/m1"),
        };
        AssertSameRows(request);
        request.Medication = new CodeableConcept("http://www.whocc.no/atc", "N07BC01");
        AssertSameRows(request);
    }

    [Theory]
    [InlineData("Patient.name | Patient.address.city", "Patient", "name,address")]
    [InlineData("(Observation.value as Quantity) | (Observation.value as SampledData)", "Observation", "value")]
    [InlineData("Resource.meta.tag", "Patient", "meta")]
    [InlineData("(Patient.name | Patient.telecom).where(use = 'official')", "Patient", null)]
    [InlineData("Patient.deceased.exists() and Patient.deceased != false", "Patient", null)]
    [InlineData("%resource.name", "Patient", null)]
    [InlineData("Observation", "Observation", null)]
    [InlineData("name | alias", "Organization", null)]
    [InlineData("meta.tag", "Organization", "meta")]
    [InlineData("meta.tag.exists() and name.exists()", "Organization", null)]
    public void Roots_are_the_first_element_of_each_branch_or_unknown(string expression, string type, string? expected) =>
        Assert.Equal(expected, ResourceIndexer.Roots(expression, type) is { } roots ? string.Join(',', roots) : null);

    private static void AssertSameRows(Resource resource) =>
        Assert.Equal(Rows(FhirPathOnly.Index(resource)), Rows(Fast.Index(resource)));

    /// <summary>Every row of every index table, as sorted text (row order is not meaningful).</summary>
    private static List<string> Rows(IndexEntries e) =>
        e.Strings.Select(x => x.ToString())
            .Concat(e.Tokens.Select(x => x.ToString()))
            .Concat(e.References.Select(x => x.ToString()))
            .Concat(e.Dates.Select(x => x.ToString()))
            .Concat(e.Numbers.Select(x => x.ToString()))
            .Concat(e.Quantities.Select(x => x.ToString()))
            .Concat(e.Uris.Select(x => x.ToString()))
            .Concat(e.Composites.Select(x => x.ToString()))
            .Concat(e.Compartments.Select(x => x.ToString()))
            .Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// The resource of a file, and for a Bundle its entries too, with urn:uuid references replaced by Type/id as a
    /// transaction rewrites them (so resolve() branches run). Files the strict parser refuses are not compared.
    /// </summary>
    private static IEnumerable<Resource> ResourcesOf(string file)
    {
        var text = File.ReadAllText(file);
        Resource parsed;
        try
        {
            parsed = FhirFormat.Parse(Encoding.UTF8.GetBytes(text), WireFormat.Json);
        }
        catch (FhirException)
        {
            yield break;
        }
        yield return parsed;
        if (parsed is not Bundle bundle) yield break;
        foreach (var entry in bundle.Entry)
        {
            if (entry.FullUrl is { } url && url.StartsWith("urn:uuid:", StringComparison.Ordinal) && entry.Resource is { } r)
                text = text.Replace($"\"{url}\"", $"\"{r.TypeName}/{url["urn:uuid:".Length..]}\"", StringComparison.Ordinal);
        }
        var rewritten = (Bundle)FhirFormat.Parse(Encoding.UTF8.GetBytes(text), WireFormat.Json);
        foreach (var entry in rewritten.Entry)
            if (entry.Resource is { } resource) yield return resource;
    }

    private static string FindRepository()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FhirSortie.sln"))) return dir.FullName;
        throw new InvalidOperationException("Run from inside the FhirSortie repository.");
    }
}
