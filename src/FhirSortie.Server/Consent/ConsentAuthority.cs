using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;

namespace FhirSortie.Server.Consents;

/// <summary>
/// Who may record what a Consent says (issue 21 §1). A Consent is the person's word: a write that opens a patient's
/// record wider than it was (a new permit, a longer period, a withdrawn objection, a care team changed on the Patient)
/// must come from someone entitled to record it:
/// <list type="bullet">
/// <item>the patient's care team (its managing organisation, the USMP: a team row of consent_grants; or the organisation
/// that recorded the Patient resource);</item>
/// <item>an organisation holding an open <c>collect-consent</c> ExitPackageTask for that patient, written by the care team (the référent);</item>
/// <item>the person themself (<c>fhirUser</c> = that Patient).</item>
/// </list>
/// Anyone else is refused with 403, audited with the reason, whoever the widened access would go to: otherwise a
/// client allowed to create Consents (<c>system/*.cruds</c>, a launched app's <c>patient/*.c</c>) could name itself, or
/// a second organisation of its own, and read the record. A write that widens nothing (a withdrawal, an objection,
/// a proposed Consent for the care team to confirm) is left to the scopes. Called from
/// <see cref="WriteHook.BeforeSaveAsync"/> and <see cref="WriteHook.BeforeDeleteAsync"/>, so create, update, patch,
/// conditional writes, deletes and bundle entries all obey it; writes without a client (demo seeding) are not checked.
/// </summary>
public static class ConsentAuthority
{
    public const string ExitTaskTypes = "https://fhirsortie.fr/fhir/CodeSystem/exit-task-type";
    public const string CollectConsentCode = "collect-consent";

    /// <summary>Task states in which the référent is still asked to collect the consent.</summary>
    private static readonly IReadOnlySet<string> OpenTaskStates =
        new HashSet<string>(StringComparer.Ordinal) { "requested", "received", "accepted", "ready", "in-progress", "on-hold" };

    /// <summary>The person in person: fhirUser "Patient/{id}" (relative or absolute).</summary>
    public static bool IsThePerson(Caller caller, string patientId) => PersonOf(caller) == patientId;

    /// <summary>The Patient id a caller's fhirUser names ("Patient/{id}", relative or absolute), or null.</summary>
    public static string? PersonOf(Caller caller)
    {
        if (caller.FhirUser is not { } user) return null;
        var at = user.StartsWith("Patient/", StringComparison.Ordinal) ? 0 : user.LastIndexOf("/Patient/", StringComparison.Ordinal) + 1;
        if (at < 0 || (at == 0 && !user.StartsWith("Patient/", StringComparison.Ordinal))) return null;
        var id = user[(at + "Patient/".Length)..];
        return id.Length > 0 && !id.Contains('/') ? id : null;
    }

    /// <summary>Refuses (403) a save of a Consent or Patient that widens access when the caller may not record it.</summary>
    public static async System.Threading.Tasks.Task CheckSaveAsync(WriteSession session, Resource resource, StoredResource? current, Caller? caller,
        HttpContext? context, CancellationToken ct)
    {
        if (caller is null || resource is not (Hl7.Fhir.Model.Consent or Patient)) return;
        var previous = current is { Deleted: false, Json: { } json } ? FhirFormat.Parse(json, WireFormat.Json) : null;
        // A new Patient opens nobody's access to anything already stored: its care team is whoever records it.
        if (resource is Patient && previous is null) return;
        var before = previous is null ? [] : await ConsentGrants.RowsOfAsync(session, previous, ct);
        var after = await ConsentGrants.RowsOfAsync(session, resource, ct);
        var others = await OtherSourcesAsync(session, resource.TypeName, resource.Id, before, ct);
        await RequireEntitledAsync(session, caller, context, Widened(before, after, others), resource.TypeName, ct);
    }

    /// <summary>Deleting a Consent that objects to something withdraws the objection: the same rule.</summary>
    public static async System.Threading.Tasks.Task CheckDeleteAsync(WriteSession session, StoredResource current, Caller? caller, HttpContext? context,
        CancellationToken ct)
    {
        if (caller is null || current.Type is not ("Consent" or "Patient") || current.Json is not { } json) return;
        var before = await ConsentGrants.RowsOfAsync(session, FhirFormat.Parse(json, WireFormat.Json), ct);
        var others = await OtherSourcesAsync(session, current.Type, current.Id, before, ct);
        await RequireEntitledAsync(session, caller, context, Widened(before, [], others), current.Type, ct);
    }

    /// <summary>
    /// The grant rows of the other sources (Consents, Patient) of the patients whose deny rows the write may remove: only
    /// what they permit can a removed deny have masked. Nothing is read when the stored version denied nothing.
    /// </summary>
    private static async Task<IReadOnlyList<GrantRow>?> OtherSourcesAsync(WriteSession session, string type, string? id, IReadOnlyList<GrantRow> before, CancellationToken ct)
    {
        var patients = before.Where(r => r.Effect == GrantRow.Deny).Select(r => r.PatientId).Distinct(StringComparer.Ordinal).ToList();
        if (patients.Count == 0) return null;
        var rows = new List<GrantRow>();
        foreach (var patient in patients)
            rows.AddRange((await ConsentGrants.LoadAsync(session.Connection, patient, ct, session.Transaction)).Where(r => !(r.SourceType == type && r.SourceId == id)));
        return rows;
    }

    /// <summary>
    /// The patients whose access the change widens: a permit (or team) row after that no row before covered, or a
    /// deny row before that no deny row after still enforces and that masked something still permitted. A deny masks only
    /// permit and team rows (the author organisation is decided before it, AccessRules.Decide): with
    /// <paramref name="others"/>, the rows of the patient's other sources, a removed deny that no remaining permit or team
    /// row (of another source, or of <paramref name="after"/>) overlaps opens nothing, so withdrawing a consent whose denies
    /// masked only its own permits is a narrowing. Without <paramref name="others"/> every removed deny widens.
    /// </summary>
    public static IReadOnlyList<string> Widened(IReadOnlyList<GrantRow> before, IReadOnlyList<GrantRow> after, IReadOnlyList<GrantRow>? others = null)
    {
        var patients = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in after.Where(r => r.Effect != GrantRow.Deny))
            if (!before.Any(b => b.Effect == row.Effect && b.PatientId == row.PatientId && Covers(b, row))) patients.Add(row.PatientId);
        var remaining = others?.Concat(after).Where(r => r.Effect != GrantRow.Deny).ToList();
        foreach (var row in before.Where(r => r.Effect == GrantRow.Deny))
        {
            if (after.Any(a => a.Effect == GrantRow.Deny && a.PatientId == row.PatientId && Covers(a, row))) continue;
            if (remaining is null || remaining.Any(r => r.PatientId == row.PatientId && Overlaps(row, r))) patients.Add(row.PatientId);
        }
        return [.. patients];
    }

    /// <summary>Whether deny row <paramref name="deny"/> could mask something permit or team row <paramref name="grant"/> lets through (labels and periods: assumed to).</summary>
    private static bool Overlaps(GrantRow deny, GrantRow grant) =>
        (deny.ActorFiness is null || grant.ActorFiness is null || deny.ActorFiness == grant.ActorFiness)
        && (deny.Class is null || grant.Class is null || deny.Class == grant.Class)
        && (deny.Purpose is null || grant.Purpose is null || deny.Purpose == grant.Purpose);

    /// <summary>Row <paramref name="wide"/> applies wherever <paramref name="narrow"/> does (null columns match anything).</summary>
    private static bool Covers(GrantRow wide, GrantRow narrow) =>
        (wide.ActorFiness is null || wide.ActorFiness == narrow.ActorFiness)
        && (wide.Class is null || wide.Class == narrow.Class)
        && (wide.Purpose is null || wide.Purpose == narrow.Purpose)
        // A permit without a label does not cover V (very restricted: named explicitly, see AccessRules).
        && (wide.Label is null ? !(wide.Effect == GrantRow.Permit && narrow.Label == SecurityLabels.VeryRestricted) : wide.Label == narrow.Label)
        && (wide.PeriodStart is not { } ws || narrow.PeriodStart is { } ns && ws <= ns)
        && (wide.PeriodEnd is not { } we || narrow.PeriodEnd is { } ne && ne <= we);

    private static async System.Threading.Tasks.Task RequireEntitledAsync(WriteSession session, Caller caller, HttpContext? context,
        IReadOnlyList<string> widened, string type, CancellationToken ct)
    {
        foreach (var patient in widened)
        {
            if (await EntitledAsync(session, caller, patient, consent: type == "Consent", ct)) continue;
            var reason = type == "Patient"
                ? "Only the patient's care team or the person themself may change who the patient's care team is."
                : "Only the patient's care team, an organisation holding an open collect-consent task for the patient, or the person themself "
                  + "may record a Consent that widens access to the patient's record.";
            if (context is not null)
            {
                var note = AuditNote.For(context);
                note.Patients.Add(patient);
                if (note.Decision is not { Permitted: false }) note.Decision = AccessDecision.Deny(reason);
            }
            throw FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden, reason, type);
        }
    }

    private static async Task<bool> EntitledAsync(WriteSession session, Caller caller, string patient, bool consent, CancellationToken ct)
    {
        if (IsThePerson(caller, patient)) return true;
        if (caller.OrganizationFiness is not { } finess || !AccessRules.IsCareActor(caller.Kind)) return false;
        var team = (await ConsentGrants.LoadAsync(session.Connection, patient, ct, session.Transaction))
            .Where(r => r.Effect == GrantRow.Team).Select(r => r.ActorFiness).ToList();
        if (team.Contains(finess)) return true;
        // The organisation that recorded the Patient holds that record (rule 3): it could have named itself as managing
        // organisation when it created it, so this opens nothing more (and a package whose Patient names the hospital's
        // FINESS rather than the unit's still records its Consent).
        var recorder = await PatientRecordedByAsync(session, patient, ct);
        if (recorder == finess) return true;
        // The référent's task counts only when the care team wrote it: a client that may create Tasks could otherwise
        // assign itself one and then record the Consent that opens the record to itself.
        if (!consent) return false;
        var careTeam = team.OfType<string>().ToList();
        if (recorder is not null) careTeam.Add(recorder);
        return await HoldsCollectConsentTaskAsync(session, finess, patient, careTeam, ct);
    }

    private static async Task<string?> PatientRecordedByAsync(WriteSession session, string patient, CancellationToken ct)
    {
        await using var cmd = Sql.Command(session.Connection, session.Transaction,
            "SELECT finess FROM resource_origin WHERE type = 'Patient' AND id = @i").With("@i", patient);
        return await cmd.ExecuteScalarAsync(ct) as string;
    }

    /// <summary>
    /// An open collect-consent Task for the patient whose owner is the caller's organisation (Organization or
    /// PractitionerRole), written by one of <paramref name="careTeam"/> (resource_origin: its first writer; the receiver may
    /// change only its status and output, Exit/HandoffTasks.cs).
    /// </summary>
    private static async Task<bool> HoldsCollectConsentTaskAsync(WriteSession session, string finess, string patient, IReadOnlyCollection<string> careTeam, CancellationToken ct)
    {
        var ids = new List<string>();
        await using (var cmd = Sql.Command(session.Connection, session.Transaction,
            "SELECT r.id FROM resources r JOIN resource_compartment rc ON rc.rkey = r.rkey AND rc.compartment_type = 'Patient' AND rc.compartment_id = @p " +
            "JOIN search_token c ON c.rkey = r.rkey AND c.param = 'code' AND c.system = @s AND c.code = @c WHERE r.type = 'Task' AND r.deleted = 0")
            .With("@p", patient).With("@s", ExitTaskTypes).With("@c", CollectConsentCode))
        {
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) ids.Add(reader.GetString(0));
        }
        foreach (var id in ids.Distinct(StringComparer.Ordinal))
        {
            var stored = await session.Store.ReadAsync(session.Connection, session.Transaction, "Task", id, forUpdate: false, ct);
            if (stored is not { Deleted: false, Json: { } json } || FhirFormat.Parse(json, WireFormat.Json) is not Hl7.Fhir.Model.Task task) continue;
            if (task.Status?.GetLiteral() is not { } status || !OpenTaskStates.Contains(status)) continue;
            if (await Exit.HandoffTasks.FinessOfAsync(session, task.Owner, ct) != finess) continue;
            await using var origin = Sql.Command(session.Connection, session.Transaction,
                "SELECT finess FROM resource_origin WHERE type = 'Task' AND id = @i").With("@i", id);
            if (await origin.ExecuteScalarAsync(ct) is string writer && careTeam.Contains(writer)) return true;
        }
        return false;
    }
}
