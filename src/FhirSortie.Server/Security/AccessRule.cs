using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Security;

/// <summary>The FHIR interactions an access decision is about.</summary>
public enum Interaction
{
    Read,
    VRead,
    HistoryInstance,
    HistoryType,
    HistorySystem,
    SearchType,
    SearchSystem,
    SearchCompartment,
    Create,
    Update,
    Patch,
    Delete,
    Validate,
}

/// <summary>
/// A decision asked before any work is done: this interaction, on this type (null: every type, for system
/// search/history), with these search parameters (searches, and the condition of a conditional write).
/// </summary>
public sealed record AccessRequest(Interaction Interaction, string? Type)
{
    public IReadOnlyList<KeyValuePair<string, string>> Query { get; init; } = [];

    /// <summary>Conditional create, update, patch or delete: a search runs to find the target.</summary>
    public bool Conditional { get; init; }

    /// <summary>The patient id of a compartment search (GET [base]/Patient/{id}/...).</summary>
    public string? Compartment { get; init; }
}

/// <summary>Permit, or deny with a reason the client may read (never patient data).</summary>
public sealed record AccessDecision(bool Permitted, string? Reason)
{
    /// <summary>A denied resource answered as if it did not exist (404), so that the answer does not confirm it exists.</summary>
    public bool Hidden { get; init; }

    public static AccessDecision Hide(string reason) => new(false, reason) { Hidden = true };

    public static readonly AccessDecision Permit = new(true, null);

    public static AccessDecision Deny(string reason) => new(false, reason);
}

/// <summary>
/// One set of access rules (SMART scopes now; consent, secrecy labels later). Every rule registered in DI is asked by
/// <see cref="AccessPoint"/>, and any deny wins: adding a rule set never means touching the interactions again.
/// </summary>
public interface IAccessRule
{
    /// <summary>Before the work: may the caller attempt this interaction on this type at all?</summary>
    AccessDecision Decide(Caller caller, AccessRequest request);

    /// <summary>On the resource concerned: the one read, or the one written (current and new content).</summary>
    AccessDecision DecideInstance(Caller caller, Interaction interaction, ResourceFacts resource);

    /// <summary>
    /// On a stored resource being disclosed (read, vread, instance history, batch/transaction GET), for rules that
    /// need the database (consent). Asked after <see cref="DecideInstance"/>; permits by default.
    /// </summary>
    ValueTask<AccessDecision> DecideStoredAsync(Caller caller, Interaction interaction, StoredResource stored, CancellationToken ct) =>
        ValueTask.FromResult(AccessDecision.Permit);

    /// <summary>
    /// On one version of a resource, decided on that version's own content (vread, history entries, and the current
    /// version a write would change), on the given connection (inside a write transaction: it sees the transaction's
    /// writes). <paramref name="quiet"/>: a history filtering its entries, whose hidden versions are not a denied request.
    /// Asked after <see cref="DecideInstance"/>; permits by default.
    /// </summary>
    ValueTask<AccessDecision> DecideVersionAsync(Caller caller, Interaction interaction, ResourceFacts version,
        System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction? transaction, bool quiet, CancellationToken ct) =>
        ValueTask.FromResult(AccessDecision.Permit);

    /// <summary>
    /// What this rule lets the caller see in a search on <paramref name="type"/> (null: system search, history,
    /// transaction), applied as SQL. <see cref="AccessFilter.None"/> when the rule hides nothing.
    /// </summary>
    AccessFilter Filter(Caller caller, string? type);
}

/// <summary>
/// A resource an instance decision is about. Parsed and indexed only when a rule asks (a system/*.cruds caller's
/// read costs nothing extra), and then once for all the rules.
/// </summary>
public sealed class ResourceFacts(string type, string id, Func<Resource?> parse, ResourceIndexer indexer)
{
    private Resource? _resource;
    private bool _parsed;
    private IndexEntries? _index;

    public string Type { get; } = type;
    public string Id { get; } = id;

    /// <summary>The content, or null when there is none (a deletion).</summary>
    public Resource? Resource
    {
        get
        {
            if (!_parsed) (_resource, _parsed) = (parse(), true);
            return _resource;
        }
    }

    /// <summary>The search index rows of the content (what restrictions and compartments are evaluated on).</summary>
    public IndexEntries? Index => _index ??= Resource is { } r ? indexer.Index(r) : null;

    /// <summary>Patients whose compartment holds this resource (a Patient is in its own).</summary>
    public bool InPatientCompartment(string patientId) =>
        Type == "Patient" ? Id == patientId : Index?.Compartments.Any(c => c.CompartmentType == "Patient" && c.CompartmentId == patientId) == true;
}
