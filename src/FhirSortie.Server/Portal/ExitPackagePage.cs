using System.Net;
using System.Security.Cryptography;
using System.Text;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The USMP's exit-package form (issue 22, view 1), for a USMP whose software cannot post FHIR: "Nouvelle sortie" for a
/// person (exact INS, or one of the USMP's patients) and "Compléter" for a stay already there. On submit the form is
/// checked (what cannot be written at all), each resource it builds is checked by the gateway's own <c>$validate</c>
/// against the same profiles as the write (so every error shows at once, next to its field), and only then is the
/// transaction posted with the user's token, exactly as a USMP's software would post it. A refusal comes back next to the
/// fields too, and the page shows back everything that was typed.
/// </summary>
public static class ExitPackagePage
{
    public static void Map(RouteGroupBuilder portal)
    {
        portal.MapGet("/sorties/nouvelle", (Delegate)ChooseAsync);
        portal.MapPost("/sorties/nouvelle", (Delegate)FindAsync);
        portal.MapGet("/sorties/dossier/{patient}", (HttpContext context, string patient) => FormAsync(context, patient, null));
        portal.MapGet("/sorties/dossier/{patient}/{stay}", (HttpContext context, string patient, string stay) => FormAsync(context, patient, stay));
        portal.MapPost("/sorties/dossier/{patient}", (HttpContext context, string patient, TimeProvider clock) => SubmitAsync(context, patient, null, clock));
        portal.MapPost("/sorties/dossier/{patient}/{stay}", (HttpContext context, string patient, string stay, TimeProvider clock) => SubmitAsync(context, patient, stay, clock));
    }

    private static async Task<IResult> ChooseAsync(HttpContext context)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Usmp);
        if (portal is null) return instead!;
        return Render(context, portal.User, portal.Csrf, "Nouvelle sortie", await ChooserAsync(portal, null, null));
    }

    private static async Task<IResult> FindAsync(HttpContext context)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Usmp);
        if (portal is null) return instead!;
        var (found, error) = await PersonFinder.FindAsync(context, portal.Api);
        return Render(context, portal.User, portal.Csrf, "Nouvelle sortie", await ChooserAsync(portal, found, error), error is null ? 200 : 404);
    }

    /// <summary>The person: by exact identifier (posted, never in a URL), or one of the patients my organisation manages.</summary>
    private static async Task<string> ChooserAsync(PortalContext portal, List<Patient>? found, string? error)
    {
        var body = new StringBuilder("<p><a href=\"").Append(PortalRoutes.Sorties).Append("\">← Sorties</a></p><h1>Nouvelle sortie</h1>")
            .Append("<h2>Rechercher la personne par son identifiant</h2>")
            .Append(PersonFinder.Form(PortalRoutes.NewExit, portal.Csrf, error));
        if (found is { Count: > 0 })
        {
            body.Append("<ul>");
            foreach (var patient in found)
                body.Append("<li><a href=\"").Append(H(PortalRoutes.ExitPackage(patient.Id, null))).Append("\">Préparer la sortie de ").Append(H(PersonName(patient)))
                    .Append("</a>, né(e) le ").Append(H(Date(patient.BirthDate))).Append("</li>");
            body.Append("</ul>");
        }
        var organizations = await PortalData.MyOrganizationsAsync(portal.Api, portal.User.Finess);
        var mine = organizations.Count == 0 ? [] : PortalData.Resources<Patient>(await portal.Api.SearchAsync(
            $"Patient?organization={string.Join(',', organizations.Select(Uri.EscapeDataString))}&_count=200")).ToList();
        body.Append("<h2>Ou choisir parmi les patients de l'unité (").Append(mine.Count).Append(")</h2>");
        if (mine.Count == 0) body.Append("<p>Aucun patient rattaché à votre unité.</p>");
        else
        {
            body.Append("<table><thead><tr><th scope=\"col\">Personne</th><th scope=\"col\">Née le</th><th scope=\"col\">Dossier</th></tr></thead><tbody>");
            foreach (var patient in mine.OrderBy(p => p.Name.FirstOrDefault()?.Family, StringComparer.Create(French, true)))
                body.Append("<tr><td>").Append(H(PersonName(patient))).Append("</td><td>").Append(H(Date(patient.BirthDate))).Append("</td><td><a href=\"")
                    .Append(H(PortalRoutes.ExitPackage(patient.Id, null))).Append("\">Préparer une sortie<span class=\"skip\"> pour ").Append(H(PersonName(patient))).Append("</span></a></td></tr>");
            body.Append("</tbody></table>");
        }
        return body.ToString();
    }

    /// <summary>Everything the form needs to know about the person, the user and the package as it stands.</summary>
    private sealed record Loaded(Patient Patient, Practitioner Practitioner, ExitPackageContext Context, List<Organization> Directory,
        List<MedicationRequest> Prescriptions, List<Appointment> Appointments, string? ReceiverName);

    private static async Task<(Loaded? Loaded, IResult? Problem)> LoadAsync(HttpContext context, PortalContext portal, string patientId, string? stayId, DateTimeOffset now)
    {
        var api = portal.Api;
        IResult Fail(string title, string message, int status) => Message(context, title, message, status, user: portal.User, csrf: portal.Csrf);
        var (patient, _) = await api.ReadAsync<Patient>("Patient/" + Uri.EscapeDataString(patientId));
        if (patient is null) return (null, Fail("Personne introuvable", "Cette personne n'existe pas ou n'est pas accessible à votre unité.", 404));
        var organizations = await PortalData.MyOrganizationsAsync(api, portal.User.Finess);
        if (organizations.Count == 0) return (null, Fail("Structure introuvable", "Votre structure n'est pas dans l'annuaire de la passerelle.", 409));
        var practitionerId = portal.User.FhirUser is { } fhirUser && fhirUser.Contains("Practitioner/", StringComparison.Ordinal)
            ? fhirUser[(fhirUser.LastIndexOf("Practitioner/", StringComparison.Ordinal) + "Practitioner/".Length)..] : null;
        var practitioner = practitionerId is null ? null : (await api.ReadAsync<Practitioner>("Practitioner/" + Uri.EscapeDataString(practitionerId))).Resource;
        if (practitioner is null)
            return (null, Fail("Prescripteur inconnu", "Votre fiche de praticien (RPPS) est introuvable dans la passerelle : le dossier de sortie ne peut pas être signé.", 409));

        Encounter? stay = null;
        string? version = null;
        if (stayId is not null)
        {
            (stay, version) = await api.ReadAsync<Encounter>("Encounter/" + Uri.EscapeDataString(stayId));
            if (stay is null || PortalData.IdOf(stay.Subject, "Patient") != patientId)
                return (null, Fail("Séjour introuvable", "Ce séjour n'existe pas ou n'est pas accessible à votre unité.", 404));
        }
        var p = Uri.EscapeDataString("Patient/" + patientId);
        var prescriptions = new List<MedicationRequest>();
        var appointments = new List<Appointment>();
        ServiceRequest? referral = null;
        var hasLetter = false;
        var hasNaloxone = false;
        if (stay is not null)
        {
            var e = Uri.EscapeDataString("Encounter/" + stay.Id);
            prescriptions = [.. PortalData.Resources<MedicationRequest>(await api.SearchAsync($"MedicationRequest?encounter={e}&_count=50"))];
            referral = PortalData.Resources<ServiceRequest>(await api.SearchAsync($"ServiceRequest?encounter={e}&_count=5")).FirstOrDefault();
            hasLetter = PortalData.Resources<DocumentReference>(await api.SearchAsync($"DocumentReference?patient={p}&_count=50"))
                .Any(d => d.Type?.Coding.Any(c => c.Code == Mapping.CdaDocument.LiaisonLetterLoinc) == true && (d.Context?.Encounter.Any(x => x.Reference == "Encounter/" + stay.Id) ?? true));
            hasNaloxone = PortalData.Resources<MedicationDispense>(await api.SearchAsync($"MedicationDispense?patient={p}&_count=50"))
                .Any(d => d.Medication is CodeableConcept c && c.Coding.Any(x => x.Code == "V03AB15"));
            var entered = stay.Period?.Start ?? "";
            appointments = [.. PortalData.Resources<Appointment>(await api.SearchAsync($"Appointment?patient={p}&_count=50"))
                .Where(a => (referral?.Id is { } r && a.BasedOn.Any(b => b.Reference == "ServiceRequest/" + r)) || string.CompareOrdinal(a.Start?.ToString("yyyy-MM-dd") ?? "", entered) >= 0)];
        }
        var directory = PortalData.Resources<Organization>(await api.SearchAsync("Organization?_count=200"))
            .Where(o => !organizations.Contains("Organization/" + o.Id) && o.Name is not null)
            .OrderBy(o => o.Name, StringComparer.Create(French, true)).ToList();
        var receiverName = referral?.Performer.FirstOrDefault() is { } performer
            ? directory.FirstOrDefault(o => "Organization/" + o.Id == performer.Reference)?.Name ?? performer.Display : null;
        var packageContext = new ExitPackageContext(patientId, organizations[0]["Organization/".Length..], portal.User.Finess, practitioner.Id!, now)
        {
            Stay = stay,
            StayVersion = version,
            Referral = referral,
            HasLetter = hasLetter,
            HasAppointment = appointments.Count > 0,
            HasPrescription = prescriptions.Count > 0,
            HasNaloxone = hasNaloxone,
        };
        return (new Loaded(patient, practitioner, packageContext, directory, prescriptions, appointments, receiverName), null);
    }

    private static async Task<IResult> FormAsync(HttpContext context, string patient, string? stay)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Usmp);
        if (portal is null) return instead!;
        var clock = context.RequestServices.GetRequiredService<TimeProvider>();
        var (loaded, problem) = await LoadAsync(context, portal, patient, stay, clock.GetUtcNow());
        if (loaded is null) return problem!;
        var form = new ExitPackageForm { Key = NewKey() };
        if (loaded.Context.Stay is { } existing)
        {
            // Completing: the stay's own values, as the user would type them.
            form.Entry = Date(existing.Period?.Start);
            form.Release = existing.Period?.End is { } end ? Date(end) : "";
            form.ReleaseTime = existing.Period?.End is { Length: > 10 } withTime ? DateTime(withTime)[^5..].Replace('h', ':') : "";
            form.Released = existing.Status == Encounter.EncounterStatus.Finished;
            form.ExitKind = existing.Hospitalization?.DischargeDisposition?.Coding.FirstOrDefault(c => c.System == ExitPackageTransaction.ExitKinds)?.Code ?? "";
            form.Destination = existing.Hospitalization?.Destination?.Display ?? "";
            form.Naloxone = loaded.Context.HasNaloxone ? "oui" : "";
        }
        var saved = context.Request.Query.ContainsKey("enregistre");
        return Render(context, portal.User, portal.Csrf, Title(loaded), Page(loaded, form, portal.Csrf, [], saved, null));
    }

    private static string Title(Loaded loaded) => loaded.Context.Stay is null ? "Nouvelle sortie" : "Compléter le dossier de sortie";

    private static async Task<IResult> SubmitAsync(HttpContext context, string patient, string? stay, TimeProvider clock)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ActorKind.Usmp);
        if (portal is null) return instead!;
        var (loaded, problem) = await LoadAsync(context, portal, patient, stay, clock.GetUtcNow());
        if (loaded is null) return problem!;
        var posted = await context.Request.ReadFormAsync(context.RequestAborted);
        var (form, errors) = await ExitPackageForm.ReadAsync(posted, context.RequestAborted);
        var title = Title(loaded);
        // "Rechercher une structure": the same form again, the directory filtered; nothing is checked or written.
        if (posted["action"].ToString() == "structure")
            return Render(context, portal.User, portal.Csrf, title, Page(loaded, form, portal.Csrf, [], false, null));

        var packageContext = loaded.Context;
        form.Check(errors, packageContext.Stay is null, packageContext.Referral is not null, packageContext.HasAppointment);
        if (packageContext.Referral is null && form.Organization.Length > 0)
        {
            if (loaded.Directory.FirstOrDefault(o => o.Id == form.Organization) is { } receiver)
                packageContext = packageContext with { ReceiverId = receiver.Id, ReceiverName = receiver.Name };
            else errors.TryAdd("structure", "Choisissez une structure de l'annuaire.");
        }
        else if (packageContext.Referral is not null) packageContext = packageContext with { ReceiverName = loaded.ReceiverName };

        var built = ExitPackageTransaction.Build(form, packageContext);
        var list = errors.Select(e => new ExitPackageErrors.FieldError(e.Key, e.Value, null)).ToList();
        // The gateway's own validator, entry by entry, so that every field in error is shown in one answer (a transaction stops at the first).
        for (var i = 0; i < built.Bundle.Entry.Count; i++)
        {
            if (built.Bundle.Entry[i].Resource is not { } resource || resource.Meta?.Profile.Any() != true) continue;
            var answer = await portal.Api.PostAsync($"{resource.TypeName}/$validate?mode=create", resource);
            if (answer.Resource is OperationOutcome outcome) list.AddRange(ExitPackageErrors.FromValidation(built.Fields[i], outcome));
            else if (!answer.Ok) list.Add(new ExitPackageErrors.FieldError("", answer.Problem, null));
        }
        if (list.Count > 0)
            return Render(context, portal.User, portal.Csrf, title, Page(loaded, form, portal.Csrf, Distinct(list), false, null), StatusCodes.Status422UnprocessableEntity);

        var result = await portal.Api.PostAsync("", built.Bundle);
        if (!result.Ok)
        {
            var refused = result.Resource is OperationOutcome outcome ? ExitPackageErrors.FromTransaction(built.Fields, outcome).ToList() : [];
            if (refused.Count == 0) refused.Add(new ExitPackageErrors.FieldError("", result.Problem, null));
            var status = result.Status is HttpStatusCode.Forbidden or HttpStatusCode.Conflict or HttpStatusCode.PreconditionFailed ? (int)result.Status : StatusCodes.Status422UnprocessableEntity;
            return Render(context, portal.User, portal.Csrf, title, Page(loaded, form, portal.Csrf, Distinct(refused), false, null), status);
        }
        var stayLocation = (result.Resource as Bundle)?.Entry.FirstOrDefault()?.Response?.Location ?? "";
        var savedStay = stayLocation.Split('/') is [.., "Encounter", var id, "_history", _] ? id : stay;
        return Results.Redirect(PortalRoutes.ExitPackage(patient, savedStay) + "?enregistre=1");
    }

    /// <summary>One message per field (the first: the form's own check comes before the profile's); general ones all kept.</summary>
    private static List<ExitPackageErrors.FieldError> Distinct(List<ExitPackageErrors.FieldError> errors) =>
        [.. errors.Where(e => e.Field.Length > 0).GroupBy(e => e.Field, StringComparer.Ordinal).Select(g => g.First()), .. errors.Where(e => e.Field.Length == 0)];

    private static string NewKey() => Convert.ToHexString(RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();

    // ---- rendering ----

    private static string Page(Loaded loaded, ExitPackageForm form, string csrf, List<ExitPackageErrors.FieldError> errors, bool saved, string? notice)
    {
        var context = loaded.Context;
        var byField = errors.Where(e => e.Field.Length > 0).GroupBy(e => e.Field, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var html = new StringBuilder("<p class=\"noprint\"><a href=\"").Append(PortalRoutes.Sorties).Append("\">← Sorties</a></p>")
            .Append("<h1>").Append(H(Title(loaded))).Append(" : ").Append(H(PersonName(loaded.Patient))).Append("</h1>")
            .Append("<p>Né(e) le ").Append(H(Date(loaded.Patient.BirthDate))).Append(" · Prescripteur : ").Append(H(PractitionerName(loaded.Practitioner)))
            .Append(" — RPPS <span id=\"rpps\">").Append(H(Rpps(loaded.Practitioner) ?? "non renseigné")).Append("</span></p>");
        if (saved) html.Append("<p class=\"notice\" role=\"status\" id=\"enregistre\">Le dossier de sortie est enregistré dans la passerelle.</p>");
        if (notice is not null) html.Append("<p class=\"notice\" role=\"status\">").Append(H(notice)).Append("</p>");
        if (errors.Count > 0)
        {
            html.Append("<div class=\"alert\" role=\"alert\" id=\"erreurs\" tabindex=\"-1\"><h2>Le dossier n'a pas été enregistré : ").Append(errors.Count)
                .Append(errors.Count == 1 ? " erreur" : " erreurs").Append(" à corriger</h2><ul>");
            foreach (var error in errors)
                html.Append("<li>").Append(error.Field.Length > 0 && FieldLabels.TryGetValue(error.Field, out var label)
                    ? $"<a href=\"#{H(error.Field)}\">{H(label)}</a> : {H(error.Message)}"
                    : H(error.Message)).Append("</li>");
            html.Append("</ul></div>");
        }
        if (context.Stay is not null) html.Append(Summary(loaded));

        var action = PortalRoutes.ExitPackage(context.PatientId, context.Stay?.Id);
        html.Append("<form method=\"post\" action=\"").Append(H(action)).Append("\" enctype=\"multipart/form-data\" class=\"printable\" novalidate>").Append(CsrfInput(csrf))
            .Append("<input type=\"hidden\" name=\"cle\" value=\"").Append(H(form.Key)).Append("\">");

        string Error(string field) => byField.TryGetValue(field, out var e)
            ? $"<p class=\"error\" id=\"{H(field)}-erreur\">{H(e.Message)}{(e.Detail is { Length: > 0 } d ? $" <span class=\"hint\" lang=\"en\">({H(d)})</span>" : "")}</p>" : "";
        string Invalid(string field, string? hint = null)
        {
            var described = new List<string>();
            if (hint is not null) described.Add(field + "-aide");
            if (byField.ContainsKey(field)) described.Add(field + "-erreur");
            return (described.Count > 0 ? $" aria-describedby=\"{string.Join(' ', described)}\"" : "") + (byField.ContainsKey(field) ? " aria-invalid=\"true\"" : "");
        }
        string Text(string field, string label, string value, string? hint = null, int size = 12, string extra = "") =>
            $"<div class=\"field\"><label for=\"{field}\">{H(label)}</label>{(hint is null ? "" : $" <span class=\"hint\" id=\"{field}-aide\">{H(hint)}</span>")}<br>"
            + $"<input id=\"{field}\" name=\"{field}\" value=\"{H(value)}\" size=\"{size}\"{extra}{Invalid(field, hint)}>{Error(field)}</div>";
        string Select(string field, string label, string value, IEnumerable<(string Code, string Label)> options, string? empty)
        {
            var s = new StringBuilder($"<div class=\"field\"><label for=\"{field}\">{H(label)}</label><br><select id=\"{field}\" name=\"{field}\"{Invalid(field)}>");
            if (empty is not null) s.Append("<option value=\"\"").Append(value.Length == 0 ? " selected" : "").Append('>').Append(H(empty)).Append("</option>");
            foreach (var (code, text) in options)
                s.Append("<option value=\"").Append(H(code)).Append('"').Append(code == value ? " selected" : "").Append('>').Append(H(text)).Append("</option>");
            return s.Append("</select>").Append(Error(field)).Append("</div>").ToString();
        }

        html.Append("<fieldset><legend>Séjour et sortie</legend>")
            .Append(Text("entree", "Date d'entrée en détention" + (context.Stay is null ? " (obligatoire)" : ""), form.Entry, "jj/mm/aaaa", extra: " inputmode=\"numeric\" autocomplete=\"off\""))
            .Append(Text("sortie", "Date de sortie (obligatoire)", form.Release, "jj/mm/aaaa, prévue ou effective", extra: " inputmode=\"numeric\" autocomplete=\"off\""))
            .Append(Text("sortie-heure", "Heure de sortie", form.ReleaseTime, "hh:mm, heure de Paris ; 09:00 si vide", 6))
            .Append("<div class=\"field\"><input type=\"checkbox\" id=\"sortie-effectuee\" name=\"sortie-effectuee\" value=\"oui\"").Append(form.Released ? " checked" : "")
            .Append("> <label for=\"sortie-effectuee\">La sortie a déjà eu lieu</label></div>")
            .Append(Select("type-sortie", "Type de sortie", form.ExitKind, ExitPackageForm.ExitKinds, "— non encore connu —"))
            .Append(Text("destination", "Destination (établissement d'arrivée, hébergement…)", form.Destination, size: 50, extra: " maxlength=\"200\""))
            .Append("</fieldset>");

        html.Append("<fieldset><legend>Prescriptions de sortie</legend>");
        if (loaded.Prescriptions.Count > 0)
            html.Append("<p>Déjà prescrit : ").Append(H(string.Join(" ; ", loaded.Prescriptions.Select(r => PortalData.MedicationName(r) + (PortalData.BridgingDays(r) is { } d ? $" (dépannage {d} j)" : ""))))).Append(". Les lignes ci-dessous s'ajoutent.</p>");
        foreach (var line in form.Prescriptions)
        {
            var p = line.Prefix;
            html.Append("<fieldset><legend>Ligne ").Append(line.Number).Append("</legend>")
                .Append(Select(p, "Médicament", line.Medication, [.. ExitPackageForm.Medications.Select(m => (m.Code, $"{m.Label} — {m.Code}")), (ExitPackageForm.OtherMedication, "Autre (code ATC ci-dessous)")], "— aucun —"))
                .Append(Text(p + "-atc", "Code ATC (si « Autre »)", line.Atc, "7 caractères, par exemple J05AP55", 9, " maxlength=\"7\" autocomplete=\"off\""))
                .Append(Text(p + "-dose", "Dose par prise", line.Dose, "nombre, par exemple 8 ou 0,5", 6, " inputmode=\"decimal\""))
                .Append(Select(p + "-unite", "Unité", line.Unit, ExitPackageForm.Units, null))
                .Append(Select(p + "-frequence", "Fréquence", line.Frequency, ExitPackageForm.Frequencies, null))
                .Append(Text(p + "-duree", "Durée du traitement (jours)", line.Duration, null, 5, " inputmode=\"numeric\""))
                .Append(Text(p + "-depannage", "Dépannage remis à la sortie (jours)", line.BridgingDays, "vide si aucun", 5, " inputmode=\"numeric\""))
                .Append(Text(p + "-depannage-qte", "Quantité remise en dépannage", line.BridgingQuantity, "dans l'unité de la dose", 5, " inputmode=\"decimal\""))
                .Append("</fieldset>");
        }
        html.Append("<fieldset><legend>Kit de naloxone remis à la sortie</legend>");
        if (context.HasNaloxone) html.Append("<p>Remise du kit déjà enregistrée.</p>");
        else
            foreach (var (value, label) in new[] { ("oui", "Oui"), ("non", "Non") })
            {
                // The first radio carries the field's id, so the error summary's link lands on it.
                var id = value == "oui" ? "naloxone" : "naloxone-non";
                html.Append("<input type=\"radio\" id=\"").Append(id).Append("\" name=\"naloxone\" value=\"").Append(value).Append('"')
                    .Append(form.Naloxone == value ? " checked" : "").Append(value == "oui" ? Invalid("naloxone") : "").Append("> <label for=\"").Append(id).Append("\">").Append(label).Append("</label> ");
            }
        html.Append(Error("naloxone")).Append("</fieldset></fieldset>");

        html.Append("<fieldset><legend>Lettre de liaison</legend>");
        if (context.HasLetter) html.Append("<p>Une lettre de liaison est déjà jointe à ce dossier.</p>");
        else
        {
            html.Append("<div class=\"field\"><label for=\"lettre\">Texte de la lettre</label><br><textarea id=\"lettre\" name=\"lettre\" rows=\"8\" cols=\"80\" maxlength=\"20000\"")
                .Append(Invalid("lettre")).Append('>').Append(H(form.LetterText)).Append("</textarea>").Append(Error("lettre")).Append("</div>")
                .Append("<div class=\"field\"><label for=\"lettre-pdf\">Ou la lettre en PDF</label> <span class=\"hint\" id=\"lettre-pdf-aide\">2 Mo au plus</span><br>")
                .Append("<input type=\"file\" id=\"lettre-pdf\" name=\"lettre-pdf\" accept=\"application/pdf\"").Append(Invalid("lettre-pdf", "")).Append('>').Append(Error("lettre-pdf"));
            if (form.LetterPdf is not null)
                html.Append("<p class=\"hint\">PDF conservé : ").Append(H(form.LetterPdfName)).Append(" (").Append(form.LetterPdf.Length / 1024 + 1).Append(" Ko), inutile de le joindre à nouveau.</p>")
                    .Append("<input type=\"hidden\" name=\"lettre-pdf-conserve\" value=\"").Append(Convert.ToBase64String(form.LetterPdf)).Append("\">")
                    .Append("<input type=\"hidden\" name=\"lettre-pdf-nom\" value=\"").Append(H(form.LetterPdfName)).Append("\">");
            html.Append("</div>");
        }
        html.Append("</fieldset>");

        html.Append("<fieldset><legend>Adressage et rendez-vous</legend>");
        if (context.Referral is { } referral)
            html.Append("<p>Adressé à ").Append(H(loaded.ReceiverName ?? "la structure de relais")).Append(" : ").Append(H(referral.Code?.Text)).Append(".</p>");
        else
        {
            var search = form.OrganizationSearch;
            var shown = loaded.Directory.Where(o => search.Length == 0 || (o.Name ?? "").Contains(search, StringComparison.OrdinalIgnoreCase)
                || o.Identifier.Any(i => i.Value == search)).ToList();
            if (form.Organization.Length > 0 && !shown.Any(o => o.Id == form.Organization) && loaded.Directory.FirstOrDefault(o => o.Id == form.Organization) is { } chosen)
                shown.Insert(0, chosen);
            html.Append("<div class=\"field\"><label for=\"structure-recherche\">Chercher dans l'annuaire (nom ou FINESS)</label><br>")
                .Append("<input id=\"structure-recherche\" name=\"structure-recherche\" value=\"").Append(H(search)).Append("\" size=\"30\"> ")
                .Append("<button type=\"submit\" name=\"action\" value=\"structure\">Rechercher une structure</button></div>")
                .Append(Select("structure", "Structure qui prend le relais", form.Organization,
                    shown.Select(o => (o.Id!, $"{o.Name} (FINESS {o.Identifier.FirstOrDefault(i => i.System == Security.Finess.System)?.Value ?? "—"})")),
                    shown.Count == 0 ? "— aucune structure ne correspond —" : "— choisir —"))
                .Append(Select("adressage-type", "Type de suivi", form.ReferralType, ExitPackageForm.ReferralTypes, null))
                .Append(Text("adressage-motif", "Motif de l'adressage", form.ReferralReason, null, 60, " maxlength=\"300\""));
        }
        if (context.HasAppointment)
            html.Append("<p>Rendez-vous déjà fixé : ").Append(H(string.Join(" ; ", loaded.Appointments.Select(a => DateTime(a.Start))))).Append(".</p>");
        else
            html.Append(Text("rdv-date", "Date du premier rendez-vous", form.AppointmentDate, "jj/mm/aaaa", extra: " inputmode=\"numeric\" autocomplete=\"off\""))
                .Append(Text("rdv-heure", "Heure du rendez-vous", form.AppointmentTime, "hh:mm, heure de Paris", 6))
                .Append(Text("rdv-lieu", "Lieu du rendez-vous", form.AppointmentPlace, "adresse ou nom du lieu de consultation", 60, " maxlength=\"200\""));
        html.Append("</fieldset>");
        html.Append("<p><button type=\"submit\" class=\"primary\" name=\"action\" value=\"enregistrer\">Enregistrer le dossier de sortie</button></p></form>");
        return html.ToString();
    }

    /// <summary>What the package already holds (completing it).</summary>
    private static string Summary(Loaded loaded)
    {
        var c = loaded.Context;
        var items = new (string Item, bool Present)[]
        {
            ("Lettre de liaison", c.HasLetter), ("Ordonnance", c.HasPrescription), ("Dépannage", loaded.Prescriptions.Any(p => PortalData.BridgingDays(p) is not null)),
            ("Naloxone", c.HasNaloxone), ("Adressage", c.Referral is not null), ("Rendez-vous", c.HasAppointment),
        };
        return "<div class=\"card\"><h2>Le dossier aujourd'hui</h2><ul>"
            + string.Concat(items.Select(i => $"<li class=\"{(i.Present ? "ok" : "missing")}\">{(i.Present ? "✓" : "✗")} {H(i.Item)}<span class=\"skip\"> : {(i.Present ? "présent" : "manquant")}</span></li>"))
            + "</ul></div>";
    }

    private static string PractitionerName(Practitioner practitioner) =>
        practitioner.Name.FirstOrDefault() is { } n ? $"{string.Join(' ', n.Prefix)} {string.Join(' ', n.Given)} {n.Family}".Trim() : "Praticien";

    private static string? Rpps(Practitioner practitioner) =>
        practitioner.Identifier.FirstOrDefault(i => i.System == "https://rpps.esante.gouv.fr")?.Value
        ?? practitioner.Identifier.FirstOrDefault(i => i.System == "urn:oid:1.2.250.1.71.4.2.1")?.Value;

    /// <summary>The label of each field, for the error summary's links.</summary>
    private static readonly Dictionary<string, string> FieldLabels = BuildLabels();

    private static Dictionary<string, string> BuildLabels()
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["entree"] = "Date d'entrée", ["sortie"] = "Date de sortie", ["sortie-heure"] = "Heure de sortie", ["type-sortie"] = "Type de sortie",
            ["destination"] = "Destination", ["naloxone"] = "Kit de naloxone", ["lettre"] = "Lettre de liaison", ["lettre-pdf"] = "Lettre en PDF",
            ["structure"] = "Structure qui prend le relais", ["adressage-type"] = "Type de suivi", ["adressage-motif"] = "Motif de l'adressage",
            ["rdv-date"] = "Date du rendez-vous", ["rdv-heure"] = "Heure du rendez-vous", ["rdv-lieu"] = "Lieu du rendez-vous",
        };
        for (var i = 1; i <= ExitPackageForm.Lines; i++)
        {
            labels[$"med{i}"] = $"Ligne {i} : médicament";
            labels[$"med{i}-atc"] = $"Ligne {i} : code ATC";
            labels[$"med{i}-dose"] = $"Ligne {i} : dose";
            labels[$"med{i}-unite"] = $"Ligne {i} : unité";
            labels[$"med{i}-frequence"] = $"Ligne {i} : fréquence";
            labels[$"med{i}-duree"] = $"Ligne {i} : durée";
            labels[$"med{i}-depannage"] = $"Ligne {i} : dépannage";
            labels[$"med{i}-depannage-qte"] = $"Ligne {i} : quantité de dépannage";
        }
        return labels;
    }
}
