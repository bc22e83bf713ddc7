using System.Globalization;
using System.Text;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;

namespace FhirSortie.Server.Portal;

/// <summary>
/// "Indicateurs" (issue 24): the continuity measures of <c>Measure/{id}/$evaluate-measure</c> (summary MeasureReports,
/// counts only, small counts suppressed by the gateway) as charts per month, per prison and per kind of exit, each with
/// its table, and the strata as CSV. A USMP sees its own prison only (the subject is always its Organization); a
/// public-health observer (ARS) sees all prisons or one. The page reads nothing but MeasureReports, so it never shows
/// a person, whoever looks at it.
/// </summary>
public static class IndicatorsView
{
    /// <summary>The measures of conformance/measures/ (ids fixed by the contract with Measure/), with their French names.</summary>
    public static readonly IReadOnlyList<(string Id, string Title)> Measures =
    [
        ("sortie-avec-paquet", "Sorties avec un dossier de sortie transmis au plus tard le jour de la sortie"),
        ("tso-continuite", "Continuité du traitement de substitution aux opiacés (ordonnance, dépannage, naloxone)"),
        ("relais-accepte", "Prises en charge acceptées après la sortie"),
        ("premier-rdv-honore", "Premier rendez-vous honoré dans les 7 jours suivant la sortie"),
        ("sortie-non-annoncee", "Sorties non annoncées (dossier incomplet à la sortie)"),
        ("transfert-relais", "Transferts dont la prise en charge a été réattribuée sous 48 h"),
        ("consentement-avant-sortie", "Consentements recueillis avant la sortie"),
    ];

    private static readonly ActorKind[] Viewers = [ActorKind.Usmp, ActorKind.Observer];

    public const string AllPrisons = "toutes";

    public static void Map(RouteGroupBuilder portal)
    {
        portal.MapGet("/indicateurs", (Delegate)PageAsync);
        portal.MapGet("/indicateurs/csv", (Delegate)CsvAsync);
    }

    /// <summary>What the form asks: a measure, a period (dates, Europe/Paris days) and, for observers, a prison or all.</summary>
    public sealed record Choice(string Measure, DateOnly Start, DateOnly End, string Prison)
    {
        public string Title => Measures.First(m => m.Id == Measure).Title;

        public string Query => $"indicateur={Uri.EscapeDataString(Measure)}&debut={Start:yyyy-MM-dd}&fin={End:yyyy-MM-dd}&usmp={Uri.EscapeDataString(Prison)}";

        /// <summary>The choice in the query string, or the defaults (first measure, the last twelve months, all prisons); null with a reason when wrong.</summary>
        public static (Choice? Choice, string? Problem) Of(IQueryCollection query, DateOnly today)
        {
            var measure = query["indicateur"].ToString() is { Length: > 0 } m ? m : Measures[0].Id;
            if (Measures.All(x => x.Id != measure)) return (null, "Cet indicateur n'existe pas.");
            var start = new DateOnly(today.Year, today.Month, 1).AddMonths(-11);
            var end = today;
            if (query["debut"].ToString() is { Length: > 0 } s && !DateOnly.TryParseExact(s, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out start))
                return (null, "La date de début n'est pas une date (jj/mm/aaaa).");
            if (query["fin"].ToString() is { Length: > 0 } e && !DateOnly.TryParseExact(e, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out end))
                return (null, "La date de fin n'est pas une date (jj/mm/aaaa).");
            if (end < start) return (null, "La date de fin précède la date de début.");
            if (end > start.AddYears(5)) return (null, "La période ne peut dépasser cinq ans.");
            var prison = query["usmp"].ToString() is { Length: > 0 } p ? p : AllPrisons;
            return (new Choice(measure, start, end, prison), null);
        }
    }

    /// <summary>What the page shows: the report, and for observers the prisons they may pick (from the report's own strata).</summary>
    public sealed record Loaded(IndicatorReport? Report, IReadOnlyList<(string Key, string Label)> Prisons, string? Problem);

    public static async Task<Loaded> LoadAsync(PortalApi api, PortalUser user, Choice choice)
    {
        var evaluate = $"Measure/{Uri.EscapeDataString(choice.Measure)}/$evaluate-measure?periodStart={choice.Start:yyyy-MM-dd}&periodEnd={choice.End:yyyy-MM-dd}&reportType=summary";
        if (user.Kind == ActorKind.Usmp)
        {
            // Its own prison, whatever the query says: without a subject the gateway evaluates the USMP's own (and refuses another).
            var (report, problem) = await EvaluateAsync(api, evaluate, choice.Measure);
            return new Loaded(report, [], problem);
        }
        var (all, refused) = await EvaluateAsync(api, evaluate, choice.Measure);
        if (all is null) return new Loaded(null, [], refused);
        var prisons = all.Groups.SelectMany(g => g.Strata.GetValueOrDefault(IndicatorReport.Prison) ?? []).Select(r => (r.Key, r.Label))
            .DistinctBy(p => p.Key).OrderBy(p => p.Label, StringComparer.Create(French, false)).ToList();
        if (choice.Prison == AllPrisons) return new Loaded(all, prisons, null);
        if (prisons.All(p => p.Key != choice.Prison)) return new Loaded(all, prisons, "Cet établissement n'a pas de données pour cette période : tous les établissements sont affichés.");
        // A prison stratum is its FINESS; the subject is its Organization (the directory, which observers read).
        if ((await PortalData.MyOrganizationsAsync(api, choice.Prison)).FirstOrDefault() is not { } subject)
            return new Loaded(all, prisons, "Cet établissement est inconnu de l'annuaire : tous les établissements sont affichés.");
        var (one, problemOne) = await EvaluateAsync(api, evaluate + "&subject=" + Uri.EscapeDataString(subject), choice.Measure);
        return new Loaded(one, prisons, problemOne);
    }

    private static async Task<(IndicatorReport?, string?)> EvaluateAsync(PortalApi api, string relative, string measure)
    {
        var answer = await api.SendAsync(HttpMethod.Get, relative, null, null);
        return answer is { Ok: true, Resource: MeasureReport report } ? (IndicatorReport.Of(measure, report), null) : (null, answer.Problem);
    }

    private static async Task<IResult> PageAsync(HttpContext context, TimeProvider clock)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Viewers);
        if (portal is null) return instead!;
        var (choice, wrong) = Choice.Of(context.Request.Query, Today(clock));
        if (choice is null)
            return Render(context, portal.User, portal.Csrf, "Indicateurs", Page(portal.User, Choice.Of(new QueryCollection(), Today(clock)).Choice!, new Loaded(null, [], wrong)), StatusCodes.Status400BadRequest);
        var loaded = await LoadAsync(portal.Api, portal.User, choice);
        return Render(context, portal.User, portal.Csrf, "Indicateurs", Page(portal.User, choice, loaded));
    }

    private static async Task<IResult> CsvAsync(HttpContext context, TimeProvider clock)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Viewers);
        if (portal is null) return instead!;
        var (choice, wrong) = Choice.Of(context.Request.Query, Today(clock));
        if (choice is null) return Message(context, "Indicateurs", wrong!, StatusCodes.Status400BadRequest, user: portal.User, csrf: portal.Csrf);
        var loaded = await LoadAsync(portal.Api, portal.User, choice);
        if (loaded.Report is null) return Message(context, "Indicateurs", loaded.Problem ?? "Indicateur indisponible.", StatusCodes.Status502BadGateway, user: portal.User, csrf: portal.Csrf);
        PortalCsv.Attachment(context.Response, $"indicateur-{choice.Measure}-{choice.Start:yyyy-MM-dd}-{choice.End:yyyy-MM-dd}.csv");
        return Results.Text(IndicatorCsv.Of(choice.Title, loaded.Report), PortalCsv.ContentType);
    }

    public static string Page(PortalUser user, Choice choice, Loaded loaded)
    {
        var body = new StringBuilder("<h1>Indicateurs</h1>")
            .Append("<p class=\"hint\">Indicateurs de continuité des soins à la sortie de détention. Ils ne contiennent que des effectifs : ")
            .Append("un effectif inférieur à 11 est masqué (« &lt; 11 ») pour qu'aucune personne ne puisse être reconnue.</p>");
        body.Append("<form method=\"get\" action=\"").Append(PortalRoutes.Indicators).Append("\" class=\"card noprint\">")
            .Append("<div class=\"field\"><label for=\"indicateur\">Indicateur</label><br><select id=\"indicateur\" name=\"indicateur\">");
        foreach (var (id, title) in Measures)
            body.Append("<option value=\"").Append(H(id)).Append('"').Append(id == choice.Measure ? " selected" : "").Append('>').Append(H(title)).Append("</option>");
        body.Append("</select></div>")
            .Append("<div class=\"field\"><label for=\"debut\">Du</label> <input type=\"date\" id=\"debut\" name=\"debut\" value=\"").Append(choice.Start.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)).Append("\" required> ")
            .Append("<label for=\"fin\">au</label> <input type=\"date\" id=\"fin\" name=\"fin\" value=\"").Append(choice.End.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)).Append("\" required></div>");
        if (user.Kind == ActorKind.Observer)
        {
            body.Append("<div class=\"field\"><label for=\"usmp\">Établissement</label><br><select id=\"usmp\" name=\"usmp\"><option value=\"").Append(AllPrisons).Append('"')
                .Append(choice.Prison == AllPrisons ? " selected" : "").Append(">Tous les établissements</option>");
            foreach (var (key, label) in loaded.Prisons)
                body.Append("<option value=\"").Append(H(key)).Append('"').Append(key == choice.Prison ? " selected" : "").Append('>').Append(H(label)).Append("</option>");
            body.Append("</select></div>");
        }
        else body.Append("<p>Établissement : le vôtre (").Append(H(user.DisplayName)).Append(").</p>");
        body.Append("<button type=\"submit\" class=\"primary\">Afficher</button></form>");

        if (loaded.Problem is not null) body.Append("<p class=\"alert\" role=\"alert\">").Append(H(loaded.Problem)).Append("</p>");
        if (loaded.Report is not { } report) return body.ToString();

        body.Append("<h2 id=\"indicateur-titre\">").Append(H(choice.Title)).Append("</h2><p>Du ").Append(H(choice.Start.ToString("dd/MM/yyyy", CultureInfo.InvariantCulture)))
            .Append(" au ").Append(H(choice.End.ToString("dd/MM/yyyy", CultureInfo.InvariantCulture)))
            .Append(user.Kind == ActorKind.Observer && choice.Prison != AllPrisons ? " · " + H(loaded.Prisons.FirstOrDefault(p => p.Key == choice.Prison).Label ?? "") : "")
            .Append("</p><p class=\"noprint\"><a href=\"").Append(H(PortalRoutes.IndicatorsCsv + "?" + choice.Query)).Append("\" download>Télécharger en CSV</a></p>");
        if (report.Groups.Count == 0) body.Append("<p role=\"status\">Aucune donnée pour cette période.</p>");
        var n = 0;
        foreach (var group in report.Groups)
        {
            if (report.Groups.Count > 1) body.Append("<h3>").Append(H(group.Label)).Append("</h3>");
            body.Append("<p class=\"card\">Ensemble : <strong>").Append(H(group.Total.ScoreShown)).Append("</strong> (").Append(H(group.Total.Ratio)).Append(")</p>");
            foreach (var (code, heading, column) in new[] { (IndicatorReport.Month, "Par mois", "Mois"), (IndicatorReport.Prison, "Par établissement", "Établissement"), (IndicatorReport.ExitKind, "Par type de sortie", "Type de sortie") })
            {
                if (group.Strata.GetValueOrDefault(code) is not { Count: > 0 } rows) continue;
                var title = $"{heading} : {choice.Title}" + (report.Groups.Count > 1 ? $" ({group.Label})" : "");
                var level = report.Groups.Count > 1 ? "h4" : "h3";
                body.Append("<section class=\"indicator\"><").Append(level).Append('>').Append(H(heading)).Append("</").Append(level).Append('>')
                    .Append(IndicatorChart.Bars($"graphique-{++n}", title, rows))
                    .Append(IndicatorChart.Table(title, column, rows)).Append("</section>");
            }
        }
        return body.ToString();
    }
}
