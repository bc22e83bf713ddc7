using System.Text;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.WebUtilities;

namespace FhirSortie.Server.Security;

/// <summary>
/// Standalone launch with <c>launch/patient</c>: the signed-in practitioner picks the patient the app will be about.
/// The choice becomes a single-use launch context in the database, bound to the app's client and to the practitioner,
/// and the browser goes back to the authorization endpoint with its opaque id. An app cannot skip the page by adding
/// a patient id to its request: only ids minted here, for this client and this user, are honoured.
/// <para>
/// The page acts for the app's organisation: it lists, and lets the practitioner pick, only the patients that
/// organisation may see under the consent rules (issue 5), and each page shown is an audited search naming the
/// patients it listed (a pick of a hidden patient, an audited refused read).
/// </para>
/// </summary>
public static class PatientPicker
{
    public const string Path = "/auth/pick-patient";

    /// <summary>Parameter added to the authorization request when the browser comes back from the picker.</summary>
    public const string PickParameter = "fhirsortie_pick";

    private const int MaxShown = 20;

    public static void MapPatientPicker(this IEndpointRouteBuilder routes)
    {
        routes.MapGet(Path, ShowAsync).ExcludeFromDescription();
        routes.MapPost(Path, PickAsync).ExcludeFromDescription();
    }

    /// <summary>Where the authorization endpoint sends the browser when a patient must be picked.</summary>
    public static string UrlFor(string authorizeUrl) => QueryHelpers.AddQueryString(Path, "returnUrl", authorizeUrl);

    private static async Task<IResult> ShowAsync(HttpContext context, string? returnUrl, string? q, ClientRegistry clients, Practitioners practitioners)
    {
        var request = AuthPages.SafeReturnUrl(returnUrl);
        var app = clients.Find(AuthPages.ClientIdOf(request) ?? "");
        if (request is null || app is null) return AuthPages.Page("Requête invalide", "<p>Ouvrez cette page depuis la connexion d'une application.</p>", StatusCodes.Status400BadRequest);
        var user = await AuthPages.PractitionerAsync(context) is { } name ? practitioners.Find(name) : null;
        if (user is null) return Results.Redirect(QueryHelpers.AddQueryString(AuthPages.LoginPath, "returnUrl", request));

        var body = new StringBuilder();
        body.Append("<p>Choisissez le patient sur lequel l'application va travailler.</p>")
            .Append("<form method=\"get\" action=\"").Append(Path).Append("\">")
            .Append("<input type=\"hidden\" name=\"returnUrl\" value=\"").Append(AuthPages.Encode(request)).Append("\">")
            .Append("<label for=\"q\">Nom ou INS</label> <input id=\"q\" name=\"q\" value=\"").Append(AuthPages.Encode(q ?? "")).Append("\"> ")
            .Append("<button type=\"submit\" id=\"search\">Rechercher</button></form>");

        var caller = CallerFor(app, user);
        var patients = await FindAsync(context, q, AccessPoint.For(caller, context.RequestServices).Filter("Patient"));
        // What the page discloses (names and birth dates) is an access like a search: recorded before it is shown.
        var note = new AuditNote { Decision = Consents.AccessDecision.Permit("the patients its organisation may see") };
        note.Patients.UnionWith(patients.Select(p => p.Id!));
        await RecordAsync(context, caller, "search-type", StatusCodes.Status200OK, note,
            string.IsNullOrWhiteSpace(q) ? "" : "q=" + Uri.EscapeDataString(q.Trim()));
        if (patients.Count == 0)
        {
            body.Append("<p id=\"no-patient\" role=\"status\">Aucun patient trouvé.</p>");
        }
        else
        {
            body.Append("<table><thead><tr><th scope=\"col\">Nom</th><th scope=\"col\">Date de naissance</th><th scope=\"col\"><span class=\"hidden\">Choisir</span></th></tr></thead><tbody>");
            foreach (var patient in patients)
            {
                body.Append("<tr><td>").Append(AuthPages.Encode(NameOf(patient))).Append("</td><td>")
                    .Append(AuthPages.Encode(Portal.PortalPage.Date(patient.BirthDate))).Append("</td><td>")
                    .Append("<form method=\"post\" action=\"").Append(Path).Append("\">")
                    .Append(AuthPages.AntiforgeryField(context))
                    .Append("<input type=\"hidden\" name=\"returnUrl\" value=\"").Append(AuthPages.Encode(request)).Append("\">")
                    .Append("<input type=\"hidden\" name=\"patient\" value=\"").Append(AuthPages.Encode(patient.Id ?? "")).Append("\">")
                    .Append("<button type=\"submit\" class=\"pick\" data-patient=\"").Append(AuthPages.Encode(patient.Id ?? "")).Append("\">Sélectionner<span class=\"hidden\"> ").Append(AuthPages.Encode(NameOf(patient))).Append("</span></button>")
                    .Append("</form></td></tr>");
            }
            body.Append("</tbody></table>");
        }
        return AuthPages.Page("Choisir un patient", body.ToString());
    }

    private static async Task<IResult> PickAsync(HttpContext context, LaunchContexts launches, Storage.ResourceStore store, ClientRegistry clients, Practitioners practitioners)
    {
        if (await AuthPages.ValidateFormAsync(context) is { } refused) return refused;
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var request = AuthPages.SafeReturnUrl(form["returnUrl"]);
        if (request is null) return AuthPages.Page("Requête invalide", "<p>Ouvrez cette page depuis la connexion d'une application.</p>", StatusCodes.Status400BadRequest);
        var user = await AuthPages.PractitionerAsync(context) is { } name ? practitioners.Find(name) : null;
        if (user is null) return Results.Redirect(QueryHelpers.AddQueryString(AuthPages.LoginPath, "returnUrl", request));

        var app = clients.Find(AuthPages.ClientIdOf(request) ?? "");
        var patientId = form["patient"].ToString();
        if (app is null || !FhirRequest.IsValidId(patientId))
            return AuthPages.Page("Requête invalide", "<p>Aucune application ou aucun patient indiqué.</p>", StatusCodes.Status400BadRequest);
        var stored = await store.ReadAsync("Patient", patientId, context.RequestAborted);
        var caller = CallerFor(app, user);
        if (stored is not null && !stored.Deleted)
        {
            try
            {
                // Only a patient the app's organisation may see can be picked (a form can name any id).
                await AccessPoint.For(caller, context.RequestServices).RequireInstanceAsync(Interaction.Read, stored, context.RequestAborted);
            }
            catch (FhirException)
            {
                var note = AuditNote.For(context);
                note.Entities.Add("Patient/" + patientId);
                note.Patients.Add(patientId);
                await RecordAsync(context, caller, "read", StatusCodes.Status404NotFound, note, query: null);
                stored = null;
            }
        }
        if (stored is null || stored.Deleted)
            return AuthPages.Page("Patient inconnu", "<p>Ce patient n'existe pas (ou plus).</p>", StatusCodes.Status404NotFound);

        var launch = await launches.CreateAsync(LaunchKind.Picked, app.ClientId, patientId, user.UserName, context.RequestAborted);
        return Results.Redirect(QueryHelpers.AddQueryString(WithoutPick(request), PickParameter, launch.Id));
    }

    /// <summary>
    /// Whom the picker acts for: the app the practitioner signs in to, as its organisation (kind and FINESS decide the
    /// consent rules), reading Patients for its user. A CSAPA's app lists only the patients who consented to the CSAPA.
    /// </summary>
    private static Caller CallerFor(Client app, PractitionerUser user) =>
        new(app.ClientId, app.Kind, app.OrganizationFiness, ["user/Patient.rs"], PatientId: null, user.FhirUser);

    private static Task RecordAsync(HttpContext context, Caller caller, string interaction, int status, AuditNote note, string? query)
    {
        var entry = AuditEntry.Of(context, caller, interaction, status, note, query);
        return context.RequestServices.GetRequiredService<AuditTrail>().CommitAsync(entry with { Reason = PickerReason + (entry.Reason is { } reason ? ": " + reason : "") });
    }

    private const string PickerReason = "patient picker of a SMART launch";

    /// <summary>The authorization request without an earlier pick (going back to the picker twice).</summary>
    public static string WithoutPick(string authorizeUrl)
    {
        var query = QueryHelpers.ParseQuery(new Uri("http://x" + authorizeUrl).Query);
        if (!query.ContainsKey(PickParameter)) return authorizeUrl;
        var kept = query.Where(p => p.Key != PickParameter).SelectMany(p => p.Value.Select(v => new KeyValuePair<string, string?>(p.Key, v)));
        return QueryHelpers.AddQueryString(AuthPages.AuthorizePath, kept);
    }

    /// <summary>Patients matching a name or an INS (identifier value); the most recently updated first when no term.</summary>
    private static async Task<IReadOnlyList<Patient>> FindAsync(HttpContext context, string? term, AccessFilter access)
    {
        var baseUrl = FhirBase.Of(context);
        var count = new KeyValuePair<string, string>("_count", MaxShown.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var queries = new List<KeyValuePair<string, string>[]>();
        if (string.IsNullOrWhiteSpace(term))
        {
            queries.Add([count, new("_sort", "-_lastUpdated")]);
        }
        else
        {
            queries.Add([count, new("name", term.Trim())]);
            queries.Add([count, new("identifier", term.Trim())]);
        }
        var found = new List<Patient>();
        foreach (var query in queries)
        {
            var bundle = await Rest.Search.ExecuteAsync(context.RequestServices, new SearchRequest(baseUrl, "Patient", query) { Access = access }, null, null, context.RequestAborted);
            foreach (var patient in bundle.Entry.Select(e => e.Resource).OfType<Patient>())
                if (found.Count < MaxShown && found.All(p => p.Id != patient.Id)) found.Add(patient);
        }
        return found;
    }

    private static string NameOf(Patient patient)
    {
        var name = patient.Name.FirstOrDefault(n => n.Use == HumanName.NameUse.Official) ?? patient.Name.FirstOrDefault();
        if (name is null) return $"(sans nom) {patient.Id}";
        return name.Text is { Length: > 0 } text ? text : string.Join(' ', name.Given.Append(name.Family).Where(s => !string.IsNullOrEmpty(s)));
    }
}
