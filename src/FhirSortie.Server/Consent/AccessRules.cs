using FhirSortie.Server.Security;

namespace FhirSortie.Server.Consents;

/// <summary>
/// The decision rules of issue 5, in order, as a pure function of the request and the patient's grant rows
/// (so the access matrix can test them exhaustively). <see cref="ConsentDecisions"/> loads the rows from the database.
/// </summary>
public static class AccessRules
{
    public const string Treatment = "TREAT";
    public const string EmergencyTreatment = "ETREAT";

    /// <summary>The document type code of an attendance attestation (DocumentReference.type, profile AttendanceAttestation).</summary>
    public const string DocumentTypes = "https://fhirsortie.fr/fhir/CodeSystem/document-types";
    public const string AttendanceAttestationCode = "attendance-attestation";

    /// <summary>
    /// What makes a DocumentReference an attendance attestation for the access rules: its category (profiles/
    /// CodeSystem-document-category.json, StructureDefinition-AttendanceAttestation.json). The category, not the type:
    /// the profile fixes it and it is one indexed token (search parameter "category").
    /// </summary>
    public const string DocumentCategories = "https://fhirsortie.fr/fhir/CodeSystem/document-category";
    public const string AttendanceAttestationCategory = "attestation-presence";

    /// <summary>What justice and social actors may ever see: administrative facts, never clinical content.</summary>
    public static readonly IReadOnlySet<string> AdministrativeTypes = new HashSet<string>(StringComparer.Ordinal) { "Patient", "Appointment", "DocumentReference" };

    /// <summary>How security labels and Consents combine, as the CapabilityStatement's rest.security.description says it.</summary>
    public const string LabelsAndConsent =
        "Consent: the gateway labels what it stores (meta.security: v3 ActCode ETH/PSY/HIV/SDV, v3 Confidentiality R/V) and reads "
        + "Consent.provision as FHIR does: a permit naming classes and no securityLabel covers every resource of those classes, labelled or not "
        + "(only V needs a permit naming V); a securityLabel on a permit narrows it to resources carrying that label; a deny naming labels masks "
        + "them, for the care team too. Justice and social actors never see clinical content, whatever a Consent says. A Consent that widens "
        + "access is recorded only by the patient's care team, an organisation holding an open collect-consent Task, or the person (fhirUser).";

    public static bool IsCareActor(ActorKind kind) => kind is ActorKind.Usmp or ActorKind.Csapa or ActorKind.Act or ActorKind.Care or ActorKind.Telemedicine;

    /// <param name="breakGlass">True when the caller holds an unexpired break-the-glass grant for this patient (see <see cref="BreakGlass"/>).</param>
    public static AccessDecision Decide(AccessRequest request, IReadOnlyList<GrantRow> rows, long now, bool breakGlass = false)
    {
        var caller = request.Caller;
        var type = request.ResourceType;

        // Audit records: only auditors, never filtered by consent (they answer "who saw my data").
        if (type == "AuditEvent")
            return caller.Kind == ActorKind.Auditor ? AccessDecision.Permit("auditor") : AccessDecision.Deny("only auditors read audit records");
        if (caller.Kind == ActorKind.Auditor)
            return type switch
            {
                "Patient" => AccessDecision.Permit("auditor identifies the patient"),
                "Provenance" => AccessDecision.Permit("auditor reads the trace of writes"),
                _ => AccessDecision.Deny("auditors read audit records, provenance and patient identity only"),
            };
        if (caller.Kind == ActorKind.Admin)
            return request.PatientId is null ? AccessDecision.Permit("administration of shared resources") : AccessDecision.Deny("administrators do not read patient data");

        // Public-health observers (ARS, the ministry's monitoring): the continuity indicators and the directory, never patient data.
        if (caller.Kind == ActorKind.Observer)
            return request.PatientId is null && Measures.EvaluateMeasure.ObserverTypes.Contains(type)
                ? AccessDecision.Permit("public-health observer: measures and directory")
                : AccessDecision.Deny("public-health observers read measures only, never patient data");

        // Launch context: a client launched for one patient sees that patient only.
        if (caller.PatientId is { } launch && request.PatientId is { } patient && launch != patient)
            return AccessDecision.Deny("outside the launch patient");

        // The person reads (and so may withdraw) their own Consents: they are the source of them (issue 21 §1).
        if (type == "Consent" && request.PatientId is { } own && ConsentAuthority.IsThePerson(caller, own))
            return AccessDecision.Permit("the person's own consent");

        // Rule 1: justice and social actors: administrative facts only; no consent can widen this.
        if (caller.Kind is ActorKind.Justice or ActorKind.Social)
        {
            if (request.PatientId is null)
                return type is "Organization" or "Location" ? AccessDecision.Permit("non-clinical directory resource") : AccessDecision.Deny("clinical or care resources are never shared with justice or social actors");
            // The detention stay's administrative minimum (status, dates, kind of exit; redacted) for justice only (issue 25).
            var stay = type == "Encounter" && request.DetentionStay && caller.Kind == ActorKind.Justice;
            if ((!AdministrativeTypes.Contains(type) && !stay) || (type == "DocumentReference" && !request.AttendanceAttestation))
                return AccessDecision.Deny("clinical content is never shared with justice or social actors");
            if (request.Labels.Any(l => SecurityLabels.Sensitivities.Contains(l) || l is "R" or "V"))
                return AccessDecision.Deny("sensitive content is never shared with justice or social actors");
            if (caller.Kind == ActorKind.Justice) return AccessDecision.Permit("administrative information for justice");
            var consent = CoveringPermit(request, rows, now, caller.OrganizationFiness);
            return consent is null
                ? AccessDecision.Deny("no active consent permits this social actor")
                : AccessDecision.Permit("administrative information with the person's consent", consent);
        }

        if (!IsCareActor(caller.Kind)) return AccessDecision.Deny("unknown actor kind");
        if (request.PatientId is null) return AccessDecision.Permit("not patient data");
        var finess = caller.OrganizationFiness;

        // Rule 3: the author organisation keeps access to what it wrote.
        if (finess is not null && request.AuthorFiness == finess) return AccessDecision.Permit("author organisation");

        // Rule 5 (checked before the objection: an emergency overrides it, and is flagged and audited).
        if (breakGlass && request.PurposeOfUse == EmergencyTreatment)
            return new AccessDecision(true, "break-the-glass emergency access", BreakGlass: true);

        // An explicit deny wins over every permit and over the care team.
        var deny = rows.FirstOrDefault(r => r.Effect == GrantRow.Deny && r.ActiveAt(now)
            && (r.ActorFiness is null || r.ActorFiness == finess)
            && (r.Class is null || r.Class == type)
            && (r.Purpose is null || r.Purpose == request.PurposeOfUse)
            && (r.Label is null || request.Labels.Contains(r.Label)));
        if (deny is not null) return AccessDecision.Deny("the patient objected", deny.SourceId);
        if (finess is null) return AccessDecision.Deny("the client acts for no organisation");

        // Rule 2: same care team (the patient's managing organisation), unless the patient objected (above).
        if (rows.Any(r => r.Effect == GrantRow.Team && r.ActorFiness == finess)) return AccessDecision.Permit("same care team");

        // Rule 4: other care organisations need an active consent naming them, the type and the categories.
        var permitting = CoveringPermit(request, rows, now, finess);
        return permitting is null
            ? AccessDecision.Deny("no active consent permits this organisation, type and categories")
            : AccessDecision.Permit("consent", permitting);
    }

    /// <summary>
    /// Whether a permit row with <paramref name="permitLabel"/> covers a resource carrying <paramref name="labels"/>, as FHIR
    /// reads Consent.provision.securityLabel: a permit naming no label covers every resource of its classes, ETH, PSY, HIV
    /// and SDV included; a permit naming a label covers only resources carrying it (a deny naming one masks them, see
    /// <see cref="Decide"/>). V (very restricted) is the one exception: only a permit naming V covers it.
    /// </summary>
    public static bool Covers(string? permitLabel, IReadOnlyList<string> labels) =>
        (permitLabel is null || labels.Contains(permitLabel)) && (permitLabel == SecurityLabels.VeryRestricted || !labels.Contains(SecurityLabels.VeryRestricted));

    private static string? CoveringPermit(AccessRequest request, IReadOnlyList<GrantRow> rows, long now, string? finess)
    {
        if (finess is null) return null;
        return rows.FirstOrDefault(r => r.Effect == GrantRow.Permit && r.ActiveAt(now) && r.ActorFiness == finess
            && (r.Class is null || r.Class == request.ResourceType)
            && (r.Purpose is null || r.Purpose == request.PurposeOfUse)
            && Covers(r.Label, request.Labels))?.SourceId;
    }
}
