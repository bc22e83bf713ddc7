using System.Net;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Security;

/// <summary>
/// The seam consent will use: one more <see cref="IAccessRule"/> in DI is asked by every interaction next to the
/// scopes (any deny wins) and its search filter is intersected with theirs, without touching the interactions.
/// </summary>
public abstract class AccessRuleSeamTests(Gateway gateway)
{
    public const string Confidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

    /// <summary>A stand-in for consent: no Patient deletes, and resources labelled R (restricted) are not read nor found.</summary>
    public sealed class RestrictedLabelRule : IAccessRule
    {
        public AccessDecision Decide(Caller caller, AccessRequest request) =>
            request is { Interaction: Interaction.Delete, Type: "Patient" } ? AccessDecision.Deny("Test rule: patients are never deleted.") : AccessDecision.Permit;

        public AccessDecision DecideInstance(Caller caller, Interaction interaction, ResourceFacts resource) =>
            interaction == Interaction.Read && resource.Resource?.Meta?.Security.Any(c => c.System == Confidentiality && c.Code == "R") == true
                ? AccessDecision.Deny("Test rule: restricted resource.")
                : AccessDecision.Permit;

        public AccessFilter Filter(Caller caller, string? type) => new(DeniedLabels: [(Confidentiality, "R")]);
    }

    private HttpClient As(string scopes, string? patient = null) =>
        gateway.Fhir(TestAuthenticationHandler.Describe("seam-client", ActorKind.Usmp, "750000010", scopes, patient));

    private async Task<Observation> CreateAsync(string patient, bool restricted, string marker)
    {
        var obs = new Observation
        {
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "718-7"),
            Identifier = [new Identifier("urn:test:seam", marker)],
            Subject = new ResourceReference($"Patient/{patient}"),
            Meta = restricted ? new Meta { Security = [new Coding(Confidentiality, "R")] } : null,
        };
        var response = await gateway.Fhir().PostAsync("Observation", FhirHttp.Json(obs));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return await response.ReadAs<Observation>();
    }

    [Fact]
    public async Task A_second_rule_denies_what_the_scopes_permit()
    {
        var patient = await (await gateway.Fhir().PostAsync("Patient", FhirHttp.Json(new Patient { Active = true }))).ReadAs<Patient>();
        var response = await As("system/*.cruds").DeleteAsync($"Patient/{patient.Id}");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("Test rule: patients are never deleted.", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
    }

    [Fact]
    public async Task A_second_rule_decides_on_the_resource_read_and_its_filter_joins_the_scopes_filter()
    {
        var patient = await (await gateway.Fhir().PostAsync("Patient", FhirHttp.Json(new Patient { Active = true }))).ReadAs<Patient>();
        var other = await (await gateway.Fhir().PostAsync("Patient", FhirHttp.Json(new Patient { Active = true }))).ReadAs<Patient>();
        var marker = Guid.NewGuid().ToString("N");
        var open = await CreateAsync(patient.Id!, restricted: false, marker);
        var restricted = await CreateAsync(patient.Id!, restricted: true, marker);
        await CreateAsync(other.Id!, restricted: false, marker);

        var client = As("patient/*.rs", patient.Id);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"Observation/{open.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync($"Observation/{restricted.Id}")).StatusCode);

        // Scopes confine to the launch patient, the rule hides the restricted one: only one of the three is left.
        var bundle = await (await client.GetAsync($"Observation?identifier=urn:test:seam|{marker}")).ReadAs<Bundle>();
        Assert.Equal([open.Id], bundle.Entry.Select(e => e.Resource!.Id));
    }
}

public abstract class SecondRuleGateway : Gateway
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services => services.AddSingleton<IAccessRule, AccessRuleSeamTests.RestrictedLabelRule>());
    }
}

public sealed class SecondRuleSqliteGateway : SecondRuleGateway
{
    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Sqlite",
        ["FhirSortie:DataDirectory"] = dataDirectory,
    };
}

public sealed class SecondRulePostgresGateway : SecondRuleGateway
{
    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Postgres",
        ["FhirSortie:Storage:ConnectionString"] = TestPostgres.CreateDatabase(),
    };
}

public sealed class SqliteAccessRuleSeamTests(SecondRuleSqliteGateway gateway) : AccessRuleSeamTests(gateway), IClassFixture<SecondRuleSqliteGateway>;

public sealed class PostgresAccessRuleSeamTests(SecondRulePostgresGateway gateway) : AccessRuleSeamTests(gateway), IClassFixture<SecondRulePostgresGateway>;
