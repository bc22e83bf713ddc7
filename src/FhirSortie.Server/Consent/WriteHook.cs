using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// What every save does besides storing the resource, inside the same database transaction (called once by
/// <see cref="WriteSession.SaveAsync"/>, so create, update, conditional writes, patch and transaction entries all
/// get it): security labels from the content, the author organisation, the consent grants of a Consent or
/// Patient, and, for a client's write, one Provenance (unless the sender sent one in X-Provenance) and one audit_log row per
/// write session, naming every version the session saved (see <see cref="WriteSession.BeforeCommit"/>).
/// </summary>
public sealed class WriteHook(SecurityLabeller labeller, TimeProvider clock, IHttpContextAccessor? http = null, Profiles.ShippedConformance? shipped = null,
    Exit.ReleaseAlerts? alerts = null)
{
    public const string ProvenanceHeader = "X-Provenance";

    public SecurityLabeller Labeller => labeller;

    public async System.Threading.Tasks.Task BeforeSaveAsync(WriteSession session, Resource resource, StoredResource? current, string method, CancellationToken ct)
    {
        var creating = current is null || current.Deleted;
        if (resource is AuditEvent) // the audit store holds them (Audit/AuditStore.cs); also inside a transaction or batch
            throw FhirException.Error(HttpStatusCode.MethodNotAllowed, OperationOutcome.IssueType.NotSupported, "AuditEvents are the gateway's append-only audit records: clients cannot create, update, patch or delete them.");
        // The profiles, ValueSets... the gateway ships and enforces are read-only for clients (its own start publishes them).
        if (http?.HttpContext is not null) shipped?.RefuseClientWrite(resource);
        labeller.Apply(resource);

        var context = http?.HttpContext;
        var caller = context is null ? null : Caller.Of(context);
        // The hand-off Task state machine and who may move it (Exit/HandoffTasks.cs), before anything is recorded.
        await Exit.HandoffTasks.CheckAsync(session, resource, current, caller, ct);
        // Release dates (issue 25): the change of date for the Provenance, the people whose release alerts to recompute.
        Exit.ReleaseDateHistory.Note(session, resource, current);
        alerts?.Note(session, resource);
        if (creating && caller?.OrganizationFiness is { } finess)
        {
            await session.RunAsync(ct,
                "INSERT INTO resource_origin (type, id, finess) VALUES (@p0, @p1, @p2) ON CONFLICT (type, id) DO NOTHING", resource.TypeName, resource.Id, finess);
        }
        // Who may widen access (a Consent, a Patient's care team) is decided on the rows as stored before this write.
        await ConsentAuthority.CheckSaveAsync(session, resource, current, caller, context, ct);
        await ConsentGrants.RebuildAsync(session, resource, ct);

        // The write's own records are not recorded again; internal writes (no request) have no client to name; what the
        // gateway writes beside the caller's write (release alerts) is not the caller's and carries its own Provenance.
        if (context is null || session.SavingGatewayRecord || resource is AuditEvent or Provenance) return;
        var version = (current?.Version ?? 0) + 1;
        // One Provenance and one audit row per session (a transaction or a single write), written just before it
        // commits, naming every version saved: a 15-resource package writes 16 resources, not 45.
        var pending = Pending(session, context, caller);
        pending.Targets.Add($"{resource.TypeName}/{resource.Id}/_history/{version}");
        pending.Methods.Add(method switch { "PATCH" => "patch", _ when creating => "create", _ => "update" });
        foreach (var patient in PatientReferences.Of(resource)) pending.Patients.Add(patient);
    }

    /// <summary>
    /// A client's deletion is recorded like its other writes: in the Provenance and audit row of the session, in its
    /// transaction, naming the deletion version and the patients of the content it deleted.
    /// </summary>
    public async System.Threading.Tasks.Task BeforeDeleteAsync(WriteSession session, StoredResource current, CancellationToken ct)
    {
        var context = http?.HttpContext;
        if (context is not null) shipped?.RefuseClientDelete(current.Type, current.Id);
        await ConsentAuthority.CheckDeleteAsync(session, current, context is null ? null : Caller.Of(context), context, ct);
        if (context is null || current.Type is "AuditEvent" or "Provenance") return;
        var pending = Pending(session, context, Caller.Of(context));
        pending.Targets.Add($"{current.Type}/{current.Id}/_history/{current.Version + 1}");
        pending.Methods.Add("delete");
        if (current.Json is { } json)
            foreach (var patient in PatientReferences.Of(FhirResponse.ParseStored(json))) pending.Patients.Add(patient);
    }

    private PendingWrite Pending(WriteSession session, HttpContext context, Caller? caller)
    {
        if (!_pending.TryGetValue(session, out var pending))
        {
            pending = new PendingWrite(context, caller);
            _pending.Add(session, pending);
            session.BeforeCommit = RecordAsync;
        }
        return pending;
    }

    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<WriteSession, PendingWrite> _pending = new();

    private sealed record PendingWrite(HttpContext Context, Caller? Caller)
    {
        public List<string> Targets { get; } = [];
        /// <summary>create, update or patch, per target.</summary>
        public List<string> Methods { get; } = [];
        public HashSet<string> Patients { get; } = new(StringComparer.Ordinal);
    }

    private async System.Threading.Tasks.Task RecordAsync(WriteSession session, CancellationToken ct)
    {
        // First the release alerts the write raises or lowers (Exit/ReleaseAlerts.cs): their Flags, each with its own Provenance, in this transaction.
        if (alerts is not null) await alerts.RecomputeNotedAsync(session, ct);
        if (!_pending.TryGetValue(session, out var pending)) return;
        _pending.Remove(session);
        var (context, caller) = (pending.Context, pending.Caller);
        var now = clock.GetUtcNow();
        var allCreated = pending.Methods.All(m => m == "create");
        var activity = allCreated ? "CREATE" : pending.Methods.All(m => m == "delete") ? "DELETE"
            : pending.Methods.All(m => m is "update" or "patch") ? "UPDATE" : null;

        var provenance = SuppliedProvenance(context) ?? AuditRecords.ForWrite(caller, pending.Targets, activity, now);
        provenance.Target = pending.Targets.Select(t => new ResourceReference(t)).ToList();
        provenance.Id = FhirRequest.NewId();
        Exit.ReleaseDateHistory.Annotate(session, provenance);
        await session.SaveGatewayRecordAsync(provenance, ct);

        var note = AuditNote.For(context);
        var entry = new AuditNote { Decision = note.Decision, Purpose = note.Purpose };
        entry.Entities.AddRange(pending.Targets);
        foreach (var patient in pending.Patients) entry.Patients.Add(patient);
        // A single write is audited as what it was (create, update, patch); several (a transaction) as the request.
        var interaction = pending.Methods.Count == 1 ? pending.Methods[0] : AuditTrail.InteractionOf(context);
        var status = pending.Methods.Count != 1 ? 200 : allCreated ? 201 : pending.Methods[0] == "delete" ? 204 : 200;
        var audit = AuditEntry.Of(caller, interaction, status, now, entry, null, AuditEntry.AddressOf(context));
        await AuditTrail.AppendAsync(session.Connection, session.Transaction, audit, ct);
        note.AuditedInTransaction = true;
    }

    /// <summary>The Provenance the client sent in the X-Provenance header (FHIR RESTful API), for single-resource writes.</summary>
    private static Provenance? SuppliedProvenance(HttpContext context)
    {
        var header = context.Request.Headers[ProvenanceHeader].ToString();
        if (header.Length == 0) return null;
        return FhirFormat.Parse(System.Text.Encoding.UTF8.GetBytes(header), WireFormat.Json) as Provenance
            ?? throw FhirException.BadRequest($"{ProvenanceHeader} must hold a Provenance resource in JSON.");
    }
}
