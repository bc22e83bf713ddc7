using System.Text;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The SPIP counsellor's page: a person they follow, found by exact identifier only; the appointments (date, place,
/// status, care organisation) and the attendance attestations. Nothing clinical is asked for, and the gateway would
/// refuse or redact it anyway (justice actors never read clinical content).
/// </summary>
public static class SpipView
{
    public static void Map(RouteGroupBuilder portal)
    {
        portal.MapGet("/spip", (Delegate)SearchPageAsync);
        portal.MapPost("/spip", (Delegate)SearchAsync);
        portal.MapGet("/spip/{id}", PersonAsync);
    }

    private const string Intro = "<h1>Personnes suivies</h1><p>Recherchez une personne que vous suivez par son identifiant exact. "
        + "Vous verrez ses rendez-vous (date, lieu, statut) et les attestations de présence émises avec son accord, jamais d'information médicale.</p>";

    private static async Task<IResult> SearchPageAsync(HttpContext context)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Justice);
        if (portal is null) return instead!;
        return Render(context, portal.User, portal.Csrf, "Personnes suivies", Intro + PersonFinder.Form(PortalRoutes.Spip, portal.Csrf));
    }

    private static async Task<IResult> SearchAsync(HttpContext context)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Justice);
        if (portal is null) return instead!;
        var (found, error) = await PersonFinder.FindAsync(context, portal.Api);
        if (error is not null)
            return Render(context, portal.User, portal.Csrf, "Personnes suivies", Intro + PersonFinder.Form(PortalRoutes.Spip, portal.Csrf, error), StatusCodes.Status404NotFound);
        if (found.Count == 1) return Results.Redirect(PortalRoutes.SpipPerson(found[0].Id));
        var body = new StringBuilder(Intro).Append("<ul>");
        foreach (var patient in found) body.Append("<li><a href=\"").Append(H(PortalRoutes.SpipPerson(patient.Id))).Append("\">").Append(H(PersonName(patient))).Append("</a></li>");
        return Render(context, portal.User, portal.Csrf, "Personnes suivies", body.Append("</ul>").ToString());
    }

    private static async Task<IResult> PersonAsync(HttpContext context, string id)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Justice);
        if (portal is null) return instead!;
        var api = portal.Api;
        var (patient, _) = await api.ReadAsync<Patient>("Patient/" + Uri.EscapeDataString(id));
        if (patient is null) return Message(context, "Personne introuvable", "Cette personne n'est pas accessible.", StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);
        var p = Uri.EscapeDataString("Patient/" + id);
        var appointments = PortalData.Resources<Appointment>(await api.SearchAsync($"Appointment?patient={p}&_count=50")).OrderBy(a => a.Start).ToList();
        var attestations = PortalData.Resources<DocumentReference>(await api.SearchAsync($"DocumentReference?patient={p}&_count=50"))
            .Where(d => d.Category.Any(c => c.Coding.Any(x => x.Code == Consents.AccessRules.AttendanceAttestationCategory))).ToList();
        var places = await PortalData.LocationNamesAsync(api, appointments);
        var body = new StringBuilder("<p><a href=\"").Append(PortalRoutes.Spip).Append("\">← Personnes suivies</a></p>")
            .Append("<h1>").Append(H(PersonName(patient))).Append("</h1><h2>Rendez-vous</h2>");
        if (appointments.Count == 0) body.Append("<p>Aucun rendez-vous communiqué.</p>");
        else
        {
            body.Append("<table><thead><tr><th scope=\"col\">Date</th><th scope=\"col\">Lieu</th><th scope=\"col\">Statut</th></tr></thead><tbody>");
            foreach (var appointment in appointments)
                body.Append("<tr><td>").Append(H(DateTime(appointment.Start))).Append("</td><td>").Append(H(PortalData.Place(appointment, places)))
                    .Append("</td><td>").Append(H(PortalData.Status(appointment.Status))).Append("</td></tr>");
            body.Append("</tbody></table>");
        }
        body.Append("<h2>Attestations de présence</h2>");
        if (attestations.Count == 0) body.Append("<p>Aucune attestation émise.</p>");
        else
        {
            body.Append("<ul>");
            foreach (var attestation in attestations)
                body.Append("<li>Attestation de présence émise le ").Append(H(DateTime(attestation.Date))).Append("</li>");
            body.Append("</ul>");
        }
        return Render(context, portal.User, portal.Csrf, "Personne suivie", body.ToString());
    }
}
