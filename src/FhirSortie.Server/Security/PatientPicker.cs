using System.Text;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.WebUtilities;

namespace FhirSortie.Server.Security;

/// <summary>
/// Standalone launch with <c>launch/patient</c>: the signed-in practitioner picks the patient the app will be about.
/// The choice becomes a single-use launch context in the database, bound to the app's client and to the practitioner,
/// and the browser goes back to the authorization endpoint with its opaque id. An app cannot skip the page by adding
/// a patient id to its request: only ids minted here, for this client and this user, are honoured.
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

    private static async Task<IResult> ShowAsync(HttpContext context, string? returnUrl, string? q)
    {
        var request = AuthPages.SafeReturnUrl(returnUrl);
        if (request is null) return AuthPages.Page("Bad request", "<p>Open this page from an application's sign-in.</p>", StatusCodes.Status400BadRequest);
        if (await AuthPages.PractitionerAsync(context) is null)
            return Results.Redirect(QueryHelpers.AddQueryString(AuthPages.LoginPath, "returnUrl", request));

        var body = new StringBuilder();
        body.Append("<p>Choose the patient the application will work on.</p>")
            .Append("<form method=\"get\" action=\"").Append(Path).Append("\">")
            .Append("<input type=\"hidden\" name=\"returnUrl\" value=\"").Append(AuthPages.Encode(request)).Append("\">")
            .Append("<label for=\"q\">Name or INS</label> <input id=\"q\" name=\"q\" value=\"").Append(AuthPages.Encode(q ?? "")).Append("\"> ")
            .Append("<button type=\"submit\" id=\"search\">Search</button></form>");

        var patients = await FindAsync(context, q);
        if (patients.Count == 0)
        {
            body.Append("<p id=\"no-patient\">No patient found.</p>");
        }
        else
        {
            body.Append("<table><thead><tr><th>Name</th><th>Birth date</th><th></th></tr></thead><tbody>");
            foreach (var patient in patients)
            {
                body.Append("<tr><td>").Append(AuthPages.Encode(NameOf(patient))).Append("</td><td>")
                    .Append(AuthPages.Encode(patient.BirthDate ?? "")).Append("</td><td>")
                    .Append("<form method=\"post\" action=\"").Append(Path).Append("\">")
                    .Append(AuthPages.AntiforgeryField(context))
                    .Append("<input type=\"hidden\" name=\"returnUrl\" value=\"").Append(AuthPages.Encode(request)).Append("\">")
                    .Append("<input type=\"hidden\" name=\"patient\" value=\"").Append(AuthPages.Encode(patient.Id ?? "")).Append("\">")
                    .Append("<button type=\"submit\" class=\"pick\" data-patient=\"").Append(AuthPages.Encode(patient.Id ?? "")).Append("\">Select</button>")
                    .Append("</form></td></tr>");
            }
            body.Append("</tbody></table>");
        }
        return AuthPages.Page("Choose a patient", body.ToString());
    }

    private static async Task<IResult> PickAsync(HttpContext context, LaunchContexts launches, Storage.ResourceStore store)
    {
        if (await AuthPages.ValidateFormAsync(context) is { } refused) return refused;
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var request = AuthPages.SafeReturnUrl(form["returnUrl"]);
        if (request is null) return AuthPages.Page("Bad request", "<p>Open this page from an application's sign-in.</p>", StatusCodes.Status400BadRequest);
        var user = await AuthPages.PractitionerAsync(context);
        if (user is null) return Results.Redirect(QueryHelpers.AddQueryString(AuthPages.LoginPath, "returnUrl", request));

        var clientId = QueryHelpers.ParseQuery(new Uri("http://x" + request).Query).GetValueOrDefault("client_id").ToString();
        var patientId = form["patient"].ToString();
        if (clientId.Length == 0 || patientId.Length == 0)
            return AuthPages.Page("Bad request", "<p>No application or no patient.</p>", StatusCodes.Status400BadRequest);
        var stored = await store.ReadAsync("Patient", patientId, context.RequestAborted);
        if (stored is null || stored.Deleted)
            return AuthPages.Page("Unknown patient", "<p>This patient does not exist (any more).</p>", StatusCodes.Status404NotFound);

        var launch = await launches.CreateAsync(LaunchKind.Picked, clientId, patientId, user, context.RequestAborted);
        return Results.Redirect(QueryHelpers.AddQueryString(WithoutPick(request), PickParameter, launch.Id));
    }

    /// <summary>The authorization request without an earlier pick (going back to the picker twice).</summary>
    public static string WithoutPick(string authorizeUrl)
    {
        var query = QueryHelpers.ParseQuery(new Uri("http://x" + authorizeUrl).Query);
        if (!query.ContainsKey(PickParameter)) return authorizeUrl;
        var kept = query.Where(p => p.Key != PickParameter).SelectMany(p => p.Value.Select(v => new KeyValuePair<string, string?>(p.Key, v)));
        return QueryHelpers.AddQueryString(AuthPages.AuthorizePath, kept);
    }

    /// <summary>Patients matching a name or an INS (identifier value); the most recently updated first when no term.</summary>
    private static async Task<IReadOnlyList<Patient>> FindAsync(HttpContext context, string? term)
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
            var bundle = await Rest.Search.ExecuteAsync(context.RequestServices, new SearchRequest(baseUrl, "Patient", query), null, null, context.RequestAborted);
            foreach (var patient in bundle.Entry.Select(e => e.Resource).OfType<Patient>())
                if (found.Count < MaxShown && found.All(p => p.Id != patient.Id)) found.Add(patient);
        }
        return found;
    }

    private static string NameOf(Patient patient)
    {
        var name = patient.Name.FirstOrDefault(n => n.Use == HumanName.NameUse.Official) ?? patient.Name.FirstOrDefault();
        if (name is null) return $"(no name) {patient.Id}";
        return name.Text is { Length: > 0 } text ? text : string.Join(' ', name.Given.Append(name.Family).Where(s => !string.IsNullOrEmpty(s)));
    }
}
