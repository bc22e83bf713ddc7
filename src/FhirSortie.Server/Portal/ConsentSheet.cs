using System.Security.Cryptography;
using System.Text;
using FhirSortie.Server.Consents;
using Hl7.Fhir.Model;
using static FhirSortie.Server.Portal.PortalPage;

namespace FhirSortie.Server.Portal;

/// <summary>
/// A recorded Consent on the référent's page: the printable consent sheet (who, what, to whom, period, the right to
/// withdraw) for the person to sign, the upload of the signed sheet, and the withdrawal.
/// The signed sheet is a DocumentReference (type LOINC 59284-0, the Consent in context.related) that the Consent points
/// to with <c>sourceReference</c>, not an inline <c>sourceAttachment</c>: the SharingConsent and FR Core profiles allow
/// both (neither constrains source[x]), but a scan of several megabytes inside the Consent would travel with every read
/// and search of it and be re-parsed by each later write's consent-authority check; as its own resource it has its own
/// metadata (content type, SHA-1), Provenance and audit trail. Both are written in one transaction, so a sheet
/// is never stored without its link.
/// </summary>
public static class ConsentSheet
{
    /// <summary>5 MB: a signed page scanned as PDF or photographed is well under it; the gateway takes 16 MB of JSON (base64 adds a third).</summary>
    public const long MaxBytes = 5 * 1024 * 1024;

    public static void Map(RouteGroupBuilder portal)
    {
        portal.MapGet("/consentement/{id}/fiche/{consent}", SheetAsync);
        portal.MapPost("/consentement/{id}/fiche-signee", SignedAsync);
        portal.MapPost("/consentement/{id}/retrait", WithdrawAsync);
    }

    /// <summary>One recorded Consent, in French, with its sheet, its upload and its withdrawal.</summary>
    public static string Card(string taskId, Hl7.Fhir.Model.Consent consent, string csrf)
    {
        var reading = ConsentCategories.Read(consent);
        var active = consent.Status == Hl7.Fhir.Model.Consent.ConsentState.Active;
        var body = new StringBuilder("<div class=\"card consent\" id=\"consentement-").Append(H(consent.Id)).Append("\">");
        body.Append("<p><strong>").Append(H(string.Join(", ", reading.Recipients))).Append("</strong> · du ").Append(H(Date(reading.Start))).Append(" au ").Append(H(Date(reading.End)))
            .Append(" · <span class=\"status\">").Append(active ? "Actif" : consent.Status == Hl7.Fhir.Model.Consent.ConsentState.Inactive ? "Retiré" : H(consent.Status?.ToString())).Append("</span></p>");
        body.Append("<p>Informations partagées : ").Append(H(string.Join(", ", reading.Categories.Select(c => c.Label).Concat(reading.OtherClasses)))).Append("</p>");
        if (reading.Masked.Count > 0) body.Append("<p>Masquées : ").Append(H(string.Join(", ", reading.Masked.Select(m => m.Label)))).Append("</p>");
        body.Append("<p>Fiche signée : ").Append(consent.Source is ResourceReference ? "<span class=\"ok\">jointe</span>" : "<span class=\"missing\">pas encore jointe</span>").Append("</p>");
        body.Append("<form method=\"get\" action=\"").Append(H(PortalRoutes.ConsentSheet(taskId, consent.Id))).Append("\" class=\"inline\"><button type=\"submit\">Imprimer la fiche de consentement</button></form>");
        if (active)
        {
            var field = $"<input type=\"hidden\" name=\"consent\" value=\"{H(consent.Id)}\">";
            body.Append("<form method=\"post\" enctype=\"multipart/form-data\" action=\"").Append(H(PortalRoutes.ConsentSigned(taskId))).Append("\" class=\"field\">").Append(CsrfInput(csrf)).Append(field)
                .Append("<label for=\"fiche-").Append(H(consent.Id)).Append("\">Fiche signée (PDF, JPEG ou PNG, 5 Mo au plus)</label><br>")
                .Append("<input type=\"file\" id=\"fiche-").Append(H(consent.Id)).Append("\" name=\"fiche\" accept=\"application/pdf,image/jpeg,image/png\" required> ")
                .Append("<button type=\"submit\">Joindre la fiche signée</button></form>");
            body.Append("<form method=\"post\" action=\"").Append(H(PortalRoutes.ConsentWithdraw(taskId))).Append("\" class=\"field\">").Append(CsrfInput(csrf)).Append(field)
                .Append("<input type=\"checkbox\" id=\"retrait-").Append(H(consent.Id)).Append("\" name=\"confirmation\" value=\"oui\" required> ")
                .Append("<label for=\"retrait-").Append(H(consent.Id)).Append("\">La personne demande le retrait de ce consentement</label> ")
                .Append("<button type=\"submit\" class=\"danger\">Retirer le consentement</button></form>");
        }
        return body.Append("</div>").ToString();
    }

    private static async Task<IResult> SheetAsync(HttpContext context, string id, string consent)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ConsentView.Collectors);
        if (portal is null) return instead!;
        var subject = await ConsentView.LoadAsync(portal.Api, id);
        var recorded = subject?.Consents.FirstOrDefault(c => c.Id == consent);
        if (subject is null || recorded is null) return ConsentView.NotFound(context, portal);
        var reading = ConsentCategories.Read(recorded);
        var recipients = await RecipientsAsync(portal.Api, recorded);
        var body = new StringBuilder("<div class=\"sheet\" id=\"fiche\">");
        body.Append("<p class=\"noprint\"><a href=\"").Append(H(PortalRoutes.ConsentFor(id))).Append("\">← Retour au recueil</a> · Utilisez la commande Imprimer de votre navigateur (Ctrl+P), faites signer la fiche, puis joignez-la.</p>");
        body.Append("<h1>Consentement au partage d'informations de santé</h1>")
            .Append("<p>Je soussigné(e) <strong>").Append(H(PersonName(subject.Patient))).Append("</strong>, né(e) le ").Append(H(Date(subject.Patient.BirthDate)))
            .Append(", accepte que les informations de santé me concernant décrites ci-dessous soient transmises aux structures désignées, pour la continuité de mes soins après ma sortie de détention ")
            .Append("(article L.1110-4 du code de la santé publique).</p>");
        body.Append("<h2>Destinataires</h2><ul>");
        foreach (var (name, finess) in recipients) body.Append("<li>").Append(H(name)).Append(finess is null ? "" : $" (FINESS {H(finess)})").Append("</li>");
        body.Append("</ul><h2>Informations partagées</h2><ul>");
        foreach (var category in reading.Categories) body.Append("<li><strong>").Append(H(category.Label)).Append("</strong> : ").Append(H(category.Explanation)).Append("</li>");
        foreach (var other in reading.OtherClasses) body.Append("<li>").Append(H(other)).Append("</li>");
        body.Append("</ul><h2>Informations sensibles</h2><ul>");
        foreach (var shared in reading.Shared) body.Append("<li>").Append(H(shared.Label)).Append(" (").Append(H(shared.Explanation)).Append(") : <strong>partagées</strong></li>");
        foreach (var masked in reading.Masked) body.Append("<li>").Append(H(masked.Label)).Append(" (").Append(H(masked.Explanation)).Append(") : <strong>masquées</strong>, jamais transmises</li>");
        body.Append("<li>Informations très restreintes : <strong>").Append(reading.VeryRestricted ? "partagées" : "non partagées").Append("</strong></li></ul>");
        body.Append("<h2>Période</h2><p>Du ").Append(H(Date(reading.Start))).Append(" au ").Append(H(Date(reading.End))).Append(".</p>");
        body.Append("<h2>Mes droits</h2><p>Je peux retirer ce consentement à tout moment, sans avoir à me justifier, auprès de la structure qui l'a recueilli ou de mon unité sanitaire. ")
            .Append("Le retrait prend effet immédiatement pour tout nouvel accès ; les informations déjà transmises ne sont pas reprises. ")
            .Append("Ces informations ne sont jamais communiquées à la justice ni à l'administration pénitentiaire. Je peux demander la liste des accès à mes données au délégué à la protection des données.</p>");
        body.Append("<p>Recueilli le ").Append(H(DateTime(recorded.DateTime))).Append(" par ").Append(H(portal.User.DisplayName)).Append(" — ").Append(H(portal.User.KindLabel))
            .Append(" (FINESS ").Append(H(portal.User.Finess)).Append("). Référence du consentement : ").Append(H(recorded.Id)).Append(".</p>");
        body.Append("<p>Signature de la personne : ______________________ &nbsp; Signature du professionnel : ______________________</p></div>");
        return Render(context, portal.User, portal.Csrf, "Fiche de consentement", body.ToString());
    }

    private static async Task<List<(string Name, string? Finess)>> RecipientsAsync(PortalApi api, Hl7.Fhir.Model.Consent consent)
    {
        var references = ConsentCategories.Read(consent);
        var actors = (consent.Provision?.Actor ?? []).Concat(consent.Provision?.Provision.SelectMany(p => p.Actor) ?? []).Select(a => a.Reference).OfType<ResourceReference>().ToList();
        var ids = actors.Select(a => PortalData.IdOf(a, "Organization")).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
        var organizations = ids.Count == 0 ? [] : PortalData.Resources<Organization>(await api.SearchAsync($"Organization?_id={string.Join(',', ids.Select(Uri.EscapeDataString))}&_count=20")).ToList();
        var result = actors.Select(a => organizations.FirstOrDefault(o => "Organization/" + o.Id == a.Reference) is { } o
            ? (o.Name ?? a.Display ?? "Structure", (string?)ConsentView.Finess(o))
            : (a.Display ?? "Structure", a.Identifier?.Value)).Distinct().ToList();
        return result.Count > 0 ? result : [.. references.Recipients.Select(r => (r, (string?)null))];
    }

    /// <summary>PDF, JPEG or PNG, recognised by their first bytes (the browser's content type is the user's machine's guess).</summary>
    public static string? ContentTypeOf(ReadOnlySpan<byte> data) =>
        data.StartsWith("%PDF-"u8) ? "application/pdf"
        : data.StartsWith(Jpeg) ? "image/jpeg"
        : data.StartsWith(Png) ? "image/png"
        : null;

    private static readonly byte[] Jpeg = [0xFF, 0xD8, 0xFF];
    private static readonly byte[] Png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static async Task<IResult> SignedAsync(HttpContext context, string id, TimeProvider clock)
    {
        PortalContext? portal;
        IResult? instead;
        IFormCollection form;
        try
        {
            (portal, instead) = await PortalSession.RequireAsync(context, ConsentView.Collectors);
            if (portal is null) return instead!;
            form = await context.Request.ReadFormAsync(context.RequestAborted);
        }
        catch (BadHttpRequestException tooLarge) when (tooLarge.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            // Past Kestrel's own cap the body cannot even be read: no session check was possible, so no page with data.
            return Message(context, "Fichier trop volumineux", $"Le fichier dépasse la taille maximale de {MaxBytes / (1024 * 1024)} Mo. Numérisez la fiche à une résolution plus basse ou en noir et blanc.",
                StatusCodes.Status413PayloadTooLarge);
        }
        var subject = await ConsentView.LoadAsync(portal.Api, id);
        if (subject is null) return ConsentView.NotFound(context, portal);
        var consentId = form["consent"].ToString();
        var file = form.Files.GetFile("fiche");
        string? error = null;
        byte[] data = [];
        if (subject.Consents.FirstOrDefault(c => c.Id == consentId) is not { } consent) return ConsentView.NotFound(context, portal);
        if (file is null || file.Length == 0) error = "Choisissez le fichier de la fiche signée (PDF, JPEG ou PNG).";
        else if (file.Length > MaxBytes)
            error = $"Le fichier fait {file.Length / (1024.0 * 1024.0):0.0} Mo : la taille maximale est de {MaxBytes / (1024 * 1024)} Mo. Numérisez la fiche à une résolution plus basse ou en noir et blanc.";
        else
        {
            using var buffer = new MemoryStream();
            await file.CopyToAsync(buffer, context.RequestAborted);
            data = buffer.ToArray();
            if (ContentTypeOf(data) is null) error = "Ce fichier n'est ni un PDF, ni une image JPEG ou PNG : seuls ces formats sont acceptés.";
        }
        var status = file is not null && file.Length > MaxBytes ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status422UnprocessableEntity;
        if (error is null)
        {
            var organization = (await PortalData.MyOrganizationsAsync(portal.Api, portal.User.Finess)).FirstOrDefault();
            var answer = await portal.Api.PostAsync("", Transaction(consent, subject.Patient.Id!, organization, data, file!.FileName, clock.GetUtcNow()));
            if (answer.Ok) return Results.Redirect(PortalRoutes.ConsentFor(id) + "?fait=fiche");
            error = "La passerelle n'a pas accepté la fiche signée. " + answer.Problem;
            status = (int)answer.Status;
        }
        return Render(context, portal.User, portal.Csrf, "Recueil du consentement",
            ConsentView.Page(subject, portal.Csrf, null, "La fiche signée n'est pas jointe : " + error, ConsentView.FormState.Empty(Today(clock)), [], [], null), status);
    }

    /// <summary>The signed sheet and the Consent's link to it, in one transaction (the Consent's version checked with If-Match).</summary>
    public static Bundle Transaction(Hl7.Fhir.Model.Consent consent, string patientId, string? organization, byte[] data, string fileName, DateTimeOffset now)
    {
        var documentUrl = "urn:uuid:" + Guid.NewGuid();
        var document = new DocumentReference
        {
            Status = DocumentReferenceStatus.Current,
            DocStatus = CompositionStatus.Final,
            Type = new CodeableConcept(Mapping.NationalSystems.Loinc, ConsentCategories.PrivacyConsentLoinc, "Fiche de consentement signée", "Fiche de consentement signée"),
            Subject = new ResourceReference("Patient/" + patientId),
            Date = now,
            Author = organization is null ? [] : [new ResourceReference(organization)],
            Custodian = organization is null ? null : new ResourceReference(organization),
            Description = "Fiche de consentement signée par la personne",
            Context = new DocumentReference.ContextComponent { Related = [new ResourceReference("Consent/" + consent.Id)] },
            Content = [new DocumentReference.ContentComponent
            {
                Attachment = new Attachment
                {
                    ContentType = ContentTypeOf(data),
                    Language = "fr",
                    Data = data,
                    Hash = SHA1.HashData(data),
                    // The file's own name may carry the person's name: a neutral title instead.
                    Title = "Fiche de consentement signée" + Path.GetExtension(fileName).ToLowerInvariant() switch { ".pdf" => ".pdf", ".png" => ".png", ".jpg" or ".jpeg" => ".jpg", _ => "" },
                    CreationElement = new FhirDateTime(now),
                },
            }],
        };
        var linked = (Hl7.Fhir.Model.Consent)consent.DeepCopy();
        linked.Source = new ResourceReference(documentUrl);
        return new Bundle
        {
            Type = Bundle.BundleType.Transaction,
            Entry =
            [
                new Bundle.EntryComponent { FullUrl = documentUrl, Resource = document, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "DocumentReference" } },
                new Bundle.EntryComponent
                {
                    FullUrl = "Consent/" + consent.Id, Resource = linked,
                    Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PUT, Url = "Consent/" + consent.Id, IfMatch = consent.Meta?.VersionId is { } v ? $"W/\"{v}\"" : null },
                },
            ],
        };
    }

    private static async Task<IResult> WithdrawAsync(HttpContext context, string id, TimeProvider clock)
    {
        var (portal, instead) = await PortalSession.RequireAsync(context, ConsentView.Collectors);
        if (portal is null) return instead!;
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var subject = await ConsentView.LoadAsync(portal.Api, id);
        if (subject is null) return ConsentView.NotFound(context, portal);
        var (consent, version) = await portal.Api.ReadAsync<Hl7.Fhir.Model.Consent>("Consent/" + Uri.EscapeDataString(form["consent"].ToString()));
        string problem;
        if (consent is null || ConsentGrants.PatientId(consent.Patient) != subject.Patient.Id) problem = "Ce consentement n'est pas accessible à votre structure.";
        else if (form["confirmation"].ToString() != "oui") problem = "Cochez la case confirmant que la personne demande le retrait.";
        else
        {
            // Withdrawal: status inactive (the grants of an inactive Consent are none, at once on every node).
            consent.Status = Hl7.Fhir.Model.Consent.ConsentState.Inactive;
            var answer = await portal.Api.UpdateAsync(consent, version);
            if (answer.Ok) return Results.Redirect(PortalRoutes.ConsentFor(id) + "?fait=retire");
            problem = answer.Status == System.Net.HttpStatusCode.Forbidden
                ? "La passerelle a refusé le retrait (refus 403) : votre structure n'est pas habilitée à modifier ce consentement. La personne peut s'adresser à son unité sanitaire. " + answer.Problem
                : answer.Problem;
        }
        return Render(context, portal.User, portal.Csrf, "Recueil du consentement",
            ConsentView.Page(subject, portal.Csrf, null, "Le consentement n'est pas retiré : " + problem, ConsentView.FormState.Empty(Today(clock)), [], [], null), StatusCodes.Status409Conflict);
    }
}
