using System.Net.Http.Headers;
using System.Text.Json;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// The exit portal end to end (issue 22): the seeded demo gateway process, headless Chromium driven by
/// tests/browser/portal.mjs through the portal's pages only (by role and accessible name), one demo user after another:
/// CSAPA Bastide sees no person; CSAPA Les Tilleuls accepts, starts and completes the hand-off, records the appointment
/// honoured, issues an attendance attestation and prints the ordonnance; ACT Horizon refuses with a reason; the SPIP
/// finds the person by exact INS and sees the appointment and the attestation, nothing clinical; the DPO reads the
/// access report naming the portal users and downloads it as CSV; the USMP opens the Sorties board. Effects are then
/// checked through the API with the demo clients, and the screenshots land in docs/portal/.
/// </summary>
public sealed class PortalBrowserTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task Each_demo_user_does_its_job_in_the_portal_and_sees_only_what_it_may(string dialect)
    {
        if (PortalBrowserRun.BrowserFolderOrSkip(output) is not { } browserFolder)
            return;
        using var storage = Storage.Create(dialect);
        await using var server = await DemoWalkthroughTests.SeededServerAsync(storage);
        var origin = new Uri(server.BaseUrl, "/");
        var ins = "186037505612307";

        var seen = await PortalBrowserRun.RunAsync(output, browserFolder, server, dialect, "portal.mjs", "--ins", ins);
        string Seen(params string[] path) => path.Aggregate(seen, (e, p) => e.GetProperty(p)).GetString()!;

        // CSAPA Bastide: named by no live consent (the one naming it was withdrawn): no person, no row.
        Assert.Equal(0, seen.GetProperty("bastide").GetProperty("rows").GetInt32());
        foreach (var family in new[] { "FICTIF", "EXEMPLE", "MODÈLE", "ESSAI", "PROTOTYPE", "SPÉCIMEN" })
            Assert.DoesNotContain(family, Seen("bastide", "text").ToUpperInvariant(), StringComparison.Ordinal);

        // CSAPA Les Tilleuls walked its hand-off through the state machine, with the ordonnance's prescriber RPPS.
        Assert.Equal(["Acceptée", "En cours", "Terminée"], seen.GetProperty("tilleulsStatuses").EnumerateArray().Select(e => e.GetString()!));
        Assert.Contains("Honoré", Seen("tilleulsAppointment"), StringComparison.Ordinal);
        Assert.Contains("RPPS 10000001015", Seen("ordonnance"), StringComparison.Ordinal);
        Assert.Contains("7 jours", Seen("ordonnance"), StringComparison.Ordinal);
        Assert.Contains("buprénorphine", Seen("letter"), StringComparison.Ordinal);
        Assert.Equal("/portal/", Seen("tilleulsAfterSignOut"));
        Assert.Equal("Refusée", Seen("actStatus"));

        // The SPIP page: the appointment and the attestation; no medicine, diagnosis or letter text anywhere in it.
        var spip = Seen("spip", "html");
        Assert.Contains("Attestation de présence émise", Seen("spip", "text"), StringComparison.Ordinal);
        Assert.Contains("Honoré", Seen("spip", "text"), StringComparison.Ordinal);
        foreach (var clinical in new[] { "buprénorphine", "naloxone", "sofosbuvir", "Hépatite", "opiacés", "F11", "Lettre de liaison", "substitution", "Dépannage" })
            Assert.DoesNotContain(clinical, spip, StringComparison.OrdinalIgnoreCase);
        // No INS in any URL the browser went to (the identifier is posted).
        foreach (var path in new[] { Seen("spip", "path"), Seen("report", "path"), Seen("reportFilteredPath"), Seen("tilleulsTaskPath") })
            Assert.DoesNotContain(ins, path, StringComparison.Ordinal);

        // The DPO's report names the portal users (fhirUser), and the CSV holds the same kind of rows.
        Assert.Contains("Practitioner/csapa-referent", Seen("report", "text"), StringComparison.Ordinal);
        Assert.Contains("Practitioner/spip-cpip", Seen("report", "text"), StringComparison.Ordinal);
        Assert.StartsWith("\uFEFFquand;qui;structure;action;donnees;resultat;motif", Seen("csv"), StringComparison.Ordinal);
        Assert.Contains("Practitioner/csapa-referent", Seen("csv"), StringComparison.Ordinal);
        Assert.Contains("Sorties prévues dans les 14 jours", Seen("sorties", "text"), StringComparison.Ordinal);
        Assert.Contains("Aubin FICTIF", Seen("sorties", "text"), StringComparison.Ordinal);

        // The effects, through the API with the demo clients.
        using var http = new HttpClient { BaseAddress = origin };
        var usmp = await DemoWalkthroughTests.ClientTokenAsync(http, "usmp-demo", "system/*.cruds");
        async Task<JsonElement> Get(string token, string url)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request);
            return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        }
        JsonElement Single(JsonElement bundle) => bundle.GetProperty("entry")[0].GetProperty("resource");
        const string demo = "https://fhirsortie.example.fr/demo";
        var tilleulsTask = Single(await Get(usmp, $"/fhir/Task?identifier={Uri.EscapeDataString(demo + "/task|TCH-P1-CSAPA")}"));
        Assert.Equal("completed", tilleulsTask.GetProperty("status").GetString());
        Assert.EndsWith(tilleulsTask.GetProperty("id").GetString()!, Seen("tilleulsTaskPath"), StringComparison.Ordinal);
        var actTask = Single(await Get(usmp, $"/fhir/Task?identifier={Uri.EscapeDataString(demo + "/task|TCH-P3-ACT")}"));
        Assert.Equal("rejected", actTask.GetProperty("status").GetString());
        Assert.Equal("Plus de place disponible ce mois-ci", actTask.GetProperty("statusReason").GetProperty("text").GetString());
        var appointment = Single(await Get(usmp, $"/fhir/Appointment?identifier={Uri.EscapeDataString(demo + "/appointment|RDV-P1-CSAPA")}"));
        Assert.Equal("fulfilled", appointment.GetProperty("status").GetString());
        var patient = await DemoWalkthroughTests.PatientIdAsync(http, usmp);
        var spipToken = await DemoWalkthroughTests.ClientTokenAsync(http, "spip-demo", "system/DocumentReference.rs");
        var attestations = await Get(spipToken, $"/fhir/DocumentReference?patient=Patient/{patient}");
        Assert.Contains(attestations.GetProperty("entry").EnumerateArray(), e => e.GetProperty("resource").GetProperty("context").GetProperty("related")[0]
            .GetProperty("reference").GetString() == "Appointment/" + appointment.GetProperty("id").GetString());

        // The audit trail names the user and the organisation they act for: the Task's updates are csapa-referent's, CSAPA A's FINESS.
        var auditor = await DemoWalkthroughTests.ClientTokenAsync(http, "audit-demo", "system/AuditEvent.rs");
        var report = await Get(auditor, $"/fhir/Patient/{patient}/$access-report");
        var accesses = report.GetProperty("parameter").EnumerateArray().Where(a => a.TryGetProperty("part", out _))
            .Select(a => a.GetProperty("part").EnumerateArray().GroupBy(p => p.GetProperty("name").GetString()!).ToDictionary(g => g.Key, g => g.First())).ToList();
        Assert.Contains(accesses, a => a.TryGetValue("user", out var user) && user.GetProperty("valueString").GetString() == "Practitioner/csapa-referent"
            && a["interaction"].GetProperty("valueCode").GetString() == "update"
            && a["organization"].GetProperty("valueIdentifier").GetProperty("value").GetString() == "750000028");
    }
}
