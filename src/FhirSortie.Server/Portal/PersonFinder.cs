using System.Text;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;

namespace FhirSortie.Server.Portal;

/// <summary>
/// Finding one person by an exact identifier (system + value), posted in a form so that the INS never appears in a
/// URL; the gateway itself refuses anything looser for justice actors (Consent/FollowedPersonSearch.cs).
/// </summary>
public static class PersonFinder
{
    public static readonly (string System, string Label)[] Systems =
    [
        ("urn:oid:1.2.250.1.213.1.4.8", "INS-NIR"),
        ("urn:oid:1.2.250.1.213.1.4.9", "INS-NIA"),
        ("urn:oid:1.2.250.1.213.1.4.10", "INS de test"),
        ("urn:oid:1.2.250.1.213.1.4.11", "INS de démonstration"),
    ];

    public static string Form(string action, string csrf, string? error = null)
    {
        var html = new StringBuilder("<form method=\"post\" action=\"").Append(H(action)).Append("\" class=\"card\">").Append(CsrfInput(csrf))
            .Append("<div class=\"field\"><label for=\"systeme\">Type d'identifiant</label><br><select id=\"systeme\" name=\"system\">");
        foreach (var (system, label) in Systems) html.Append("<option value=\"").Append(H(system)).Append("\">").Append(H(label)).Append("</option>");
        html.Append("</select></div><div class=\"field\"><label for=\"identifiant\">Identifiant exact</label><br>")
            .Append("<input id=\"identifiant\" name=\"value\" required maxlength=\"64\" autocomplete=\"off\" inputmode=\"numeric\"")
            .Append(error is null ? "" : " aria-describedby=\"identifiant-erreur\" aria-invalid=\"true\"").Append(">");
        if (error is not null) html.Append("<p class=\"error\" id=\"identifiant-erreur\">").Append(H(error)).Append("</p>");
        html.Append("</div><button type=\"submit\" class=\"primary\">Rechercher</button></form>");
        return html.ToString();
    }

    /// <summary>The posted identifier's matches (usually one), or an error message for the field.</summary>
    public static async Task<(List<Patient> Found, string? Error)> FindAsync(HttpContext context, PortalApi api)
    {
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var system = form["system"].ToString();
        var value = form["value"].ToString().Trim();
        if (!Systems.Any(s => s.System == system)) return ([], "Choisissez un type d'identifiant.");
        if (value.Length is 0 or > 64 || value.Any(c => !char.IsLetterOrDigit(c))) return ([], "Saisissez l'identifiant exact, sans espace.");
        var bundle = await api.SearchAsync($"Patient?identifier={Uri.EscapeDataString(system + "|" + value)}&_count=5");
        var found = PortalData.Resources<Patient>(bundle).ToList();
        return found.Count == 0 ? ([], "Aucune personne accessible avec cet identifiant.") : (found, null);
    }
}
