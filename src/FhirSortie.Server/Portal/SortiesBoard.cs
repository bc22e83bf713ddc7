using System.Globalization;
using System.Text;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;
using FhirTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The USMP's "Sorties" board: people leaving in the next 14 days and released in the last 30 (the detention stay's
/// period.end, planned while in progress, actual once finished), each package's completeness, each hand-off's status,
/// and the alerts. One search per 50 people, with _revinclude for everything shown about them, not one per person or per kind.
/// </summary>
public static class SortiesBoard
{
    public static void Map(RouteGroupBuilder portal) => portal.MapGet("/sorties", BoardAsync);

    public sealed record Row(Patient Patient, Encounter Stay, DateTimeOffset Release, bool Released, IReadOnlyList<(string Item, bool Present)> Package,
        IReadOnlyList<(string Owner, string Status)> Handoffs, IReadOnlyList<string> Alerts);

    public static async Task<List<Row>> LoadAsync(PortalApi api, string finess, DateTimeOffset now)
    {
        var organizations = await PortalData.MyOrganizationsAsync(api, finess);
        if (organizations.Count == 0) return [];
        var from = now.AddDays(-30);
        var to = now.AddDays(14);
        var stays = PortalData.Resources<Encounter>(await api.SearchAsync(
                $"Encounter?service-provider={string.Join(',', organizations.Select(Uri.EscapeDataString))}&date=ge{from:yyyy-MM-dd}&_count=1000"))
            .Select(e => (Stay: e, End: End(e)))
            .Where(s => s.End is { } end && end >= from && end <= to && PortalData.IdOf(s.Stay.Subject, "Patient") is not null)
            .ToList();
        var patientIds = stays.Select(s => PortalData.IdOf(s.Stay.Subject, "Patient")!).Distinct(StringComparer.Ordinal).ToList();
        // One search per 50 people for them and everything the board shows about them (issue 22's timings: it was nine
        // searches per 100 people, 48 API calls for 500 people leaving).
        var (patients, related) = await PortalData.PatientsWithAsync(api, patientIds,
            ["MedicationRequest:patient", "DocumentReference:patient", "CarePlan:patient", "Consent:patient", "ServiceRequest:patient", "Task:patient",
             "Appointment:patient", "MedicationDispense:patient"]);
        static string? Of(ResourceReference? reference) => PortalData.IdOf(reference, "Patient");
        // Each kind by person once (a lookup), not a scan of every list for every person: 500 people × 4,000 resources was
        // most of the page's own time.
        var prescriptions = related.OfType<MedicationRequest>().ToLookup(p => Of(p.Subject));
        var documents = related.OfType<DocumentReference>().ToLookup(d => Of(d.Subject));
        var plans = related.OfType<CarePlan>().ToLookup(p => Of(p.Subject));
        var consents = related.OfType<Consent>().ToLookup(c => Of(c.Patient));
        var referrals = related.OfType<ServiceRequest>().ToLookup(r => Of(r.Subject));
        var tasks = related.OfType<FhirTask>().ToList();
        var tasksOf = tasks.ToLookup(t => Of(t.For));
        var appointments = related.OfType<Appointment>().SelectMany(a => a.Participant.Select(p => Of(p.Actor)).OfType<string>().Distinct().Select(id => (id, a))).ToLookup(x => x.id, x => x.a);
        var dispenses = related.OfType<MedicationDispense>().ToLookup(d => Of(d.Subject));
        var ownerNames = await OrganizationNamesAsync(api, tasks.Select(t => t.Owner));

        var rows = new List<Row>();
        foreach (var (stay, end) in stays.OrderBy(s => s.End))
        {
            var id = Of(stay.Subject)!;
            if (!patients.TryGetValue(id, out var patient)) continue;
            var mine = prescriptions[id].ToList();
            var handoffs = tasksOf[id].Where(t => PortalData.TaskKind(t) == Exit.HandoffTasks.HandoffCode).ToList();
            var released = stay.Status == Encounter.EncounterStatus.Finished || end < now;
            var package = new List<(string, bool)>
            {
                ("Lettre de liaison", documents[id].Any(d => d.Type?.Coding.Any(c => c.Code == Mapping.CdaDocument.LiaisonLetterLoinc) == true)),
                ("Ordonnance", mine.Count > 0),
                ("Dépannage", mine.Any(p => PortalData.BridgingDays(p) is not null)),
                ("Naloxone", mine.Any(PortalData.IsNaloxone) || dispenses[id].Any(d => d.Medication is CodeableConcept c && c.Coding.Any(x => x.Code == "V03AB15"))),
                ("Projet de soins", plans[id].Any()),
                ("Consentement", consents[id].Any(c => c.Status == Consent.ConsentState.Active)),
                ("Adressage", referrals[id].Any()),
                ("Rendez-vous", appointments[id].Any()),
            };
            var alerts = new List<string>();
            if (released && end < now.AddHours(-24) && !handoffs.Any(t => t.Status is FhirTask.TaskStatus.Accepted or FhirTask.TaskStatus.InProgress or FhirTask.TaskStatus.Completed))
                alerts.Add("Sortie depuis plus de 24 h sans prise en charge acceptée");
            if (mine.Count == 0) alerts.Add("Pas d'ordonnance de sortie");
            if (!package[5].Item2) alerts.Add("Pas de consentement");
            if (appointments[id].Any(a => a.Status == Appointment.AppointmentStatus.Noshow)) alerts.Add("Rendez-vous manqué");
            rows.Add(new Row(patient, stay, end!.Value, released, package,
                [.. handoffs.Select(t => (ownerNames.GetValueOrDefault(t.Owner?.Reference ?? "") ?? t.Owner?.Display ?? "Structure", PortalData.Status(t.Status)))], alerts));
        }
        return rows;
    }

    private static DateTimeOffset? End(Encounter stay) =>
        stay.Period?.End is { } end && DateTimeOffset.TryParse(end, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var value) ? value : null;

    private static async Task<Dictionary<string, string>> OrganizationNamesAsync(PortalApi api, IEnumerable<ResourceReference?> owners)
    {
        var ids = owners.Select(o => PortalData.IdOf(o, "Organization")).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var chunk in ids.Chunk(100))
            foreach (var organization in PortalData.Resources<Organization>(await api.SearchAsync($"Organization?_id={string.Join(',', chunk.Select(Uri.EscapeDataString))}&_count=100")))
                if (organization.Name is { } name) names["Organization/" + organization.Id] = name;
        return names;
    }

    private static async Task<IResult> BoardAsync(HttpContext context, TimeProvider clock)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Usmp);
        if (portal is null) return instead!;
        var rows = await LoadAsync(portal.Api, portal.User.Finess, clock.GetUtcNow());
        var body = new StringBuilder("<h1>Sorties</h1>");
        body.Append("<p class=\"noprint\"><a class=\"button\" href=\"").Append(PortalRoutes.NewExit).Append("\">Nouvelle sortie</a></p>");
        foreach (var (title, group) in new[] { ("Sorties prévues dans les 14 jours", rows.Where(r => !r.Released).ToList()), ("Sorties des 30 derniers jours", rows.Where(r => r.Released).OrderByDescending(r => r.Release).ToList()) })
        {
            body.Append("<h2>").Append(H(title)).Append(" (").Append(group.Count).Append(")</h2>");
            if (group.Count == 0) { body.Append("<p>Aucune.</p>"); continue; }
            body.Append("<table><thead><tr><th scope=\"col\">Personne</th><th scope=\"col\">Date de sortie</th><th scope=\"col\">Dossier de sortie</th><th scope=\"col\">Prises en charge</th><th scope=\"col\">Alertes</th></tr></thead><tbody>");
            foreach (var row in group)
            {
                body.Append("<tr><td>").Append(H(PersonName(row.Patient))).Append("<br><span class=\"hint\">né(e) le ").Append(H(Date(row.Patient.BirthDate))).Append("</span></td><td>")
                    .Append(H(DateTime(row.Release))).Append(row.Released ? "" : " (prévue)").Append("</td><td><ul>");
                foreach (var (item, present) in row.Package)
                    body.Append("<li class=\"").Append(present ? "ok" : "missing").Append("\">").Append(present ? "✓ " : "✗ ").Append(H(item))
                        .Append("<span class=\"skip\">").Append(present ? " : présent" : " : manquant").Append("</span></li>");
                body.Append("</ul></td><td>");
                body.Append(row.Handoffs.Count == 0 ? "Aucune" : string.Join("<br>", row.Handoffs.Select(h => $"{H(h.Owner)} : <span class=\"status\">{H(h.Status)}</span>")));
                body.Append("</td><td>").Append(row.Alerts.Count == 0 ? "—" : "<ul>" + string.Concat(row.Alerts.Select(a => $"<li class=\"missing\">{H(a)}</li>")) + "</ul>")
                    .Append("<p class=\"noprint\"><a href=\"").Append(H(PortalRoutes.ExitPackage(row.Patient.Id, row.Stay.Id))).Append("\">Compléter<span class=\"skip\"> le dossier de ")
                    .Append(H(PersonName(row.Patient))).Append("</span></a></p></td></tr>");
            }
            body.Append("</tbody></table>");
        }
        return Render(context, portal.User, portal.Csrf, "Sorties", body.ToString());
    }
}
