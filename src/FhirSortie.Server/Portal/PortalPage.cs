using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The portal's page frame: French (lang="fr", dd/MM/yyyy, Europe/Paris), no script at all (so the CSP allows
/// none), one stylesheet of our own, never cached, never framed; and the small HTML helpers the views share.
/// </summary>
public static class PortalPage
{
    public static readonly CultureInfo French = CultureInfo.GetCultureInfo("fr-FR");
    private static readonly TimeZoneInfo Paris = TimeZoneInfo.FindSystemTimeZoneById("Europe/Paris");

    public const string SecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    // All of Unicode left as is (French accents), only the HTML-special characters encoded.
    private static readonly HtmlEncoder Encoder = HtmlEncoder.Create(System.Text.Unicode.UnicodeRanges.All);

    public static string H(string? text) => Encoder.Encode(text ?? "");

    /// <summary>dd/MM/yyyy (a FHIR date or dateTime; times in Europe/Paris).</summary>
    public static string Date(string? fhirDate)
    {
        if (string.IsNullOrEmpty(fhirDate)) return "—";
        if (fhirDate.Length == 10 && System.DateTime.TryParseExact(fhirDate, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
            return day.ToString("dd/MM/yyyy", CultureInfo.InvariantCulture);
        return DateTimeOffset.TryParse(fhirDate, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var instant)
            ? TimeZoneInfo.ConvertTime(instant, Paris).ToString("dd/MM/yyyy", CultureInfo.InvariantCulture)
            : fhirDate;
    }

    /// <summary>dd/MM/yyyy à HH:mm, Europe/Paris.</summary>
    public static string DateTime(DateTimeOffset? instant) =>
        instant is { } value ? TimeZoneInfo.ConvertTime(value, Paris).ToString("dd/MM/yyyy 'à' HH'h'mm", CultureInfo.InvariantCulture) : "—";

    public static string DateTime(string? fhirDateTime) =>
        fhirDateTime is { Length: > 10 } && DateTimeOffset.TryParse(fhirDateTime, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var instant)
            ? DateTime(instant)
            : Date(fhirDateTime);

    /// <summary>Today in Paris, as a date.</summary>
    public static DateOnly Today(TimeProvider clock) => DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(clock.GetUtcNow(), Paris).Date);

    public static string PersonName(Patient? patient) =>
        patient?.Name.FirstOrDefault() is { } name ? $"{string.Join(' ', name.Given)} {name.Family?.ToUpper(French)}".Trim() : "Personne";

    public static string CsrfInput(string csrf) => $"<input type=\"hidden\" name=\"{PortalSession.CsrfField}\" value=\"{H(csrf)}\">";

    /// <summary>A form with one button (and optional fields), CSRF token included.</summary>
    public static string Button(string action, string label, string csrf, string fields = "", string css = "") =>
        $"<form method=\"post\" action=\"{H(action)}\" class=\"inline\">{CsrfInput(csrf)}{fields}<button type=\"submit\"{(css.Length > 0 ? $" class=\"{css}\"" : "")}>{H(label)}</button></form>";

    /// <summary>A complete page for a signed-in user (header with the organisation, navigation and "Se déconnecter").</summary>
    public static IResult Render(HttpContext context, PortalUser? user, string? csrf, string title, string body, int status = StatusCodes.Status200OK)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            .Append("<title>").Append(H(title)).Append(" – Portail FhirSortie</title>")
            .Append("<link rel=\"stylesheet\" href=\"").Append(PortalRoutes.Styles).Append("\"></head><body>")
            .Append("<a class=\"skip\" href=\"#contenu\">Aller au contenu</a>")
            .Append("<header class=\"banner\"><p class=\"brand\"><a href=\"").Append(PortalRoutes.Home).Append("\">Portail de sortie FhirSortie</a></p>");
        if (user is not null && csrf is not null)
        {
            html.Append("<nav aria-label=\"Navigation principale\"><ul>");
            foreach (var (path, label) in Navigation(user)) html.Append("<li><a href=\"").Append(path).Append("\">").Append(H(label)).Append("</a></li>");
            html.Append("</ul></nav><div class=\"who\"><span>").Append(H(user.DisplayName)).Append(" — ").Append(H(user.KindLabel))
                .Append(" (FINESS ").Append(H(user.Finess)).Append(")</span>")
                .Append(Button(PortalRoutes.SignOut, "Se déconnecter", csrf)).Append("</div>");
        }
        html.Append("</header><main id=\"contenu\">").Append(body).Append("</main>")
            .Append("<footer><p>Données de santé : ne pas imprimer ni copier sans nécessité. Session fermée après 30 minutes d'inactivité.</p></footer></body></html>");
        return new HtmlResult(html.ToString(), status);
    }

    /// <summary>A page with a heading and a message (errors, refusals), with a sign-in button when the session is gone.</summary>
    public static IResult Message(HttpContext context, string title, string message, int status, bool signInAgain = false, PortalUser? user = null, string? csrf = null)
    {
        var body = $"<h1>{H(title)}</h1><p role=\"alert\">{H(message)}</p>"
            + (signInAgain ? SignInForm() : $"<p><a href=\"{PortalRoutes.Home}\">Retour à l'accueil</a></p>");
        return Render(context, user, csrf, title, body, status);
    }

    public static string SignInForm() =>
        $"<form method=\"get\" action=\"{PortalRoutes.SignIn}\"><button type=\"submit\" class=\"primary\">Se connecter</button></form>";

    private static IEnumerable<(string Path, string Label)> Navigation(PortalUser user) => user.Kind switch
    {
        Security.ActorKind.Usmp => [(PortalRoutes.Sorties, "Sorties"), (PortalRoutes.Indicators, "Indicateurs")],
        Security.ActorKind.Observer => [(PortalRoutes.Indicators, "Indicateurs")],
        Security.ActorKind.Justice => [(PortalRoutes.Spip, "Personnes suivies")],
        Security.ActorKind.Auditor => [(PortalRoutes.AccessReport, "Rapport d'accès")],
        Security.ActorKind.Csapa => [(PortalRoutes.Inbox, "À prendre en charge"), (PortalRoutes.Consent, "Recueil du consentement")],
        _ => [(PortalRoutes.Inbox, "À prendre en charge")],
    };

    /// <summary>The portal's answer headers: HTML, no-store, no framing, no script, no referrer.</summary>
    public static void SecureHeaders(HttpResponse response)
    {
        response.Headers.CacheControl = "no-store";
        response.Headers.Pragma = "no-cache";
        response.Headers["X-Frame-Options"] = "DENY";
        response.Headers.ContentSecurityPolicy = SecurityPolicy;
        response.Headers["Referrer-Policy"] = "no-referrer";
        response.Headers.XContentTypeOptions = "nosniff";
    }

    private sealed class HtmlResult(string html, int status) : IResult
    {
        public System.Threading.Tasks.Task ExecuteAsync(HttpContext context)
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = "text/html; charset=utf-8";
            SecureHeaders(context.Response);
            return context.Response.WriteAsync(html, context.RequestAborted);
        }
    }
}
