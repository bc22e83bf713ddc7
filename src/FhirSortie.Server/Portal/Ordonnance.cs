using System.Text;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The exit prescription as a printable ordonnance (prescriber and RPPS, person, each medicine with dose, quantity,
/// validity and the bridging supply handed over), and the liaison letter, both for one hand-off. Printed with the
/// browser (print CSS): no PDF library is served on our NuGet mirror, and a browser prints to PDF anyway.
/// </summary>
public static class Ordonnance
{
    private static readonly ActorKind[] Readers = [ActorKind.Csapa, ActorKind.Act, ActorKind.Care, ActorKind.Usmp];

    public static void Map(RouteGroupBuilder portal)
    {
        portal.MapGet("/prises-en-charge/{id}/ordonnance", PrescriptionAsync);
        portal.MapGet("/prises-en-charge/{id}/lettre", LetterAsync);
    }

    private static async Task<IResult> PrescriptionAsync(HttpContext context, string id)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Readers);
        if (portal is null) return instead!;
        var handoff = await Inbox.LoadAsync(portal.Api, id);
        if (handoff is null || handoff.Prescriptions.Count == 0)
            return Message(context, "Ordonnance indisponible", "Aucune prescription de sortie n'est accessible pour cette demande.", StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);
        var body = new StringBuilder("<div class=\"sheet\">");
        body.Append("<p class=\"noprint\"><a href=\"").Append(H(PortalRoutes.Handoff(id))).Append("\">← Retour à la demande</a> · Utilisez la commande Imprimer de votre navigateur (Ctrl+P).</p>");
        body.Append("<h1>Ordonnance de sortie de détention</h1>");
        foreach (var group in handoff.Prescriptions.GroupBy(p => p.Requester?.Reference ?? ""))
        {
            var prescriber = PortalData.IdOf(group.First().Requester, "Practitioner") is { } practitionerId
                ? (await portal.Api.ReadAsync<Practitioner>("Practitioner/" + Uri.EscapeDataString(practitionerId))).Resource
                : null;
            var rpps = prescriber?.Identifier.FirstOrDefault(i => i.System == "https://rpps.esante.gouv.fr" || i.System == "urn:oid:1.2.250.1.71.4.2.1")?.Value;
            var name = prescriber?.Name.FirstOrDefault() is { } n ? $"{string.Join(' ', n.Prefix)} {string.Join(' ', n.Given)} {n.Family}".Trim() : "Prescripteur";
            body.Append("<div class=\"card\"><p><strong>Prescripteur :</strong> ").Append(H(name)).Append(" — RPPS <span id=\"rpps\">").Append(H(rpps ?? "non renseigné")).Append("</span></p>")
                .Append("<p><strong>Patient :</strong> ").Append(H(PersonName(handoff.Patient))).Append(", né(e) le ").Append(H(Date(handoff.Patient.BirthDate))).Append("</p>")
                .Append("<p><strong>Date :</strong> ").Append(H(Date(group.First().AuthoredOn))).Append("</p>")
                .Append("<table><thead><tr><th scope=\"col\">Médicament</th><th scope=\"col\">Posologie</th><th scope=\"col\">Quantité</th><th scope=\"col\">Validité</th><th scope=\"col\">Dépannage remis à la sortie</th></tr></thead><tbody>");
            foreach (var request in group)
            {
                var quantity = request.DispenseRequest?.Quantity is { Value: { } q } quantityValue ? $"{q} {quantityValue.Unit}" : "—";
                var validity = request.DispenseRequest?.ValidityPeriod is { } period ? $"du {Date(period.Start)} au {Date(period.End)}" : "—";
                body.Append("<tr><td>").Append(H(PortalData.MedicationName(request))).Append("</td><td>").Append(H(request.DosageInstruction.FirstOrDefault()?.Text))
                    .Append("</td><td>").Append(H(quantity)).Append("</td><td>").Append(H(validity)).Append("</td><td>")
                    .Append(PortalData.BridgingDays(request) is { } days ? $"{days} jours" : "—").Append("</td></tr>");
            }
            body.Append("</tbody></table><p>Signature du prescripteur : ______________________</p></div>");
        }
        body.Append("</div>");
        return Render(context, portal.User, portal.Csrf, "Ordonnance", body.ToString());
    }

    private static async Task<IResult> LetterAsync(HttpContext context, string id)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Readers);
        if (portal is null) return instead!;
        var handoff = await Inbox.LoadAsync(portal.Api, id);
        var letter = handoff?.Letters.FirstOrDefault();
        if (handoff is null || letter is null)
            return Message(context, "Lettre indisponible", "Aucune lettre de liaison n'est accessible pour cette demande.", StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);
        var body = new StringBuilder("<div class=\"sheet\">");
        body.Append("<p class=\"noprint\"><a href=\"").Append(H(PortalRoutes.Handoff(id))).Append("\">← Retour à la demande</a></p>");
        body.Append("<h1>Lettre de liaison</h1><p>").Append(H(PersonName(handoff.Patient))).Append(", né(e) le ").Append(H(Date(handoff.Patient.BirthDate)))
            .Append(" · ").Append(H(DateTime(letter.Date))).Append("</p>");
        foreach (var attachment in letter.Content.Select(c => c.Attachment))
        {
            if (attachment.Data is { } data && (attachment.ContentType ?? "").StartsWith("text/", StringComparison.Ordinal))
                body.Append("<div class=\"card\" id=\"lettre\">").Append(H(Encoding.UTF8.GetString(data)).Replace("\n", "<br>", StringComparison.Ordinal)).Append("</div>");
            else
                body.Append("<p>Document au format ").Append(H(attachment.ContentType ?? "inconnu")).Append(" : ouvrez-le depuis votre logiciel de soins.</p>");
        }
        body.Append("</div>");
        return Render(context, portal.User, portal.Csrf, "Lettre de liaison", body.ToString());
    }
}
