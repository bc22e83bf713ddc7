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
/// and the alerts. One search per kind of resource for all the people at once (100 per search), not one per person.
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
        var patients = await PortalData.PatientsAsync(api, patientIds);
        async Task<List<T>> ForAll<T>(string type) where T : Resource
        {
            var all = new List<T>();
            foreach (var chunk in patientIds.Chunk(100))
                all.AddRange(PortalData.Resources<T>(await api.SearchAsync($"{type}?patient={string.Join(',', chunk.Select(id => Uri.EscapeDataString("Patient/" + id)))}&_count=1000")));
            return all;
        }
        var prescriptions = await ForAll<MedicationRequest>("MedicationRequest");
        var documents = await ForAll<DocumentReference>("DocumentReference");
        var plans = await ForAll<CarePlan>("CarePlan");
        var consents = await ForAll<Consent>("Consent");
        var referrals = await ForAll<ServiceRequest>("ServiceRequest");
        var tasks = await ForAll<FhirTask>("Task");
        var appointments = await ForAll<Appointment>("Appointment");
        var dispenses = await ForAll<MedicationDispense>("MedicationDispense");
        var ownerNames = await OrganizationNamesAsync(api, tasks.Select(t => t.Owner));

        static string? Of(ResourceReference? reference) => PortalData.IdOf(reference, "Patient");
        var rows = new List<Row>();
        foreach (var (stay, end) in stays.OrderBy(s => s.End))
        {
            var id = Of(stay.Subject)!;
            if (!patients.TryGetValue(id, out var patient)) continue;
            var mine = prescriptions.Where(p => Of(p.Subject) == id).ToList();
            var handoffs = tasks.Where(t => Of(t.For) == id && PortalData.TaskKind(t) == Exit.HandoffTasks.HandoffCode).ToList();
            var released = stay.Status == Encounter.EncounterStatus.Finished || end < now;
            var package = new List<(string, bool)>
            {
                ("Lettre de liaison", documents.Any(d => Of(d.Subject) == id && d.Type?.Coding.Any(c => c.Code == PortalData.LetterLoinc) == true)),
                ("Ordonnance", mine.Count > 0),
                ("Dépannage", mine.Any(p => PortalData.BridgingDays(p) is not null)),
                ("Naloxone", mine.Any(PortalData.IsNaloxone) || dispenses.Any(d => Of(d.Subject) == id && d.Medication is CodeableConcept c && c.Coding.Any(x => x.Code == "V03AB15"))),
                ("Projet de soins", plans.Any(p => Of(p.Subject) == id)),
                ("Consentement", consents.Any(c => Of(c.Patient) == id && c.Status == Consent.ConsentState.Active)),
                ("Adressage", referrals.Any(r => Of(r.Subject) == id)),
                ("Rendez-vous", appointments.Any(a => a.Participant.Any(p => Of(p.Actor) == id))),
            };
            var alerts = new List<string>();
            if (released && end < now.AddHours(-24) && !handoffs.Any(t => t.Status is FhirTask.TaskStatus.Accepted or FhirTask.TaskStatus.InProgress or FhirTask.TaskStatus.Completed))
                alerts.Add("Sortie depuis plus de 24 h sans prise en charge acceptée");
            if (mine.Count == 0) alerts.Add("Pas d'ordonnance de sortie");
            if (!package[5].Item2) alerts.Add("Pas de consentement");
            if (appointments.Any(a => a.Participant.Any(p => Of(p.Actor) == id) && a.Status == Appointment.AppointmentStatus.Noshow)) alerts.Add("Rendez-vous manqué");
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
