using FhirSortie.Server.Security;

namespace FhirSortie.Server.Consents;

/// <summary>
/// One access question: may this caller, for this purpose, see this patient's resource of this type carrying these
/// labels (v3 ActCode sensitivities and v3 Confidentiality codes), written by this organisation?
/// </summary>
/// <param name="PatientId">The patient whose compartment the resource is in; null for resources outside any (Organization, Medication...).</param>
/// <param name="AuthorFiness">The organisation that wrote the resource (resource_origin), when known.</param>
/// <param name="AttendanceAttestation">A DocumentReference typed as an attendance attestation (the only document justice actors may read).</param>
/// <param name="DetentionStay">An Encounter typed as a detention stay (the only Encounter justice actors may read, redacted: issue 25).</param>
public sealed record AccessRequest(
    Caller Caller,
    string PurposeOfUse,
    string? PatientId,
    string ResourceType,
    IReadOnlyList<string> Labels,
    string? AuthorFiness = null,
    bool AttendanceAttestation = false,
    bool DetentionStay = false);

/// <summary>The answer, with the reason (for the audit trail and the OperationOutcome) and the Consent that permitted it.</summary>
public sealed record AccessDecision(bool Permitted, string Reason, string? ConsentId = null, bool BreakGlass = false)
{
    public static AccessDecision Permit(string reason, string? consentId = null) => new(true, reason, consentId);
    public static AccessDecision Deny(string reason, string? consentId = null) => new(false, reason, consentId);
}
