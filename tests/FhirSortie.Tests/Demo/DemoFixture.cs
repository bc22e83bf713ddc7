using System.Text.Json;
using FhirSortie.Server.Demo;
using FhirSortie.Server.Security;

namespace FhirSortie.Tests.Demo;

/// <summary>
/// A gateway loaded once with the demo packages, posted through HTTP by the test USMP client (FINESS of usmp-demo),
/// exactly as the seed-demo command posts them with usmp-demo's token.
/// </summary>
public abstract class DemoFixture : IAsyncLifetime
{
    public Gateway Gateway { get; }

    public DemoSeedReport FirstSeeding { get; private set; } = null!;

    protected DemoFixture(Gateway gateway) => Gateway = gateway;

    public static readonly string Telemedicine = TestAuthenticationHandler.Describe("telemed-demo", ActorKind.Telemedicine, DemoPackages.TelemedicineFiness,
        "patient/*.rs patient/*.c user/Practitioner.rs user/PractitionerRole.rs user/Organization.rs user/Location.rs", patient: "{0}");
    public static readonly string CsapaA = TestAuthenticationHandler.Describe("csapa-demo", ActorKind.Csapa, DemoPackages.CsapaAFiness, "system/*.rs");
    public static readonly string CsapaB = TestAuthenticationHandler.Describe("csapa2-demo", ActorKind.Csapa, DemoPackages.CsapaBFiness, "system/*.rs");
    public static readonly string Spip = TestAuthenticationHandler.Describe("spip-demo", ActorKind.Justice, "750000069",
        "system/Patient.rs system/Appointment.rs system/DocumentReference.rs");
    public static readonly string Cmp = TestAuthenticationHandler.Describe("cmp-test", ActorKind.Care, DemoPackages.CmpFiness, "system/*.rs");

    /// <summary>The telemedicine app launched for <paramref name="patientId"/>.</summary>
    public static string TelemedicineFor(string patientId) => Telemedicine.Replace("{0}", patientId, StringComparison.Ordinal);

    public async Task InitializeAsync()
    {
        using var usmp = Gateway.Fhir();
        FirstSeeding = await new DemoSeeder(usmp).SeedAsync(DateTimeOffset.UtcNow, CancellationToken.None);
    }

    public Task DisposeAsync()
    {
        Gateway.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>The server id of the demo patient with this INS.</summary>
    public async Task<string> PatientIdAsync(string ins)
    {
        using var usmp = Gateway.Fhir();
        var bundle = await GetJsonAsync(usmp, $"Patient?identifier={DemoIdentifiers.InsDemo}|{ins}");
        Assert.Equal(1, bundle.GetProperty("total").GetInt32());
        return bundle.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
    }

    public static async Task<JsonElement> GetJsonAsync(HttpClient client, string url)
    {
        using var response = await client.GetAsync(url);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {url}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>resourceType of each entry with the given search mode.</summary>
    public static List<string> Types(JsonElement bundle, string mode = "match") =>
        bundle.TryGetProperty("entry", out var entries)
            ? [.. entries.EnumerateArray().Where(e => e.GetProperty("search").GetProperty("mode").GetString() == mode)
                .Select(e => e.GetProperty("resource").GetProperty("resourceType").GetString()!)]
            : [];
}

public sealed class SqliteDemoFixture() : DemoFixture(new SqliteGateway());

public sealed class PostgresDemoFixture() : DemoFixture(new PostgresGateway());
