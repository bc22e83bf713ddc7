using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// The CSAPA référent's consent view (issue 22 view 2, domain scenario 3) end to end: the seeded demo gateway, headless
/// Chromium driven by tests/browser/portal-consent.mjs. csapa-referent finds the collect-consent Task of the person
/// released without notice, records a consent naming CSAPA Bastide (identity and exit treatments; addictions shared;
/// mental health, HIV and violence masked), prints the sheet and attaches the signed one (a too-large file refused in
/// French first); ACT Horizon, which holds no collect-consent Task and is not the care team, is refused by the gateway
/// (403, said in French). Checked through the API: the Consent and its provision, the completed Task, the signed sheet,
/// the audit naming the user, and what CSAPA Bastide's demo client then sees (the treatments, not the stay) and after
/// the withdrawal made from the same page (nothing).
/// </summary>
public sealed class PortalConsentBrowserTests(ITestOutputHelper output)
{
    private const string Demo = "https://fhirsortie.example.fr/demo";
    private const string BastideFiness = "930000039";

    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task The_referent_records_a_consent_in_the_portal_and_the_named_organisation_sees_only_what_it_covers(string dialect)
    {
        if (PortalBrowserRun.BrowserFolderOrSkip(output) is not { } browserFolder)
            return;
        using var storage = Storage.Create(dialect);
        await using var server = await DemoWalkthroughTests.SeededServerAsync(storage);
        var origin = new Uri(server.BaseUrl, "/");
        using var http = new HttpClient { BaseAddress = origin };
        var usmp = await DemoWalkthroughTests.ClientTokenAsync(http, "usmp-demo", "system/*.cruds");
        var bastide = await DemoWalkthroughTests.ClientTokenAsync(http, "csapa2-demo", "system/*.rs");
        async Task<(HttpStatusCode Status, JsonElement Body)> Get(string token, string url)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request);
            return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement);
        }
        static List<JsonElement> Entries(JsonElement bundle) =>
            bundle.TryGetProperty("entry", out var entries) ? [.. entries.EnumerateArray().Select(e => e.GetProperty("resource"))] : [];

        var task = Entries((await Get(usmp, $"/fhir/Task?identifier={Uri.EscapeDataString(Demo + "/task|TCH-P4-CONSENT")}")).Body).Single();
        var taskId = task.GetProperty("id").GetString()!;
        var patient = task.GetProperty("for").GetProperty("reference").GetString()!;
        var patientId = patient["Patient/".Length..];
        // Before: CSAPA Bastide sees nothing of the person.
        Assert.Equal(HttpStatusCode.NotFound, (await Get(bastide, $"/fhir/{patient}")).Status);
        Assert.Empty(Entries((await Get(bastide, $"/fhir/MedicationRequest?patient={patient}")).Body));

        var record = await PortalBrowserRun.RunAsync(output, browserFolder, server, dialect, "portal-consent.mjs", "--phase", "record");
        string Seen(JsonElement from, params string[] path) => path.Aggregate(from, (e, p) => e.GetProperty(p)).GetString()!;

        // The list: what to do, for whom, due when; the Task's page is under its opaque id.
        Assert.Contains("Yanis ESSAI", Seen(record, "list", "text"), StringComparison.Ordinal);
        Assert.Contains("Recueil du consentement", Seen(record, "list", "text"), StringComparison.Ordinal);
        Assert.Matches(@"\d\d/\d\d/\d{4}", Seen(record, "list", "text"));
        Assert.Equal($"/portal/consentement/{taskId}", Seen(record, "taskPath"));
        // The portal's own checks, next to the fields, in French.
        Assert.Contains(record.GetProperty("emptyErrors").EnumerateArray(), e => e.GetString()!.StartsWith("Choisissez au moins une structure destinataire", StringComparison.Ordinal));
        Assert.Contains(record.GetProperty("emptyErrors").EnumerateArray(), e => e.GetString()!.StartsWith("Indiquez pour chaque information sensible", StringComparison.Ordinal));
        Assert.Contains("la demande de recueil est terminée", Seen(record, "saved", "notice"), StringComparison.Ordinal);
        Assert.Equal("Terminée", Seen(record, "saved", "status"));
        // The printable sheet: who, to whom, what, period, the right to withdraw.
        var sheet = Seen(record, "sheet");
        foreach (var expected in new[] { "Yanis ESSAI", "CSAPA Bastide (demo) (FINESS 930000039)", "Traitements de sortie", "Addictions", "masquées", "Du ", "retirer ce consentement à tout moment", "Signature de la personne" })
            Assert.Contains(expected, sheet, StringComparison.Ordinal);
        Assert.Contains("la taille maximale est de 5 Mo", Seen(record, "tooLarge"), StringComparison.Ordinal);
        Assert.Equal("La fiche signée est jointe au consentement.", Seen(record, "signed", "notice"));
        // CSAPA Bastide's user cannot open the référent's Task; ACT Horizon is refused by the gateway, in French.
        Assert.Equal("Demande introuvable", Seen(record, "bastide", "title"));
        var refusal = Seen(record, "act", "refusal");
        Assert.Contains("refus 403", refusal, StringComparison.Ordinal);
        Assert.Contains("votre structure n'est pas habilitée à le recueillir", refusal, StringComparison.Ordinal);

        // Through the API: one Consent, recorded by CSAPA Les Tilleuls for the person, naming CSAPA Bastide, the right provision.
        var consents = Entries((await Get(usmp, $"/fhir/Consent?patient={patient}&_count=50")).Body)
            .Where(c => c.GetProperty("meta").TryGetProperty("profile", out _)).ToList();
        var consent = Assert.Single(consents);
        var consentId = consent.GetProperty("id").GetString()!;
        Assert.EndsWith("/fiche/" + consentId, Seen(record, "sheetPath"), StringComparison.Ordinal);
        Assert.Equal("active", consent.GetProperty("status").GetString());
        var provision = consent.GetProperty("provision");
        Assert.Equal("permit", provision.GetProperty("type").GetString());
        var actor = Assert.Single(provision.GetProperty("actor").EnumerateArray()).GetProperty("reference").GetProperty("reference").GetString()!;
        var named = (await Get(usmp, "/fhir/" + actor)).Body;
        Assert.Equal(BastideFiness, named.GetProperty("identifier")[0].GetProperty("value").GetString());
        var classes = provision.GetProperty("class").EnumerateArray().Select(c => c.GetProperty("code").GetString()!).ToList();
        Assert.Contains("Patient", classes);
        Assert.Contains("MedicationRequest", classes);
        Assert.DoesNotContain("Encounter", classes);
        Assert.DoesNotContain("Task", classes);
        Assert.Equal("TREAT", provision.GetProperty("purpose")[0].GetProperty("code").GetString());
        Assert.Equal(DateTime.UtcNow.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture), provision.GetProperty("period").GetProperty("start").GetString()![..7]);
        var masked = provision.GetProperty("provision").EnumerateArray().Where(p => p.GetProperty("type").GetString() == "deny")
            .Select(p => p.GetProperty("securityLabel")[0].GetProperty("code").GetString()!).Order().ToList();
        Assert.Equal(["HIV", "PSY", "SDV"], masked);
        // The signed sheet: a DocumentReference the Consent points to (sourceReference), the PDF inside.
        var source = consent.GetProperty("sourceReference").GetProperty("reference").GetString()!;
        var document = (await Get(usmp, "/fhir/" + source)).Body;
        Assert.Equal("application/pdf", document.GetProperty("content")[0].GetProperty("attachment").GetProperty("contentType").GetString());
        Assert.Equal("Consent/" + consentId, document.GetProperty("context").GetProperty("related")[0].GetProperty("reference").GetString());
        // The collect-consent Task is completed, its output the Consent.
        var completed = (await Get(usmp, $"/fhir/Task/{taskId}")).Body;
        Assert.Equal("completed", completed.GetProperty("status").GetString());
        Assert.Equal("Consent/" + consentId, completed.GetProperty("output")[0].GetProperty("valueReference").GetProperty("reference").GetString());
        // Nothing recorded for ACT Horizon's person naming CSAPA Bastide.
        var actTask = (await Get(usmp, $"/fhir/Task/{Seen(record, "act", "taskId")}")).Body;
        var actPatient = actTask.GetProperty("for").GetProperty("reference").GetString()!;
        Assert.DoesNotContain(Entries((await Get(usmp, $"/fhir/Consent?patient={actPatient}&_count=50")).Body),
            c => c.GetProperty("meta").TryGetProperty("profile", out _));

        // The audit trail names the user: the Consent's creation and the Task's completion are csapa-referent's; ACT's refusal too.
        var auditor = await DemoWalkthroughTests.ClientTokenAsync(http, "audit-demo", "system/AuditEvent.rs");
        var accesses = await AccessesAsync(Get, auditor, patientId);
        Assert.Contains(accesses, a => a.User == "Practitioner/csapa-referent" && a.Interaction == "create" && a.Resources.Any(r => r.StartsWith("Consent/" + consentId, StringComparison.Ordinal)) && a.Outcome == "permitted");
        Assert.Contains(accesses, a => a.User == "Practitioner/csapa-referent" && a.Interaction == "update" && a.Resources.Any(r => r.StartsWith("Task/" + taskId, StringComparison.Ordinal)));
        var actAccesses = await AccessesAsync(Get, auditor, actPatient["Patient/".Length..]);
        Assert.Contains(actAccesses, a => a.User == "Practitioner/act-coordination" && a.Interaction == "create" && a.Outcome == "refused");

        // CSAPA Bastide's client now sees what was shared (identity, the methadone prescription, ETH-labelled and shared),
        // not what was not (the detention stay, the Task).
        Assert.Equal(HttpStatusCode.OK, (await Get(bastide, $"/fhir/{patient}")).Status);
        var prescriptions = Entries((await Get(bastide, $"/fhir/MedicationRequest?patient={patient}")).Body);
        Assert.Contains(prescriptions, p => p.GetProperty("medicationCodeableConcept").GetProperty("coding")[0].GetProperty("code").GetString() == "N07BC02");
        Assert.Empty(Entries((await Get(bastide, $"/fhir/Encounter?patient={patient}")).Body));
        Assert.Empty(Entries((await Get(bastide, $"/fhir/Task?patient={patient}")).Body));
        Assert.Equal(HttpStatusCode.NotFound, (await Get(bastide, $"/fhir/Task/{taskId}")).Status);

        // The withdrawal, from the same page: inactive, and CSAPA Bastide sees nothing again.
        var withdraw = await PortalBrowserRun.RunAsync(output, browserFolder, server, dialect, "portal-consent.mjs", "--phase", "withdraw", "--task", taskId);
        Assert.StartsWith("Le consentement est retiré", Seen(withdraw, "withdrawn", "notice"), StringComparison.Ordinal);
        Assert.Equal("inactive", (await Get(usmp, $"/fhir/Consent/{consentId}")).Body.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await Get(bastide, $"/fhir/{patient}")).Status);
        Assert.Empty(Entries((await Get(bastide, $"/fhir/MedicationRequest?patient={patient}")).Body));
    }

    private sealed record Access(string? User, string? Interaction, string? Outcome, List<string> Resources);

    private static async Task<List<Access>> AccessesAsync(Func<string, string, Task<(HttpStatusCode, JsonElement)>> get, string auditor, string patientId)
    {
        var (_, report) = await get(auditor, $"/fhir/Patient/{patientId}/$access-report");
        static string? Value(JsonElement part) => part.EnumerateObject().FirstOrDefault(p => p.Name.StartsWith("value", StringComparison.Ordinal)).Value is { ValueKind: JsonValueKind.String } v ? v.GetString() : null;
        return [.. report.GetProperty("parameter").EnumerateArray().Where(a => a.TryGetProperty("part", out _)).Select(a =>
        {
            var parts = a.GetProperty("part").EnumerateArray().ToList();
            string? One(string name) => parts.Where(p => p.GetProperty("name").GetString() == name).Select(Value).FirstOrDefault();
            return new Access(One("user"), One("interaction"), One("outcome"),
                [.. parts.Where(p => p.GetProperty("name").GetString() == "resource").Select(p => p.GetProperty("valueReference").GetProperty("reference").GetString()!)]);
        })];
    }
}
