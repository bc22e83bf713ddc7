using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// The part of a search's <see cref="AccessFilter"/> that follows from the actor kind alone (rule 1 of issue 5 and
/// the auditors' exclusivity on AuditEvent), with the restriction kinds the core already applies in SQL.
/// Not yet here: the per-patient consent restriction for other care organisations (a join on consent_grants,
/// resource_origin and search_token '_security'), which needs a new AccessFilter member; see the branch report.
/// </summary>
public static class ConsentAccessFilter
{
    private static readonly IReadOnlySet<string> AllButAudit =
        ModelInfo.SupportedResources.Where(t => t != "AuditEvent").ToHashSet(StringComparer.Ordinal);

    private static readonly IReadOnlySet<string> AuditorTypes = new HashSet<string>(StringComparer.Ordinal) { "AuditEvent", "Patient", "Provenance" };

    private static readonly IReadOnlySet<string> AdministrativeAndDirectory =
        new HashSet<string>(AccessRules.AdministrativeTypes.Concat(["Organization", "Location"]), StringComparer.Ordinal);

    /// <summary>Justice also reads detention stays (issue 25; which Encounters are stays: ConsentRestriction.OnlyEncounterType).</summary>
    private static readonly IReadOnlySet<string> JusticeTypes = new HashSet<string>(AdministrativeAndDirectory.Append("Encounter"), StringComparer.Ordinal);

    public static AccessFilter For(Caller caller)
    {
        HashSet<string>? patients = caller.PatientId is { } launch ? [launch] : null;
        return caller.Kind switch
        {
            ActorKind.Auditor => new AccessFilter(AuditorTypes),
            ActorKind.Observer => new AccessFilter(Measures.EvaluateMeasure.ObserverTypes),
            // Justice and social actors: administrative resources without any sensitivity or restricted label.
            // (Which DocumentReferences are attendance attestations is decided per resource by the decision point.)
            ActorKind.Justice or ActorKind.Social => new AccessFilter(caller.Kind == ActorKind.Justice ? JusticeTypes : AdministrativeAndDirectory, patients,
                [.. SecurityLabels.Sensitivities.Select(s => (SecurityLabels.ActCode, s)), (SecurityLabels.Confidentiality, "R"), (SecurityLabels.Confidentiality, "V")]),
            _ => new AccessFilter(AllButAudit, patients),
        };
    }
}
