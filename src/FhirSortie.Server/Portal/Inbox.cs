using System.Text;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;
using FhirTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Server.Portal;

/// <summary>
/// "À prendre en charge": the Tasks owned by my organisation (hand-offs, consent collection), new first, and one
/// hand-off's page with what the consent lets through (prescriptions, appointments, letter, attestations) and its
/// actions: Accepter, Refuser (with a reason), Commencer, Terminer, Rendez-vous honoré / manqué, Émettre une
/// attestation. Every change is a PUT through the API, so the hand-off state machine (Exit/HandoffTasks.cs), the
/// consent rule and the audit decide, not the portal.
/// </summary>
public static class Inbox
{
    private static readonly ActorKind[] Receivers = [ActorKind.Csapa, ActorKind.Act, ActorKind.Care];

    public static void Map(RouteGroupBuilder portal)
    {
        portal.MapGet("/prises-en-charge", (Delegate)ListAsync);
        portal.MapGet("/prises-en-charge/{id}", DetailAsync);
        portal.MapPost("/prises-en-charge/{id}/statut", StatusAsync);
        portal.MapPost("/prises-en-charge/{id}/rendez-vous", AppointmentAsync);
        portal.MapPost("/prises-en-charge/{id}/attestation", AttestationAsync);
    }

    private static int Order(FhirTask task) => task.Status switch
    {
        FhirTask.TaskStatus.Requested or FhirTask.TaskStatus.Received => 0,
        FhirTask.TaskStatus.Accepted or FhirTask.TaskStatus.InProgress => 1,
        _ => 2,
    };

    private static async Task<IResult> ListAsync(HttpContext context)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Receivers);
        if (portal is null) return instead!;
        var api = portal.Api;
        var organizations = await PortalData.MyOrganizationsAsync(api, portal.User.Finess);
        var tasks = new List<FhirTask>();
        var patients = new Dictionary<string, Patient>(StringComparer.Ordinal);
        if (organizations.Count > 0)
        {
            // The people come with their Tasks (_include): one search, not one more per 100 people.
            var bundle = await api.SearchAsync($"Task?owner={string.Join(',', organizations.Select(Uri.EscapeDataString))}&_sort=-_lastUpdated&_count=500&_include=Task:patient");
            tasks = [.. bundle.Entry.Where(e => e.Search?.Mode is null or Bundle.SearchEntryMode.Match).Select(e => e.Resource).OfType<FhirTask>()];
            foreach (var patient in bundle.Entry.Where(e => e.Search?.Mode == Bundle.SearchEntryMode.Include).Select(e => e.Resource).OfType<Patient>())
                patients[patient.Id ?? ""] = patient;
            // Past the gateway's cap on included resources the rest are asked by id (a person the consent hides is absent either way).
            if (patients.Count >= Search.Includes.MaxIncluded)
                foreach (var (id, patient) in await PortalData.PatientsAsync(api, tasks.Select(t => PortalData.IdOf(t.For, "Patient")).OfType<string>().Where(id => !patients.ContainsKey(id))))
                    patients[id] = patient;
        }
        // A Task whose person this organisation may not see is not listed: the consent decides, not the Task.
        var visible = tasks.Where(t => PortalData.IdOf(t.For, "Patient") is { } id && patients.ContainsKey(id))
            .OrderBy(Order).ThenByDescending(t => t.AuthoredOn ?? t.Meta?.LastUpdated?.ToString("O") ?? "", StringComparer.Ordinal).ToList();

        var body = new StringBuilder("<h1>À prendre en charge</h1>");
        if (visible.Count == 0)
            body.Append("<p class=\"notice\" role=\"status\">Aucune personne à prendre en charge pour votre structure (ou aucune n'a consenti au partage avec elle).</p>");
        else
        {
            body.Append("<table><caption class=\"hint\">").Append(visible.Count).Append(" demande(s), les nouvelles en premier</caption>")
                .Append("<thead><tr><th scope=\"col\">Personne</th><th scope=\"col\">Née le</th><th scope=\"col\">Demande</th><th scope=\"col\">Reçue le</th><th scope=\"col\">Statut</th><th scope=\"col\">Ouvrir</th></tr></thead><tbody>");
            foreach (var task in visible)
            {
                var patient = patients[PortalData.IdOf(task.For, "Patient")!];
                var open = PortalData.TaskKind(task) == "collect-consent" ? PortalRoutes.ConsentFor(task.Id) : PortalRoutes.Handoff(task.Id);
                body.Append("<tr><td>").Append(H(PersonName(patient))).Append("</td><td>").Append(H(Date(patient.BirthDate)))
                    .Append("</td><td>").Append(H(PortalData.TaskKindLabel(task))).Append("<br><span class=\"hint\">").Append(H(task.Description)).Append("</span>")
                    .Append("</td><td>").Append(H(Date(task.AuthoredOn ?? task.Meta?.LastUpdated?.ToString("O"))))
                    .Append("</td><td><span class=\"status\">").Append(H(PortalData.Status(task.Status))).Append("</span>")
                    .Append("</td><td><a href=\"").Append(H(open)).Append("\">Voir la demande<span class=\"skip\"> de ").Append(H(PersonName(patient))).Append("</span></a></td></tr>");
            }
            body.Append("</tbody></table>");
        }
        return Render(context, portal.User, portal.Csrf, "À prendre en charge", body.ToString());
    }

    /// <summary>Everything one hand-off's page shows, read with the user's token.</summary>
    public sealed record Handoff(FhirTask Task, string? Version, Patient Patient, ServiceRequest? Referral, List<Appointment> Appointments,
        Dictionary<string, string> Places, List<MedicationRequest> Prescriptions, List<DocumentReference> Letters, List<DocumentReference> Attestations);

    public static async Task<Handoff?> LoadAsync(PortalApi api, string taskId)
    {
        var (task, version) = await api.ReadAsync<FhirTask>("Task/" + Uri.EscapeDataString(taskId));
        if (task is null || PortalData.IdOf(task.For, "Patient") is not { } patientId) return null;
        var (patient, _) = await api.ReadAsync<Patient>("Patient/" + Uri.EscapeDataString(patientId));
        if (patient is null) return null;
        var referral = PortalData.IdOf(task.Focus, "ServiceRequest") is { } referralId ? (await api.ReadAsync<ServiceRequest>("ServiceRequest/" + referralId)).Resource : null;
        var p = Uri.EscapeDataString("Patient/" + patientId);
        var appointments = PortalData.Resources<Appointment>(await api.SearchAsync($"Appointment?patient={p}&_sort=date&_count=50")).ToList();
        var prescriptions = PortalData.Resources<MedicationRequest>(await api.SearchAsync($"MedicationRequest?patient={p}&status=active&_count=50")).ToList();
        var documents = PortalData.Resources<DocumentReference>(await api.SearchAsync($"DocumentReference?patient={p}&_sort=-date&_count=50")).ToList();
        var letters = documents.Where(d => d.Type?.Coding.Any(c => c.Code == Mapping.CdaDocument.LiaisonLetterLoinc) == true).ToList();
        var attestations = documents.Where(d => d.Category.Any(c => c.Coding.Any(x => x.Code == Consents.AccessRules.AttendanceAttestationCategory))).ToList();
        return new Handoff(task, version, patient, referral, appointments, await PortalData.LocationNamesAsync(api, appointments), prescriptions, letters, attestations);
    }

    private static readonly Dictionary<string, string> Done = new(StringComparer.Ordinal)
    {
        ["accepte"] = "La prise en charge est acceptée.",
        ["refuse"] = "La prise en charge est refusée ; l'unité sanitaire en est informée par le statut de la demande.",
        ["commence"] = "La prise en charge a commencé.",
        ["termine"] = "La prise en charge est terminée.",
        ["honore"] = "Le rendez-vous est enregistré comme honoré.",
        ["manque"] = "Le rendez-vous est enregistré comme manqué.",
        ["attestation"] = "L'attestation de présence est émise : le SPIP peut la consulter.",
    };

    private static async Task<IResult> DetailAsync(HttpContext context, string id)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Receivers);
        if (portal is null) return instead!;
        var handoff = await LoadAsync(portal.Api, id);
        if (handoff is null) return Message(context, "Demande introuvable", "Cette demande n'existe pas ou n'est pas accessible à votre structure.", StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);
        var notice = context.Request.Query["fait"].ToString() is { } done && Done.TryGetValue(done, out var text) ? text : null;
        return Render(context, portal.User, portal.Csrf, "Prise en charge", Page(handoff, portal.Csrf, notice, null));
    }

    public static string Page(Handoff h, string csrf, string? notice, string? problem)
    {
        var task = h.Task;
        var body = new StringBuilder();
        body.Append("<p><a href=\"").Append(PortalRoutes.Inbox).Append("\">← À prendre en charge</a></p>");
        body.Append("<h1>").Append(H(PortalData.TaskKindLabel(task))).Append(" : ").Append(H(PersonName(h.Patient))).Append("</h1>");
        if (notice is not null) body.Append("<p class=\"notice\" role=\"status\">").Append(H(notice)).Append("</p>");
        if (problem is not null) body.Append("<p class=\"alert\" role=\"alert\">").Append(H(problem)).Append("</p>");
        body.Append("<div class=\"card\"><p>Née le ").Append(H(Date(h.Patient.BirthDate))).Append(" · Statut de la demande : <span class=\"status\" id=\"statut\">")
            .Append(H(PortalData.Status(task.Status))).Append("</span></p><p>").Append(H(task.Description)).Append("</p>");
        if (h.Referral?.Code?.Text is { } reason) body.Append("<p>Motif de l'adressage : ").Append(H(reason)).Append("</p>");
        if (task.StatusReason?.Text is { } why) body.Append("<p>Motif du refus : ").Append(H(why)).Append("</p>");
        var action = PortalRoutes.Handoff(task.Id) + "/statut";
        switch (task.Status)
        {
            case FhirTask.TaskStatus.Requested or FhirTask.TaskStatus.Received:
                body.Append(Button(action, "Accepter", csrf, "<input type=\"hidden\" name=\"action\" value=\"accept\">", "primary"))
                    .Append("<form method=\"post\" action=\"").Append(H(action)).Append("\" class=\"card\">").Append(CsrfInput(csrf))
                    .Append("<input type=\"hidden\" name=\"action\" value=\"reject\"><div class=\"field\"><label for=\"motif\">Motif du refus (obligatoire)</label><br>")
                    .Append("<textarea id=\"motif\" name=\"reason\" rows=\"2\" cols=\"60\" required maxlength=\"500\"></textarea></div>")
                    .Append("<button type=\"submit\" class=\"danger\">Refuser</button></form>");
                break;
            case FhirTask.TaskStatus.Accepted:
                body.Append(Button(action, "Commencer", csrf, "<input type=\"hidden\" name=\"action\" value=\"start\">", "primary"));
                break;
            case FhirTask.TaskStatus.InProgress:
                body.Append(Button(action, "Terminer", csrf, "<input type=\"hidden\" name=\"action\" value=\"complete\">", "primary"));
                break;
        }
        body.Append("</div>");

        body.Append("<h2>Traitements de sortie</h2>");
        if (h.Prescriptions.Count == 0) body.Append("<p>Aucune prescription accessible.</p>");
        else
        {
            body.Append("<table><thead><tr><th scope=\"col\">Médicament</th><th scope=\"col\">Posologie</th><th scope=\"col\">Dépannage remis</th></tr></thead><tbody>");
            foreach (var request in h.Prescriptions)
                body.Append("<tr><td>").Append(H(PortalData.MedicationName(request))).Append("</td><td>").Append(H(request.DosageInstruction.FirstOrDefault()?.Text))
                    .Append("</td><td>").Append(PortalData.BridgingDays(request) is { } days ? $"{days} jours" : "—").Append("</td></tr>");
            body.Append("</tbody></table>");
            body.Append("<form method=\"get\" action=\"").Append(H(PortalRoutes.Ordonnance(task.Id))).Append("\" class=\"inline\"><button type=\"submit\">Imprimer l'ordonnance</button></form>");
        }
        if (h.Letters.Count > 0)
            body.Append("<form method=\"get\" action=\"").Append(H(PortalRoutes.Letter(task.Id))).Append("\" class=\"inline\"><button type=\"submit\">Lire la lettre de liaison</button></form>");

        body.Append("<h2>Rendez-vous</h2>");
        if (h.Appointments.Count == 0) body.Append("<p>Aucun rendez-vous accessible.</p>");
        foreach (var appointment in h.Appointments)
        {
            body.Append("<div class=\"card\"><p><strong>").Append(H(DateTime(appointment.Start))).Append("</strong> — ").Append(H(PortalData.Place(appointment, h.Places)))
                .Append(" · <span class=\"status\">").Append(H(PortalData.Status(appointment.Status))).Append("</span></p><p>").Append(H(appointment.Description)).Append("</p>");
            var fields = $"<input type=\"hidden\" name=\"appointment\" value=\"{H(appointment.Id)}\">";
            if (appointment.Status is Appointment.AppointmentStatus.Booked or Appointment.AppointmentStatus.Arrived or Appointment.AppointmentStatus.CheckedIn)
            {
                var to = PortalRoutes.Handoff(task.Id) + "/rendez-vous";
                body.Append(Button(to, "Rendez-vous honoré", csrf, fields + "<input type=\"hidden\" name=\"outcome\" value=\"fulfilled\">"))
                    .Append(Button(to, "Rendez-vous manqué", csrf, fields + "<input type=\"hidden\" name=\"outcome\" value=\"noshow\">"));
            }
            if (appointment.Status == Appointment.AppointmentStatus.Fulfilled
                && !h.Attestations.Any(a => a.Context?.Related.Any(r => r.Reference == "Appointment/" + appointment.Id) == true))
            {
                body.Append("<form method=\"post\" action=\"").Append(H(PortalRoutes.Handoff(task.Id) + "/attestation")).Append("\">").Append(CsrfInput(csrf)).Append(fields)
                    .Append("<div class=\"field\"><input type=\"checkbox\" id=\"accord-").Append(H(appointment.Id)).Append("\" name=\"agreement\" value=\"yes\" required> ")
                    .Append("<label for=\"accord-").Append(H(appointment.Id)).Append("\">La personne accepte qu'une attestation de présence soit transmise au SPIP</label></div>")
                    .Append("<button type=\"submit\">Émettre une attestation</button></form>");
            }
            body.Append("</div>");
        }
        if (h.Attestations.Count > 0)
        {
            body.Append("<h2>Attestations de présence</h2><ul>");
            foreach (var attestation in h.Attestations) body.Append("<li>").Append(H(attestation.Description)).Append(", ").Append(H(DateTime(attestation.Date))).Append("</li>");
            body.Append("</ul>");
        }
        return body.ToString();
    }

    private static async Task<IResult> StatusAsync(HttpContext context, string id)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Receivers);
        if (portal is null) return instead!;
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var api = portal.Api;
        var (task, version) = await api.ReadAsync<FhirTask>("Task/" + Uri.EscapeDataString(id));
        if (task is null) return Message(context, "Demande introuvable", "Cette demande n'existe pas ou n'est pas accessible à votre structure.", StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);
        var reason = form["reason"].ToString().Trim();
        FhirTask.TaskStatus[] steps;
        string done;
        switch (form["action"].ToString())
        {
            case "accept":
                steps = task.Status == FhirTask.TaskStatus.Requested ? [FhirTask.TaskStatus.Received, FhirTask.TaskStatus.Accepted] : [FhirTask.TaskStatus.Accepted];
                done = "accepte";
                break;
            case "reject":
                if (reason.Length == 0) return await BackAsync(context, portal, id, "Indiquez le motif du refus.");
                steps = task.Status == FhirTask.TaskStatus.Requested ? [FhirTask.TaskStatus.Received, FhirTask.TaskStatus.Rejected] : [FhirTask.TaskStatus.Rejected];
                done = "refuse";
                break;
            case "start": steps = [FhirTask.TaskStatus.InProgress]; done = "commence"; break;
            case "complete": steps = [FhirTask.TaskStatus.Completed]; done = "termine"; break;
            default: return await BackAsync(context, portal, id, "Action inconnue.");
        }
        foreach (var step in steps)
        {
            task.Status = step;
            if (step == FhirTask.TaskStatus.Rejected) task.StatusReason = new CodeableConcept { Text = reason.Length > 500 ? reason[..500] : reason };
            var answer = await api.UpdateAsync(task, version);
            if (!answer.Ok) return await BackAsync(context, portal, id, answer.Problem);
            version = answer.ETag;
        }
        return Results.Redirect(PortalRoutes.Handoff(id) + "?fait=" + done);
    }

    private static async Task<IResult> AppointmentAsync(HttpContext context, string id)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Receivers);
        if (portal is null) return instead!;
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var (appointment, version) = await portal.Api.ReadAsync<Appointment>("Appointment/" + Uri.EscapeDataString(form["appointment"].ToString()));
        if (appointment is null) return await BackAsync(context, portal, id, "Ce rendez-vous n'est pas accessible à votre structure.");
        var outcome = form["outcome"].ToString();
        appointment.Status = outcome switch
        {
            "fulfilled" => Appointment.AppointmentStatus.Fulfilled,
            "noshow" => Appointment.AppointmentStatus.Noshow,
            _ => appointment.Status,
        };
        var answer = await portal.Api.UpdateAsync(appointment, version);
        return answer.Ok ? Results.Redirect(PortalRoutes.Handoff(id) + "?fait=" + (outcome == "noshow" ? "manque" : "honore")) : await BackAsync(context, portal, id, answer.Problem);
    }

    private static async Task<IResult> AttestationAsync(HttpContext context, string id, TimeProvider clock)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Receivers);
        if (portal is null) return instead!;
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        if (form["agreement"].ToString() != "yes") return await BackAsync(context, portal, id, "L'attestation ne peut être émise qu'avec l'accord de la personne.");
        var (appointment, _) = await portal.Api.ReadAsync<Appointment>("Appointment/" + Uri.EscapeDataString(form["appointment"].ToString()));
        if (appointment?.Status != Appointment.AppointmentStatus.Fulfilled || appointment.Participant.Select(p => PortalData.IdOf(p.Actor, "Patient")).OfType<string>().FirstOrDefault() is not { } patientId)
            return await BackAsync(context, portal, id, "Seul un rendez-vous honoré donne lieu à une attestation.");
        var organization = (await PortalData.MyOrganizationsAsync(portal.Api, portal.User.Finess)).FirstOrDefault();
        if (organization is null) return await BackAsync(context, portal, id, "Votre structure est inconnue de l'annuaire de la passerelle.");
        var attestation = Attestation(patientId, organization, appointment, clock.GetUtcNow());
        var answer = await portal.Api.CreateAsync(attestation);
        return answer.Ok ? Results.Redirect(PortalRoutes.Handoff(id) + "?fait=attestation") : await BackAsync(context, portal, id, answer.Problem);
    }

    /// <summary>The attendance attestation (profile AttendanceAttestation): a date and a place, nothing medical.</summary>
    public static DocumentReference Attestation(string patientId, string organization, Appointment appointment, DateTimeOffset now)
    {
        var text = $"La structure atteste que la personne s'est présentée au rendez-vous du {DateTime(appointment.Start)} (attestation de présence, sans information médicale).";
        return new DocumentReference
        {
            Status = DocumentReferenceStatus.Current,
            DocStatus = CompositionStatus.Final,
            Type = new CodeableConcept { Coding = [new Coding(Consents.AccessRules.DocumentTypes, Consents.AccessRules.AttendanceAttestationCode, "Attestation de présence")] },
            Category = [new CodeableConcept { Coding = [new Coding(Consents.AccessRules.DocumentCategories, Consents.AccessRules.AttendanceAttestationCategory, "Attestation de présence")] }],
            Subject = new ResourceReference("Patient/" + patientId),
            Date = now,
            Author = [new ResourceReference(organization)],
            Custodian = new ResourceReference(organization),
            Description = "Attestation de présence",
            Context = new DocumentReference.ContextComponent { Related = [new ResourceReference("Appointment/" + appointment.Id)] },
            Content = [new DocumentReference.ContentComponent
            {
                Attachment = new Attachment { ContentType = "text/plain", Language = "fr", Title = "Attestation de présence", Data = Encoding.UTF8.GetBytes(text) },
            }],
        };
    }

    /// <summary>The hand-off page again with the problem (rendered, not redirected: the gateway's reason never goes into a URL).</summary>
    private static async Task<IResult> BackAsync(HttpContext context, PortalContext portal, string id, string problem)
    {
        var handoff = await LoadAsync(portal.Api, id);
        if (handoff is null) return Message(context, "Demande introuvable", problem, StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);
        return Render(context, portal.User, portal.Csrf, "Prise en charge", Page(handoff, portal.Csrf, null, problem), StatusCodes.Status409Conflict);
    }
}
