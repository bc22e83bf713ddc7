using System.Globalization;
using System.Net;
using System.Text;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;
using FhirTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The CSAPA référent's view (issue 22 view 2, domain scenario 3): the ExitPackageTasks assigned to them or their
/// organisation, and for one person the consent form (recipients from the directory by name or FINESS, categories of
/// information, sensitive categories shared or masked, period), the Consents already recorded, their printable sheet,
/// the signed sheet's upload and the withdrawal (ConsentSheet.cs). The consent is a SharingConsent POSTed through /fhir
/// with the user's token: who may record it is the gateway's rule (Consent/ConsentAuthority.cs), not the portal's, so the
/// form is offered for any Task of a person the user may see and a refusal is the gateway's 403, rendered in French.
/// </summary>
public static class ConsentView
{
    public static readonly ActorKind[] Collectors = [ActorKind.Csapa, ActorKind.Act, ActorKind.Care, ActorKind.Usmp];
    private const string PackageTaskCodes = ConsentAuthority.ExitTaskTypes + "|" + ConsentAuthority.CollectConsentCode + "," + ConsentAuthority.ExitTaskTypes + "|complete-package";

    public static void Map(RouteGroupBuilder portal)
    {
        portal.MapGet("/consentement", (Delegate)ListAsync);
        portal.MapGet("/consentement/{id}", PageAsync);
        portal.MapPost("/consentement/{id}", SubmitAsync);
        ConsentSheet.Map(portal);
    }

    private static async Task<IResult> ListAsync(HttpContext context)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Collectors);
        if (portal is null) return instead!;
        var api = portal.Api;
        var owners = new List<string>(await PortalData.MyOrganizationsAsync(api, portal.User.Finess));
        if (owners.Count > 0)
        {
            var roles = await api.SearchAsync($"PractitionerRole?organization={string.Join(',', owners.Select(Uri.EscapeDataString))}&_count=100");
            owners.AddRange(PortalData.Resources<PractitionerRole>(roles).Select(r => "PractitionerRole/" + r.Id));
        }
        if (portal.User.FhirUser is { } me) owners.Add(me);
        var tasks = new List<FhirTask>();
        if (owners.Count > 0)
        {
            var bundle = await api.SearchAsync($"Task?owner={string.Join(',', owners.Select(Uri.EscapeDataString))}&code={Uri.EscapeDataString(PackageTaskCodes)}&_sort=-_lastUpdated&_count=200");
            tasks = [.. PortalData.Resources<FhirTask>(bundle)];
        }
        var patients = await PortalData.PatientsAsync(api, tasks.Select(t => PortalData.IdOf(t.For, "Patient")).OfType<string>());
        var visible = tasks.Where(t => PortalData.IdOf(t.For, "Patient") is { } id && patients.ContainsKey(id))
            .OrderBy(t => IsOpen(t) ? 0 : 1).ThenBy(t => Due(t) ?? "9999", StringComparer.Ordinal).ToList();

        var body = new StringBuilder("<h1>Recueil du consentement</h1>")
            .Append("<p>Les demandes adressées à votre structure ou à vous-même pour compléter la sortie d'une personne : recueillir son consentement au partage, compléter le dossier.</p>");
        if (visible.Count == 0)
            body.Append("<p class=\"notice\" role=\"status\">Aucune demande en cours pour votre structure.</p>");
        else
        {
            body.Append("<table><caption class=\"hint\">").Append(visible.Count).Append(" demande(s), celles à faire en premier</caption>")
                .Append("<thead><tr><th scope=\"col\">Personne</th><th scope=\"col\">Née le</th><th scope=\"col\">À faire</th><th scope=\"col\">À faire avant le</th><th scope=\"col\">Statut</th><th scope=\"col\">Ouvrir</th></tr></thead><tbody>");
            foreach (var task in visible)
            {
                var patient = patients[PortalData.IdOf(task.For, "Patient")!];
                body.Append("<tr><td>").Append(H(PersonName(patient))).Append("</td><td>").Append(H(Date(patient.BirthDate)))
                    .Append("</td><td>").Append(H(PortalData.TaskKindLabel(task))).Append("<br><span class=\"hint\">").Append(H(task.Description)).Append("</span>")
                    .Append("</td><td>").Append(H(Date(Due(task)))).Append("</td><td><span class=\"status\">").Append(H(PortalData.Status(task.Status))).Append("</span></td><td>");
                if (PortalData.TaskKind(task) == ConsentAuthority.CollectConsentCode)
                    body.Append("<a href=\"").Append(H(PortalRoutes.ConsentFor(task.Id))).Append("\">Recueillir le consentement<span class=\"skip\"> de ").Append(H(PersonName(patient))).Append("</span></a>");
                else body.Append("<span class=\"hint\">À compléter par l'unité sanitaire</span>");
                body.Append("</td></tr>");
            }
            body.Append("</tbody></table>");
        }
        return Render(context, portal.User, portal.Csrf, "Recueil du consentement", body.ToString());
    }

    private static bool IsOpen(FhirTask task) => task.Status is not (FhirTask.TaskStatus.Completed or FhirTask.TaskStatus.Cancelled or FhirTask.TaskStatus.Rejected or FhirTask.TaskStatus.Failed);

    private static string? Due(FhirTask task) => task.Restriction?.Period?.End;

    /// <summary>One person's consent page: the Task, the Consents recorded, the form.</summary>
    public sealed record Subject(FhirTask Task, string? Version, Patient Patient, List<Hl7.Fhir.Model.Consent> Consents);

    public static async Task<Subject?> LoadAsync(PortalApi api, string taskId)
    {
        var (task, version) = await api.ReadAsync<FhirTask>("Task/" + Uri.EscapeDataString(taskId));
        if (task is null || PortalData.IdOf(task.For, "Patient") is not { } patientId) return null;
        var (patient, _) = await api.ReadAsync<Patient>("Patient/" + Uri.EscapeDataString(patientId));
        if (patient is null) return null;
        var consents = PortalData.Resources<Hl7.Fhir.Model.Consent>(await api.SearchAsync($"Consent?patient={Uri.EscapeDataString("Patient/" + patientId)}&_sort=-date&_count=50")).ToList();
        return new Subject(task, version, patient, consents);
    }

    private static readonly Dictionary<string, string> Done = new(StringComparer.Ordinal)
    {
        ["enregistre"] = "Le consentement est enregistré et la demande de recueil est terminée. Imprimez la fiche pour la faire signer à la personne.",
        ["enregistre-seul"] = "Le consentement est enregistré. Imprimez la fiche pour la faire signer à la personne.",
        ["fiche"] = "La fiche signée est jointe au consentement.",
        ["retire"] = "Le consentement est retiré : la structure destinataire n'a plus accès aux informations à partir de maintenant.",
    };

    private static async Task<IResult> PageAsync(HttpContext context, string id, TimeProvider clock)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Collectors);
        if (portal is null) return instead!;
        var subject = await LoadAsync(portal.Api, id);
        if (subject is null) return NotFound(context, portal);
        var notice = Done.GetValueOrDefault(context.Request.Query["fait"].ToString());
        return Render(context, portal.User, portal.Csrf, "Recueil du consentement", Page(subject, portal.Csrf, notice, null, FormState.Empty(Today(clock)), [], [], null));
    }

    public static IResult NotFound(HttpContext context, PortalContext portal) =>
        Message(context, "Demande introuvable", "Cette demande n'existe pas ou n'est pas accessible à votre structure.", StatusCodes.Status404NotFound, user: portal.User, csrf: portal.Csrf);

    /// <summary>What the form holds between a directory search and the save (no script: the whole form goes back each time).</summary>
    public sealed record FormState(List<string> Recipients, string Query, List<string> Categories, Dictionary<string, string> Sensitive, bool VeryRestricted, string Start, string End)
    {
        public static FormState Empty(DateOnly today) =>
            new([], "", ["identite"], new(StringComparer.Ordinal), false, Iso(today), Iso(today.AddMonths(6)));

        public static FormState Of(IFormCollection form) => new(
            [.. form["destinataire"].OfType<string>().Where(r => r.StartsWith("Organization/", StringComparison.Ordinal) && r.Length < 100).Distinct(StringComparer.Ordinal).Take(20)],
            form["recherche"].ToString().Trim(),
            [.. form["categorie"].OfType<string>().Where(c => ConsentCategories.Information.Any(i => i.Key == c)).Distinct(StringComparer.Ordinal)],
            ConsentCategories.Sensitive.Where(s => form["sensible-" + s.Code].ToString() is "partager" or "masquer")
                .ToDictionary(s => s.Code, s => form["sensible-" + s.Code].ToString(), StringComparer.Ordinal),
            form["tres-restreint"].ToString() == "oui",
            form["debut"].ToString().Trim(), form["fin"].ToString().Trim());
    }

    private static string Iso(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    /// <summary>yyyy-MM-dd (what a date field sends) or dd/MM/yyyy (what an old browser's text field gets typed).</summary>
    public static DateOnly? ParseDay(string text) =>
        DateOnly.TryParseExact(text, ["yyyy-MM-dd", "dd/MM/yyyy"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var day) ? day : null;

    private static async Task<IResult> SubmitAsync(HttpContext context, string id, TimeProvider clock)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, Collectors);
        if (portal is null) return instead!;
        var api = portal.Api;
        var subject = await LoadAsync(api, id);
        if (subject is null) return NotFound(context, portal);
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var state = FormState.Of(form);
        var chosen = await OrganizationsAsync(api, state.Recipients);
        var errors = new Dictionary<string, string>(StringComparer.Ordinal);

        if (form["action"].ToString() == "rechercher")
        {
            var (found, error) = await SearchDirectoryAsync(api, state.Query);
            if (error is not null) errors["recherche"] = error;
            return Render(context, portal.User, portal.Csrf, "Recueil du consentement", Page(subject, portal.Csrf, null, null, state, chosen, found, errors));
        }

        if (chosen.Count == 0) errors["destinataires"] = "Choisissez au moins une structure destinataire : recherchez-la dans l'annuaire puis cochez-la.";
        if (state.Categories.Count == 0) errors["categories"] = "Cochez au moins une catégorie d'informations à partager.";
        if (state.Sensitive.Count < ConsentCategories.Sensitive.Count) errors["sensibles"] = "Indiquez pour chaque information sensible si la personne accepte de la partager ou demande de la masquer.";
        var start = ParseDay(state.Start);
        var end = ParseDay(state.End);
        if (start is null || end is null) errors["periode"] = "Indiquez les dates de début et de fin au format jj/mm/aaaa.";
        else if (end < start) errors["periode"] = "La date de fin doit suivre la date de début.";
        var organization = (await PortalData.MyOrganizationsAsync(api, portal.User.Finess)).FirstOrDefault();
        if (organization is null) return Back(context, portal, subject, state, chosen, errors, "Votre structure est inconnue de l'annuaire de la passerelle.");
        if (errors.Count > 0) return Back(context, portal, subject, state, chosen, errors, null);

        var choice = new ConsentCategories.Choice([.. chosen.Select(o => ("Organization/" + o.Id, o.Name ?? ""))], state.Categories,
            [.. state.Sensitive.Where(s => s.Value == "masquer").Select(s => s.Key)], state.VeryRestricted, start!.Value, end!.Value);
        var consent = ConsentCategories.Build(choice, subject.Patient.Id!, organization, clock.GetUtcNow());
        var answer = await api.CreateAsync(consent);
        if (!answer.Ok)
        {
            var (fieldErrors, problem) = GatewayErrors(answer);
            return Back(context, portal, subject, state, chosen, fieldErrors, problem);
        }

        // The collect-consent Task is done: completed with the Consent as its output, if the référent may update it.
        var done = "enregistre-seul";
        string? taskProblem = null;
        if (PortalData.TaskKind(subject.Task) == ConsentAuthority.CollectConsentCode && subject.Task.Status is not FhirTask.TaskStatus.Completed)
        {
            var task = subject.Task;
            task.Status = FhirTask.TaskStatus.Completed;
            task.LastModified = clock.GetUtcNow().ToString("yyyy-MM-ddTHH:mm:ssK", CultureInfo.InvariantCulture);
            task.Output.Add(new FhirTask.OutputComponent
            {
                Type = new CodeableConcept { Text = "Consentement recueilli" },
                Value = new ResourceReference("Consent/" + answer.Resource?.Id),
            });
            var completed = await api.UpdateAsync(task, subject.Version);
            if (completed.Ok) done = "enregistre";
            else taskProblem = "Le consentement est enregistré, mais la demande de recueil n'a pas pu être marquée comme terminée. " + completed.Problem;
        }
        if (taskProblem is not null)
        {
            var again = await LoadAsync(api, id) ?? subject;
            return Render(context, portal.User, portal.Csrf, "Recueil du consentement", Page(again, portal.Csrf, null, taskProblem, FormState.Empty(Today(clock)), [], [], null));
        }
        return Results.Redirect(PortalRoutes.ConsentFor(id) + "?fait=" + done);
    }

    private static IResult Back(HttpContext context, PortalContext portal, Subject subject, FormState state, List<Organization> chosen, Dictionary<string, string> errors, string? problem) =>
        Render(context, portal.User, portal.Csrf, "Recueil du consentement", Page(subject, portal.Csrf, null, problem ?? "Le consentement n'est pas enregistré : corrigez les champs signalés.", state, chosen, [], errors),
            StatusCodes.Status422UnprocessableEntity);

    /// <summary>
    /// The gateway's refusal, in French: a 403 is the consent-authority rule (said as the rule says it); a 422 is put next
    /// to the field its issue's expression names (recipients, categories, period), the gateway's own words as the detail.
    /// </summary>
    public static (Dictionary<string, string> Fields, string Problem) GatewayErrors(ApiAnswer answer)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        if (answer.Status == HttpStatusCode.Forbidden)
        {
            var detail = answer.Resource is OperationOutcome o && o.Issue.FirstOrDefault()?.Diagnostics is { Length: > 0 } d ? " Détail technique : " + d : "";
            return (fields, "La passerelle a refusé d'enregistrer ce consentement (refus 403) : votre structure n'est pas habilitée à le recueillir. "
                + "Seuls l'équipe de soins de la personne, une structure à qui une demande de recueil du consentement est adressée pour cette personne, "
                + "ou la personne elle-même peuvent enregistrer un consentement qui ouvre l'accès à son dossier." + detail);
        }
        var general = new List<string>();
        foreach (var issue in (answer.Resource as OperationOutcome)?.Issue ?? [])
        {
            if (issue.Severity is not (OperationOutcome.IssueSeverity.Error or OperationOutcome.IssueSeverity.Fatal)) continue;
            var where = string.Join(' ', issue.Expression.Concat(issue.Location)) + " " + issue.Diagnostics;
            var (field, intro) = where switch
            {
                _ when where.Contains("provision.actor", StringComparison.Ordinal) => ("destinataires", "La passerelle refuse ces destinataires."),
                _ when where.Contains("provision.class", StringComparison.Ordinal) || where.Contains("securityLabel", StringComparison.Ordinal) => ("categories", "La passerelle refuse ces catégories d'informations."),
                _ when where.Contains("period", StringComparison.OrdinalIgnoreCase) => ("periode", "La passerelle refuse cette période (la fin doit suivre le début)."),
                _ => ("", ""),
            };
            var why = issue.Diagnostics ?? issue.Details?.Text ?? "";
            if (field.Length == 0) general.Add(why);
            else fields[field] = fields.TryGetValue(field, out var before) ? before + " " + why : intro + (why.Length > 0 ? " Détail : " + why : "");
        }
        var problem = answer.Status == HttpStatusCode.UnprocessableEntity
            ? "La passerelle a refusé ce consentement : corrigez les champs signalés." + (general.Count > 0 ? " Détail : " + string.Join(" ; ", general) : "")
            : answer.Problem;
        return (fields, problem);
    }

    /// <summary>The directory by FINESS (9 digits: exact identifier) or by name (contains), active organisations first.</summary>
    public static async Task<(List<Organization> Found, string? Error)> SearchDirectoryAsync(PortalApi api, string query)
    {
        if (query.Length is < 2 or > 100) return ([], "Saisissez au moins deux caractères du nom, ou le numéro FINESS (9 chiffres).");
        var url = query.Length == 9 && query.All(char.IsAsciiDigit)
            ? $"Organization?identifier={Uri.EscapeDataString(ConsentGrants.Finess + "|" + query)}&_count=20"
            : $"Organization?name:contains={Uri.EscapeDataString(query)}&_count=20";
        var found = PortalData.Resources<Organization>(await api.SearchAsync(url)).Where(o => o.Active != false).ToList();
        return found.Count == 0 ? ([], "Aucune structure de l'annuaire ne correspond à cette recherche.") : (found, null);
    }

    private static async Task<List<Organization>> OrganizationsAsync(PortalApi api, IReadOnlyList<string> references)
    {
        var ids = references.Select(r => r["Organization/".Length..]).Where(i => i.Length > 0 && i.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.')).ToList();
        if (ids.Count == 0) return [];
        return [.. PortalData.Resources<Organization>(await api.SearchAsync($"Organization?_id={string.Join(',', ids.Select(Uri.EscapeDataString))}&_count=20"))];
    }

    public static string Finess(Organization organization) =>
        organization.Identifier.FirstOrDefault(i => i.System == ConsentGrants.Finess)?.Value ?? "—";

    public static string Page(Subject s, string csrf, string? notice, string? problem, FormState state, List<Organization> chosen, List<Organization> found,
        Dictionary<string, string>? errors)
    {
        errors ??= [];
        var task = s.Task;
        var body = new StringBuilder();
        body.Append("<p><a href=\"").Append(PortalRoutes.Consent).Append("\">← Recueil du consentement</a></p>");
        body.Append("<h1>Recueil du consentement : ").Append(H(PersonName(s.Patient))).Append("</h1>");
        if (notice is not null) body.Append("<p class=\"notice\" role=\"status\">").Append(H(notice)).Append("</p>");
        if (problem is not null) body.Append("<p class=\"alert\" role=\"alert\" id=\"probleme\">").Append(H(problem)).Append("</p>");
        body.Append("<div class=\"card\"><p>Née le ").Append(H(Date(s.Patient.BirthDate))).Append(" · ").Append(H(PortalData.TaskKindLabel(task)))
            .Append(" · Statut de la demande : <span class=\"status\" id=\"statut\">").Append(H(PortalData.Status(task.Status))).Append("</span>");
        if (Due(task) is { } due) body.Append(" · À faire avant le ").Append(H(Date(due)));
        body.Append("</p><p>").Append(H(task.Description)).Append("</p>");
        if (PortalData.TaskKind(task) != ConsentAuthority.CollectConsentCode)
            body.Append("<p class=\"hint\">Cette demande n'est pas une demande de recueil du consentement : la passerelle n'enregistrera un consentement que si votre structure fait partie de l'équipe de soins de la personne.</p>");
        body.Append("</div>");

        body.Append("<h2>Consentements enregistrés</h2>");
        if (s.Consents.Count == 0) body.Append("<p>Aucun consentement accessible à votre structure pour cette personne.</p>");
        foreach (var consent in s.Consents) body.Append(ConsentSheet.Card(task.Id!, consent, csrf));

        body.Append("<h2>Nouveau consentement</h2>")
            .Append("<p>Expliquez à la personne à qui ses informations seront transmises, lesquelles et pour combien de temps ; elle peut refuser ou retirer son consentement à tout moment.</p>")
            .Append("<form method=\"post\" action=\"").Append(H(PortalRoutes.ConsentFor(task.Id))).Append("\" class=\"card\" novalidate>").Append(CsrfInput(csrf));

        // Recipients: the chosen ones (checked) and the directory search's results.
        body.Append("<fieldset id=\"destinataires\"").Append(Invalid(errors, "destinataires")).Append("><legend>Structures destinataires</legend>");
        ErrorText(body, errors, "destinataires");
        var listed = chosen.Concat(found.Where(f => !chosen.Any(c => c.Id == f.Id))).ToList();
        if (listed.Count == 0) body.Append("<p class=\"hint\">Aucune structure choisie : recherchez-la dans l'annuaire ci-dessous.</p>");
        foreach (var organization in listed)
        {
            var value = "Organization/" + organization.Id;
            var fieldId = "org-" + organization.Id;
            body.Append("<div class=\"field\"><input type=\"checkbox\" name=\"destinataire\" id=\"").Append(H(fieldId)).Append("\" value=\"").Append(H(value)).Append('"')
                .Append(chosen.Any(c => c.Id == organization.Id) ? " checked" : "").Append("> <label for=\"").Append(H(fieldId)).Append("\">").Append(H(organization.Name))
                .Append(" (FINESS ").Append(H(Finess(organization))).Append(")</label></div>");
        }
        body.Append("<div class=\"field\"><label for=\"recherche\">Rechercher dans l'annuaire (nom ou numéro FINESS)</label><br>")
            .Append("<input id=\"recherche\" name=\"recherche\" maxlength=\"100\" autocomplete=\"off\" value=\"").Append(H(state.Query)).Append('"')
            .Append(errors.ContainsKey("recherche") ? " aria-invalid=\"true\" aria-describedby=\"recherche-erreur\"" : "").Append("> ")
            .Append("<button type=\"submit\" name=\"action\" value=\"rechercher\">Rechercher</button>");
        ErrorText(body, errors, "recherche");
        body.Append("</div></fieldset>");

        // Categories of information (provision.class).
        body.Append("<fieldset id=\"categories\"").Append(Invalid(errors, "categories")).Append("><legend>Informations partagées</legend>");
        ErrorText(body, errors, "categories");
        foreach (var category in ConsentCategories.Information)
        {
            body.Append("<div class=\"field\"><input type=\"checkbox\" name=\"categorie\" id=\"cat-").Append(category.Key).Append("\" value=\"").Append(category.Key).Append('"')
                .Append(state.Categories.Contains(category.Key) ? " checked" : "").Append("> <label for=\"cat-").Append(category.Key).Append("\">").Append(H(category.Label))
                .Append("</label> <span class=\"hint\">: ").Append(H(category.Explanation)).Append("</span></div>");
        }
        body.Append("</fieldset>");

        // Sensitive categories (security labels): shared with the categories above unless masked.
        body.Append("<fieldset id=\"sensibles\"").Append(Invalid(errors, "sensibles")).Append("><legend>Informations sensibles</legend>")
            .Append("<p class=\"hint\">Ces informations font partie des catégories cochées. « Partager » : elles sont transmises avec elles. ")
            .Append("« Masquer » : toute donnée ou tout document qui les contient est retiré du partage, même dans les catégories cochées.</p>");
        ErrorText(body, errors, "sensibles");
        foreach (var sensitive in ConsentCategories.Sensitive)
        {
            var chosenValue = state.Sensitive.GetValueOrDefault(sensitive.Code);
            body.Append("<fieldset class=\"field\"><legend>").Append(H(sensitive.Label)).Append(" <span class=\"hint\">(").Append(H(sensitive.Explanation)).Append(")</span></legend>");
            foreach (var (value, label) in new[] { ("partager", "Partager"), ("masquer", "Masquer") })
            {
                var fieldId = $"sens-{sensitive.Code}-{value}";
                body.Append("<input type=\"radio\" name=\"sensible-").Append(sensitive.Code).Append("\" id=\"").Append(fieldId).Append("\" value=\"").Append(value).Append('"')
                    .Append(chosenValue == value ? " checked" : "").Append("> <label for=\"").Append(fieldId).Append("\">").Append(label)
                    .Append("<span class=\"skip\"> : ").Append(H(sensitive.Label)).Append("</span></label> ");
            }
            body.Append("</fieldset>");
        }
        body.Append("<div class=\"field\"><input type=\"checkbox\" name=\"tres-restreint\" id=\"tres-restreint\" value=\"oui\"").Append(state.VeryRestricted ? " checked" : "")
            .Append("> <label for=\"tres-restreint\">Partager aussi les informations très restreintes</label> <span class=\"hint\">: ce que l'équipe soignante a marqué « très restreint » ")
            .Append("n'est jamais transmis sans l'accord exprès de la personne</span></div></fieldset>");

        // Period (provision.period).
        body.Append("<fieldset id=\"periode\"").Append(Invalid(errors, "periode")).Append("><legend>Période du partage</legend>");
        ErrorText(body, errors, "periode");
        body.Append("<div class=\"field\"><label for=\"debut\">Du (jj/mm/aaaa)</label><br><input type=\"date\" id=\"debut\" name=\"debut\" required value=\"").Append(H(state.Start)).Append("\"></div>")
            .Append("<div class=\"field\"><label for=\"fin\">Au (jj/mm/aaaa)</label><br><input type=\"date\" id=\"fin\" name=\"fin\" required value=\"").Append(H(state.End)).Append("\"></div></fieldset>");

        body.Append("<p class=\"hint\">Finalité : la continuité des soins de la personne (article L.1110-4 du code de la santé publique). Jamais pour la justice ni l'administration pénitentiaire.</p>")
            .Append("<button type=\"submit\" name=\"action\" value=\"enregistrer\" class=\"primary\">Enregistrer le consentement</button></form>");
        return body.ToString();
    }

    private static string Invalid(Dictionary<string, string> errors, string field) =>
        errors.ContainsKey(field) ? $" aria-describedby=\"{field}-erreur\" aria-invalid=\"true\"" : "";

    private static void ErrorText(StringBuilder body, Dictionary<string, string> errors, string field)
    {
        if (errors.TryGetValue(field, out var error)) body.Append("<p class=\"error\" id=\"").Append(field).Append("-erreur\">").Append(H(error)).Append("</p>");
    }
}
