using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// The USMP's exit-package form end to end (issue 22, view 1): the seeded demo gateway process, headless Chromium driven by
/// tests/browser/portal-package.mjs. usmp-medecin submits a bad package (no release date, a dose that is no number, a
/// bridging supply of 0: French errors next to the fields, what was typed kept, nothing stored), creates a package for the
/// planned-exit person through "Nouvelle sortie", completes the unannounced release's package through "Compléter" (a PDF
/// too big, then a PDF letter, referral and appointment); a CSAPA user gets a 403 page instead of the form. The effects
/// are checked through the API with the demo clients: the resources exist, validate against our profiles, carry a
/// Provenance naming the user, and the receiving CSAPA reads its hand-off Task.
/// </summary>
public sealed class PortalPackageBrowserTests(ITestOutputHelper output)
{
    private const string Portail = "https://fhirsortie.fr/portail/750000010";

    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task Usmp_creates_and_completes_exit_packages_through_the_form_and_sees_its_errors_in_French(string dialect)
    {
        if (PortalBrowserRun.BrowserFolderOrSkip(output) is not { } browserFolder)
            return;
        using var storage = Storage.Create(dialect);
        await using var server = await DemoWalkthroughTests.SeededServerAsync(storage);
        var origin = new Uri(server.BaseUrl, "/");

        var seen = await PortalBrowserRun.RunAsync(output, browserFolder, server, dialect, "portal-package.mjs", "--ins", "186037505612307");
        string Seen(params string[] path) => path.Aggregate(seen, (e, p) => e.GetProperty(p)).GetString()!;

        // The bad package: 422, each French error next to its field (aria-invalid, linked from the summary), what was typed kept.
        Assert.Equal(422, seen.GetProperty("bad").GetProperty("status").GetInt32());
        Assert.Equal("Indiquez la date de sortie, prévue ou effective (jj/mm/aaaa).", Seen("bad", "sortie"));
        Assert.Equal("Dose invalide : un nombre positif, par exemple 8 ou 0,5.", Seen("bad", "dose"));
        Assert.StartsWith("Le dépannage doit couvrir au moins 1 jour", Seen("bad", "depannage"), StringComparison.Ordinal); // the profile's fs-bridging-1
        var invalid = seen.GetProperty("bad").GetProperty("invalid").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Contains("sortie", invalid);
        Assert.Contains("med1-dose", invalid);
        Assert.Contains("med1-depannage", invalid);
        Assert.Contains("#med1-depannage", seen.GetProperty("bad").GetProperty("summaryLinks").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("huit", Seen("bad", "keptDose"));
        Assert.Equal("N07BC01", Seen("bad", "keptMedication"));
        Assert.Equal("Lettre gardée malgré l'erreur", Seen("bad", "keptLetter"));
        Assert.Equal("8", Seen("searchKeptDose"));

        using var http = new HttpClient { BaseAddress = origin };
        var usmp = await DemoWalkthroughTests.ClientTokenAsync(http, "usmp-demo", "system/*.cruds");
        async Task<JsonElement> Send(HttpMethod method, string token, string url, string? body = null)
        {
            using var request = new HttpRequestMessage(method, url);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (body is not null) request.Content = new StringContent(body, Encoding.UTF8, "application/fhir+json");
            using var response = await http.SendAsync(request);
            var json = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{method} {url}: {(int)response.StatusCode} {json}");
            return JsonDocument.Parse(json).RootElement;
        }
        Task<JsonElement> Get(string url, string? token = null) => Send(HttpMethod.Get, token ?? usmp, url);
        async Task<List<JsonElement>> Find(string type, string system, string value) =>
            (await Get($"/fhir/{type}?identifier={Uri.EscapeDataString(system + "|" + value)}")).TryGetProperty("entry", out var entries)
                ? [.. entries.EnumerateArray().Select(e => e.GetProperty("resource"))] : [];

        // Nothing of the bad package was stored.
        var bad = Seen("badKey");
        Assert.Empty(await Find("Encounter", Portail + "/sejour", bad));
        Assert.Empty(await Find("MedicationRequest", Portail + "/prescription", bad + "-1"));

        // The good package: the transaction's resources, valid against our profiles, with a Provenance naming the user.
        var good = Seen("goodKey");
        Assert.Contains("Le dossier de sortie est enregistré", Seen("good", "saved"), StringComparison.Ordinal);
        Assert.Equal("10000001015", Seen("good", "rpps"));
        var stay = Assert.Single(await Find("Encounter", Portail + "/sejour", good));
        Assert.Equal("in-progress", stay.GetProperty("status").GetString());
        Assert.Contains(stay.GetProperty("meta").GetProperty("tag").EnumerateArray(), t => t.GetProperty("code").GetString() == "complete");
        Assert.EndsWith("/" + stay.GetProperty("id").GetString(), Seen("good", "path"), StringComparison.Ordinal);
        var prescription = Assert.Single(await Find("MedicationRequest", Portail + "/prescription", good + "-1"));
        Assert.Equal("Practitioner/usmp-medecin", prescription.GetProperty("requester").GetProperty("reference").GetString());
        Assert.Equal(7, prescription.GetProperty("extension")[0].GetProperty("extension")[0].GetProperty("valueDuration").GetProperty("value").GetInt32());
        var task = Assert.Single(await Find("Task", Portail + "/relais", good));
        Assert.Equal("requested", task.GetProperty("status").GetString());
        var written = new List<JsonElement> { stay, prescription, task };
        written.Add(Assert.Single(await Find("MedicationRequest", Portail + "/prescription", good + "-2")));
        written.Add(Assert.Single(await Find("MedicationDispense", Portail + "/dispensation", good + "-naloxone")));
        written.Add(Assert.Single(await Find("DocumentReference", Portail + "/lettre", good)));
        written.Add(Assert.Single(await Find("ServiceRequest", Portail + "/adressage", good)));
        written.Add(Assert.Single(await Find("Appointment", Portail + "/rendez-vous", good)));
        foreach (var resource in written.Where(r => r.TryGetProperty("meta", out var meta) && meta.TryGetProperty("profile", out _)))
        {
            var type = resource.GetProperty("resourceType").GetString();
            var outcome = await Send(HttpMethod.Post, usmp, $"/fhir/{type}/$validate", resource.GetRawText());
            Assert.DoesNotContain(outcome.GetProperty("issue").EnumerateArray(), i => i.GetProperty("severity").GetString() is "error" or "fatal");
        }
        var provenances = await Get($"/fhir/Provenance?target={Uri.EscapeDataString("Encounter/" + stay.GetProperty("id").GetString())}");
        Assert.Contains(provenances.GetProperty("entry").EnumerateArray(), e => e.GetProperty("resource").GetProperty("agent").EnumerateArray()
            .Any(a => a.GetProperty("who").TryGetProperty("reference", out var who) && who.GetString() == "Practitioner/usmp-medecin"));

        // The receiving CSAPA (named by the person's consent) reads its hand-off, and the référent sees it in the inbox.
        var csapa = await DemoWalkthroughTests.ClientTokenAsync(http, "csapa-demo", "system/*.rs");
        var handoff = await Get("/fhir/Task/" + task.GetProperty("id").GetString(), csapa);
        Assert.Equal("requested", handoff.GetProperty("status").GetString());
        Assert.Contains("Relais du TSO sous 24 h après la sortie", Seen("inbox"), StringComparison.Ordinal);

        // "Compléter": the unannounced release's stay is completed in place (one stay, its kind of exit coded), a PDF letter added.
        Assert.StartsWith("Le fichier « trop-gros.pdf » dépasse la taille maximale de 2 Mo", Seen("bigPdf"), StringComparison.Ordinal);
        Assert.StartsWith("Choisissez une valeur dans la liste.", Seen("typeSortie"), StringComparison.Ordinal);
        Assert.Contains("Le dossier de sortie est enregistré", Seen("completed", "text"), StringComparison.Ordinal);
        var reduced = Assert.Single(await Find("Encounter", "https://fhirsortie.example.fr/demo/encounter", "SEJ-P4"));
        Assert.Equal("fin-de-peine", reduced.GetProperty("hospitalization").GetProperty("dischargeDisposition").GetProperty("coding")[0].GetProperty("code").GetString());
        Assert.Equal(Seen("completePath"), Seen("completed", "path"));
        var complete = Seen("completeKey");
        var letter = Assert.Single(await Find("DocumentReference", Portail + "/lettre", complete));
        Assert.Equal("application/pdf", letter.GetProperty("content")[0].GetProperty("attachment").GetProperty("contentType").GetString());
        Assert.Single(await Find("Appointment", Portail + "/rendez-vous", complete));
        Assert.Single(await Find("Task", Portail + "/relais", complete));

        // A CSAPA user gets no form: a 403 page in French.
        Assert.Equal(403, seen.GetProperty("csapaForm").GetProperty("status").GetInt32());
        Assert.Contains("Accès non autorisé", Seen("csapaForm", "text"), StringComparison.Ordinal);
        Assert.Equal(0, seen.GetProperty("csapaForm").GetProperty("forms").GetInt32());
    }
}
