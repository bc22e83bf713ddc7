using FhirSortie.Server.Consents;

namespace FhirSortie.Server.Audit;

/// <summary>
/// What the request's handlers tell the audit recorder, kept on the HttpContext: the access decision (reason,
/// permitting consent, break-the-glass), the resources and patients involved, and whether the write already put
/// its AuditEvent in its own transaction.
/// </summary>
public sealed class AuditNote
{
    public AccessDecision? Decision { get; set; }
    public PurposeOfUse Purpose { get; set; } = PurposeOfUse.Treatment;
    /// <summary>"Type/id" or "Type/id/_history/v" of the resources read or written.</summary>
    public List<string> Entities { get; } = [];
    public HashSet<string> Patients { get; } = new(StringComparer.Ordinal);
    /// <summary>The query an operation names in its record when it is not a search (e.g. $evaluate-measure's period and subject).</summary>
    public string? Query { get; set; }
    /// <summary>Set by the write hook: the successful write's AuditEvents were committed with it, do not record another.</summary>
    public bool AuditedInTransaction { get; set; }

    /// <summary>
    /// Entries of a batch or transaction that failed: each gets its own audit row beside the bundle's, naming the
    /// entry's interaction, target and status (and the denial, when the access point refused it).
    /// </summary>
    public List<EntryFailure> FailedEntries { get; } = [];

    /// <param name="Interaction">restful-interaction code of the entry (read, vread, search-type, create, update, patch, delete).</param>
    /// <param name="Target">"Type/id", "Type/id/_history/v" or "Type" (a search or a create).</param>
    /// <param name="Query">The entry's search or condition, if any.</param>
    public sealed record EntryFailure(string Interaction, string Target, int Status, AccessDecision? Decision, IReadOnlyList<string> Patients, string? Query);

    public static AuditNote For(HttpContext context)
    {
        if (context.Items.TryGetValue(typeof(AuditNote), out var found) && found is AuditNote note) return note;
        note = new AuditNote();
        context.Items[typeof(AuditNote)] = note;
        return note;
    }
}
