using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Mapping;

/// <summary>ConceptMap/$translate over the ConceptMaps shipped in profiles/, type and instance level, GET and POST.</summary>
public abstract class TranslateTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();
    private const string Local = "https://logiciel-usmp.example.fr/CodeSystem/livret-therapeutique";

    private static Parameters.ParameterComponent Match(Parameters result) => Assert.Single(result.Parameter, p => p.Name == "match");

    private static string? Part(Parameters.ParameterComponent match, string name) => match.Part.Single(p => p.Name == name).Value switch
    {
        Coding c => $"{c.System}|{c.Code}",
        var v => v?.ToString(),
    };

    [Fact]
    public async Task Get_translates_a_local_medicine_code_to_ATC()
    {
        var result = await (await _fhir.GetAsync($"ConceptMap/$translate?system={Uri.EscapeDataString(Local)}&code=MTD-SIR-60&targetsystem=http://www.whocc.no/atc")).ReadAs<Parameters>();
        Assert.Equal(true, ((FhirBoolean)result.Parameter.Single(p => p.Name == "result").Value!).Value);
        var match = Match(result);
        Assert.Equal("wider", Part(match, "equivalence"));
        Assert.Equal("http://www.whocc.no/atc|N07BC02", Part(match, "concept"));
        Assert.Equal("https://fhirsortie.fr/fhir/ConceptMap/usmp-local-medications-atc", Part(match, "source"));
    }

    [Fact]
    public async Task Post_with_a_coding_in_Parameters_translates_it()
    {
        var parameters = new Parameters();
        parameters.Add("coding", new Coding(Local, "NALOX-NAS"));
        var response = await _fhir.PostAsync("ConceptMap/$translate", FhirHttp.Json(parameters));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("http://www.whocc.no/atc|V03AB15", Part(Match(await response.ReadAs<Parameters>()), "concept"));
    }

    [Fact]
    public async Task Instance_level_uses_only_that_ConceptMap()
    {
        var section = await (await _fhir.GetAsync("ConceptMap/ldl-ses-sections/$translate?system=http://loinc.org&code=42349-1")).ReadAs<Parameters>();
        Assert.Equal("http://loinc.org|29299-5", Part(Match(section), "concept"));
        var other = await (await _fhir.GetAsync($"ConceptMap/ldl-ses-sections/$translate?system={Uri.EscapeDataString(Local)}&code=BUP-SL-8")).ReadAs<Parameters>();
        Assert.Equal(false, ((FhirBoolean)other.Parameter.Single(p => p.Name == "result").Value!).Value);
    }

    [Fact]
    public async Task Unmatched_and_unknown_codes_give_result_false()
    {
        foreach (var code in new[] { "PREP-MAG", "NO-SUCH-CODE" })
        {
            var result = await (await _fhir.GetAsync($"ConceptMap/$translate?system={Uri.EscapeDataString(Local)}&code={code}")).ReadAs<Parameters>();
            Assert.Equal(false, ((FhirBoolean)result.Parameter.Single(p => p.Name == "result").Value!).Value);
            Assert.DoesNotContain(result.Parameter, p => p.Name == "match");
        }
    }

    [Fact]
    public async Task Unknown_ConceptMap_gets_404()
    {
        var response = await _fhir.GetAsync("ConceptMap/no-such-map/$translate?system=http://loinc.org&code=42349-1");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Missing_concept_or_reverse_gets_400()
    {
        Assert.Equal(HttpStatusCode.BadRequest, (await _fhir.GetAsync("ConceptMap/$translate?targetsystem=http://www.whocc.no/atc")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _fhir.GetAsync("ConceptMap/$translate?code=BUP-SL-8")).StatusCode);
        var reverse = await _fhir.GetAsync("ConceptMap/$translate?system=http://www.whocc.no/atc&code=N07BC01&reverse=true");
        Assert.Equal(HttpStatusCode.BadRequest, reverse.StatusCode);
        Assert.Equal(OperationOutcome.IssueType.NotSupported, Assert.Single((await reverse.ReadAs<OperationOutcome>()).Issue).Code);
    }

    [Fact]
    public async Task CapabilityStatement_lists_the_mapping_operations()
    {
        var statement = await (await _fhir.GetAsync("metadata")).ReadAs<CapabilityStatement>();
        var resources = statement.Rest[0].Resource;
        Assert.Contains(resources.Single(r => r.Type == "DocumentReference").Operation, o => o.Name == "import-cda");
        Assert.Contains(resources.Single(r => r.Type == "ConceptMap").Operation, o => o.Name == "translate");
    }
}

public sealed class SqliteTranslateTests(SqliteGateway gateway) : TranslateTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresTranslateTests(PostgresGateway gateway) : TranslateTests(gateway), IClassFixture<PostgresGateway>;
