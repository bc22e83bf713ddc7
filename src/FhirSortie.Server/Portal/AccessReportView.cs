using System.Globalization;
using System.Text;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;

namespace FhirSortie.Server.Portal;

/// <summary>
/// "Rapport d'accès" for the DPO: a person (exact identifier) and their $access-report as a table (when, who,
/// organisation, what, outcome, reason) with filters (period, outcome, organisation) and a CSV download of the same rows.
/// </summary>
public static class AccessReportView
{
    public static void Map(RouteGroupBuilder portal)
    {
        portal.MapGet("/rapport-acces", (Delegate)SearchPageAsync);
        portal.MapPost("/rapport-acces", (Delegate)SearchAsync);
        portal.MapGet("/rapport-acces/{id}", ReportAsync);
        portal.MapGet("/rapport-acces/{id}/csv", CsvAsync);
    }

    private const string Intro = "<h1>Rapport d'accès</h1><p>Qui a consulté les données d'une personne : recherchez-la par son identifiant exact.</p>";

    private static async Task<IResult> SearchPageAsync(HttpContext context)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Auditor);
        if (portal is null) return instead!;
        return Render(context, portal.User, portal.Csrf, "Rapport d'accès", Intro + PersonFinder.Form(PortalRoutes.AccessReport, portal.Csrf));
    }

    private static async Task<IResult> SearchAsync(HttpContext context)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Auditor);
        if (portal is null) return instead!;
        var (found, error) = await PersonFinder.FindAsync(context, portal.Api);
        if (error is not null)
            return Render(context, portal.User, portal.Csrf, "Rapport d'accès", Intro + PersonFinder.Form(PortalRoutes.AccessReport, portal.Csrf, error), StatusCodes.Status404NotFound);
        return Results.Redirect(PortalRoutes.Report(found[0].Id));
    }

    /// <summary>One row of the report.</summary>
    public sealed record Access(string When, string Who, string Organization, string Interaction, string Resources, string Outcome, string Reason);

    private static readonly string[] Outcomes = ["permitted", "refused", "error"];

    public sealed record Filters(string? Since, string? Until, string? Outcome, string? Organization)
    {
        public static Filters Of(HttpRequest request) => new(Day(request.Query["depuis"]), Day(request.Query["jusqua"]),
            Outcomes.Contains(request.Query["resultat"].ToString()) ? request.Query["resultat"].ToString() : null,
            request.Query["structure"].ToString() is { Length: > 0 and <= 100 } s ? s : null);

        private static string? Day(string? text) =>
            DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day) ? day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) : null;

        public string Query => string.Join('&', new[] { ("depuis", Since), ("jusqua", Until), ("resultat", Outcome), ("structure", Organization) }
            .Where(p => p.Item2 is not null).Select(p => p.Item1 + "=" + Uri.EscapeDataString(p.Item2!)));
    }

    public static async Task<List<Access>?> LoadAsync(PortalApi api, string patientId, Filters filters)
    {
        var query = new List<string>();
        if (filters.Since is { } since) query.Add("_since=" + Uri.EscapeDataString(since + "T00:00:00+01:00"));
        if (filters.Until is { } until) query.Add("_until=" + Uri.EscapeDataString(until + "T23:59:59+01:00"));
        var answer = await api.SendAsync(HttpMethod.Get, $"Patient/{Uri.EscapeDataString(patientId)}/$access-report" + (query.Count > 0 ? "?" + string.Join('&', query) : ""), null, null);
        if (answer.Resource is not Parameters parameters) return null;
        string Part(Parameters.ParameterComponent access, string name) =>
            string.Join(", ", access.Part.Where(p => p.Name == name).Select(p => p.Value switch
            {
                Identifier identifier => identifier.Value,
                ResourceReference reference => reference.Reference,
                Coding coding => coding.Display ?? coding.Code,
                Instant instant => DateTime(instant.Value),
                PrimitiveType primitive => primitive.ToString(),
                _ => null,
            }).OfType<string>());
        return [.. parameters.Parameter.Where(p => p.Name == "access").Select(a => new Access(Part(a, "when"),
                Part(a, "user") is { Length: > 0 } user ? user : Part(a, "client"),
                Part(a, "organizationName") is { Length: > 0 } name ? $"{name} ({Part(a, "organization")})" : Part(a, "organization"),
                Part(a, "interaction"), Part(a, "resource"), Part(a, "outcome"), Part(a, "reason")))
            .Where(a => filters.Outcome is null || a.Outcome == filters.Outcome)
            .Where(a => filters.Organization is null || a.Organization.Contains(filters.Organization, StringComparison.OrdinalIgnoreCase))];
    }

    private static string OutcomeLabel(string outcome) => outcome switch { "permitted" => "Autorisé", "refused" => "Refusé", "error" => "Erreur", _ => outcome };

    private static async Task<IResult> ReportAsync(HttpContext context, string id)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Auditor);
        if (portal is null) return instead!;
        var filters = Filters.Of(context.Request);
        var rows = await LoadAsync(portal.Api, id, filters);
        if (rows is null) return Message(context, "Rapport indisponible", "Cette personne est inconnue ou son rapport n'est pas accessible.", StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);
        var body = new StringBuilder("<p><a href=\"").Append(PortalRoutes.AccessReport).Append("\">← Autre personne</a></p><h1>Rapport d'accès</h1>")
            .Append("<form method=\"get\" action=\"").Append(H(PortalRoutes.Report(id))).Append("\" class=\"card\"><fieldset><legend>Filtres</legend>")
            .Append("<label for=\"depuis\">Depuis le</label> <input type=\"date\" id=\"depuis\" name=\"depuis\" value=\"").Append(H(filters.Since)).Append("\"> ")
            .Append("<label for=\"jusqua\">Jusqu'au</label> <input type=\"date\" id=\"jusqua\" name=\"jusqua\" value=\"").Append(H(filters.Until)).Append("\"> ")
            .Append("<label for=\"resultat\">Résultat</label> <select id=\"resultat\" name=\"resultat\"><option value=\"\">Tous</option>");
        foreach (var outcome in new[] { "permitted", "refused", "error" })
            body.Append("<option value=\"").Append(outcome).Append('"').Append(filters.Outcome == outcome ? " selected" : "").Append('>').Append(OutcomeLabel(outcome)).Append("</option>");
        body.Append("</select> <label for=\"structure\">Structure</label> <input id=\"structure\" name=\"structure\" value=\"").Append(H(filters.Organization)).Append("\"> ")
            .Append("<button type=\"submit\">Filtrer</button></fieldset></form>")
            .Append("<p><a href=\"").Append(H(PortalRoutes.Report(id) + "/csv" + (filters.Query.Length > 0 ? "?" + filters.Query : ""))).Append("\" download>Télécharger en CSV</a> · ")
            .Append(rows.Count).Append(" accès</p>")
            .Append("<table><thead><tr><th scope=\"col\">Quand</th><th scope=\"col\">Qui</th><th scope=\"col\">Structure</th><th scope=\"col\">Action</th><th scope=\"col\">Données</th><th scope=\"col\">Résultat</th><th scope=\"col\">Motif</th></tr></thead><tbody>");
        foreach (var row in rows)
            body.Append("<tr><td>").Append(H(row.When)).Append("</td><td>").Append(H(row.Who)).Append("</td><td>").Append(H(row.Organization)).Append("</td><td>")
                .Append(H(row.Interaction)).Append("</td><td>").Append(H(row.Resources)).Append("</td><td>").Append(H(OutcomeLabel(row.Outcome))).Append("</td><td>").Append(H(row.Reason)).Append("</td></tr>");
        body.Append("</tbody></table>");
        return Render(context, portal.User, portal.Csrf, "Rapport d'accès", body.ToString());
    }

    private static async Task<IResult> CsvAsync(HttpContext context, string id)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Auditor);
        if (portal is null) return instead!;
        var rows = await LoadAsync(portal.Api, id, Filters.Of(context.Request));
        if (rows is null) return Message(context, "Rapport indisponible", "Cette personne est inconnue ou son rapport n'est pas accessible.", StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);
        PortalCsv.Attachment(context.Response, "rapport-acces.csv");
        return Results.Text(Csv(rows), PortalCsv.ContentType);
    }

    /// <summary>RFC 4180 with ';' (what French spreadsheets open), a BOM for Excel, and no formula injection (PortalCsv).</summary>
    public static string Csv(IEnumerable<Access> rows)
    {
        var csv = new StringBuilder(PortalCsv.Bom + "quand;qui;structure;action;donnees;resultat;motif\r\n");
        foreach (var row in rows)
            csv.Append(PortalCsv.Line([row.When, row.Who, row.Organization, row.Interaction, row.Resources, OutcomeLabel(row.Outcome), row.Reason]));
        return csv.ToString();
    }
}
