using System.Net;
using System.Text.Json.Nodes;
using FhirSortie.Tests.Rest;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Tests.Profiles;

/// <summary>
/// The exit package scenario (conformance/scenarios/exit-package-transaction.json) claims the national and
/// FhirSortie profiles; a package that breaks one of them is refused as a whole.
/// </summary>
public abstract class ExitPackageProfilesTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private static string Scenario() => File.ReadAllText(TransactionTests.ScenarioFile("exit-package-transaction.json"));

    /// <summary>The scenario with its identifiers moved to a namespace of their own, so tests do not share resources.</summary>
    private static JsonNode Package(string tag) =>
        JsonNode.Parse(Scenario().Replace("/usmp-fleury/", $"/usmp-{tag}/", StringComparison.Ordinal))!;

    private static JsonNode Resource(JsonNode package, string type) =>
        package["entry"]!.AsArray().Select(e => e!["resource"]!).First(r => (string?)r["resourceType"] == type);

    [Fact]
    public async Task Exit_package_whose_referral_names_a_wrong_FINESS_is_refused_with_the_issue()
    {
        var package = Package("bad-finess");
        var referral = Resource(package, "ServiceRequest");
        referral["performer"] = new JsonArray(new JsonObject
        {
            ["identifier"] = new JsonObject { ["system"] = "https://finess.esante.gouv.fr", ["value"] = "750004567" },
        });

        var response = await _fhir.PostAsync("", FhirHttp.Json(package.ToJsonString()));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        // A transaction reports the failing entry; the diagnostics name the rule broken.
        var issue = Assert.Single(outcome.Issue);
        Assert.Equal(["Bundle.entry[9]"], issue.Expression);
        Assert.Contains("fs-ref-3: the FINESS Luhn control key", issue.Diagnostics);
        // Nothing of the package was written.
        var search = await (await _fhir.GetAsync("ServiceRequest?identifier=https://fhirsortie.example.fr/usmp-bad-finess/referral|ADR-2026-0013")).ReadAs<Bundle>();
        Assert.Empty(search.Entry);
    }

    [Fact]
    public async Task Exit_package_whose_handoff_task_has_no_business_status_is_refused()
    {
        var package = Package("no-status");
        Resource(package, "Task").AsObject().Remove("businessStatus");

        var response = await _fhir.PostAsync("", FhirHttp.Json(package.ToJsonString()));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Diagnostics!.Contains("Task.businessStatus: minimum cardinality is 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Projet_de_soins_authored_by_a_practitioner_is_refused()
    {
        var carePlan = JsonNode.Parse(File.ReadAllText(Path.Combine(ProfileFixture.Folder, "examples", "valid", "CarePlan-projet-de-soins.json")))!;
        carePlan["author"] = new JsonObject { ["reference"] = "Practitioner/someone" };

        var response = await _fhir.PostAsync("CarePlan", FhirHttp.Json(carePlan.ToJsonString()));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        var issue = Assert.Single(outcome.Issue);
        Assert.Equal(["CarePlan.author.reference"], issue.Expression);
        Assert.Contains("a reference to Practitioner is not allowed here", issue.Diagnostics);
    }

    [Fact]
    public async Task Conforming_PDSm_DocumentReference_is_created()
    {
        var json = File.ReadAllText(Path.Combine(ProfileFixture.Folder, "examples", "valid", "DocumentReference-pdsm-liaison-letter.json"));
        var response = await _fhir.PostAsync("DocumentReference", FhirHttp.Json(json));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }
}

/// <summary>The scenario's resources against the profiles they claim, without a server.</summary>
public sealed class ExitPackageConformanceTests
{
    private const string Fs = "https://fhirsortie.fr/fhir/StructureDefinition/";

    private static string Scenario() => File.ReadAllText(TransactionTests.ScenarioFile("exit-package-transaction.json"));

    [Fact]
    public void Every_profiled_resource_of_the_exit_package_conforms()
    {
        var bundle = new FhirJsonDeserializer(new DeserializerSettings()).Deserialize<Bundle>(Scenario());
        var claimed = new List<string>();
        foreach (var resource in bundle.Entry.Select(e => e.Resource!))
        {
            var run = ProfileFixture.Validate(resource);
            Assert.False(run.HasErrors, $"{resource.TypeName}: {ProfileFixture.Describe(run)}");
            claimed.AddRange(resource.Meta?.Profile.OfType<string>() ?? []);
        }
        Assert.Equal(16, bundle.Entry.Count);
        foreach (var profile in new[]
                 {
                     Fs + "ExitReferral", Fs + "ExitHandoffTask", Fs + "ProjetDeSoins", Fs + "ExitPrescription",
                     "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-encounter",
                     "https://interop.esante.gouv.fr/ig/fhir/eprescription/StructureDefinition/fr-medicationrequest",
                 })
            Assert.Contains(profile, claimed);
    }
}

public sealed class SqliteExitPackageProfilesTests(SqliteGateway gateway) : ExitPackageProfilesTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresExitPackageProfilesTests(PostgresGateway gateway) : ExitPackageProfilesTests(gateway), IClassFixture<PostgresGateway>;
