using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Rest;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Exit;

/// <summary>
/// The conformance scenarios (conformance/scenarios/exit-package-*.json) as the demo clients send and read them:
/// the USMP and the CSAPA of the package are the demo clients' organisations (Security/DemoClients.cs), each test
/// gets its own identifiers and its own patient, and the consent runs from yesterday for six months.
/// </summary>
public static class ExitPackages
{
    public const string UsmpFiness = "750000010";
    public const string CsapaAFiness = "750000028";
    public const string CsapaBFiness = "930000039";

    public static string Usmp => TestAuthenticationHandler.Describe("usmp-demo", ActorKind.Usmp, UsmpFiness, "system/*.cruds");
    public static string CsapaA => TestAuthenticationHandler.Describe("csapa-demo", ActorKind.Csapa, CsapaAFiness, "system/*.rs system/Task.u");
    public static string CsapaB => TestAuthenticationHandler.Describe("csapa2-demo", ActorKind.Csapa, CsapaBFiness, "system/*.rs system/Task.u");
    public static string Auditor => TestAuthenticationHandler.Describe("audit-demo", ActorKind.Auditor, "750000077", "system/AuditEvent.rs system/Provenance.rs");

    /// <summary>The planned exit package of scenario 1 (16 resources, consent naming the CSAPA).</summary>
    public static JsonNode Full(string tag) => Prepare("exit-package-transaction.json", tag);

    /// <summary>The reduced package of an unannounced release (scenario 3): no consent, marked incomplete.</summary>
    public static JsonNode Reduced(string tag) => Prepare("exit-package-reduced-transaction.json", tag);

    private static JsonNode Prepare(string file, string tag)
    {
        var text = File.ReadAllText(TransactionTests.ScenarioFile(file))
            .Replace("/usmp-fleury/", $"/usmp-{tag}/", StringComparison.Ordinal)
            // FINESS and idNatSt (1 + FINESS) of the USMP and the CSAPA become the demo clients' organisations.
            .Replace("910001239", UsmpFiness, StringComparison.Ordinal)
            .Replace("750004566", CsapaAFiness, StringComparison.Ordinal)
            .Replace("180029912345678", Nir(tag), StringComparison.Ordinal)
            .Replace("185029912345656", Nir(tag), StringComparison.Ordinal);
        var package = JsonNode.Parse(text)!;
        foreach (var consent in Resources(package, "Consent")) consent["provision"]!["period"] = SixMonthsFromYesterday();
        return package;
    }

    public static JsonObject SixMonthsFromYesterday() => new()
    {
        ["start"] = DateTimeOffset.UtcNow.AddDays(-1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        ["end"] = DateTimeOffset.UtcNow.AddMonths(6).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
    };

    /// <summary>A valid INS-NIR of its own for each tag (key = 97 − first 13 digits mod 97).</summary>
    public static string Nir(string tag)
    {
        var hash = tag.Aggregate(17L, (h, c) => (h * 31 + c) % 1_000_000);
        var head = "1800299" + hash.ToString("000000", CultureInfo.InvariantCulture);
        var key = 97 - long.Parse(head, CultureInfo.InvariantCulture) % 97;
        return head + key.ToString("00", CultureInfo.InvariantCulture);
    }

    public static IEnumerable<JsonNode> Resources(JsonNode package, string type) =>
        package["entry"]!.AsArray().Select(e => e!["resource"]!).Where(r => (string?)r["resourceType"] == type);

    public static JsonNode Resource(JsonNode package, string type) => Resources(package, type).First();

    public static JsonNode Prescription(JsonNode package, string atc) =>
        Resources(package, "MedicationRequest").Single(r => (string?)r["medicationCodeableConcept"]!["coding"]![0]!["code"] == atc);

    public static async Task<Bundle> PostAsync(HttpClient fhir, JsonNode package)
    {
        var response = await fhir.PostAsync("", FhirHttp.Json(package.ToJsonString()));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.ReadAs<Bundle>();
    }

    public static T Single<T>(this Bundle response) where T : Resource =>
        response.Entry.Select(e => e.Resource).OfType<T>().Single();

    public static MedicationRequest Prescription(this Bundle response, string atc) =>
        response.Entry.Select(e => e.Resource).OfType<MedicationRequest>()
            .Single(m => m.Medication is CodeableConcept c && c.Coding.Any(x => x.Code == atc));
}
