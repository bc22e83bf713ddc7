using System.Diagnostics.Metrics;
using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Audit;

/// <summary>
/// Records one audit record per FHIR interaction, permitted or denied, in the audit store (<see cref="AuditStore"/>),
/// which serves it as an AuditEvent from then on (read, search: AuditEvent?patient=...).
/// Reads are recorded and committed before the response's first byte leaves (<see cref="AuditMiddleware"/>); a
/// successful write already committed its row in its own transaction (<see cref="WriteHook"/>), so only its failures
/// are recorded here.
/// <para>
/// Group commit of the rows (<see cref="CommitAsync"/>, <see cref="GroupedWrites{T}"/>): concurrent requests queue their rows and one of them writes
/// every row queued so far in one transaction (one COMMIT, one fsync), while the others await that commit. Rows that
/// arrive meanwhile make the next batch: no timer, a lone request pays one commit as before. Nothing is acknowledged
/// before it is durable, so the in-memory queue is safe to lose (a crash loses only requests that have not been
/// answered). Where the batch goes: on PostgreSQL, one multi-row INSERT into the audit store (one transaction per row
/// cost 567 µs of gateway CPU per row, grouped 235; bench/results/2026-11-23-audit-fast.md); on SQLite, the audit
/// journal (<see cref="AuditJournal"/>), a separate file whose rows move to the store in large batches.
/// </para>
/// </summary>
public sealed class AuditTrail(StorageDialect dialect, TimeProvider clock, AuditJournal journal, Meter? meter = null)
{
    public AuditTrail(StorageDialect dialect, TimeProvider clock) : this(dialect, clock, new AuditJournal(dialect))
    {
    }

    /// <summary>
    /// Attempts of a batch whose connection died with its session (restart, failover): each clears the pool first. A
    /// pool can hand out more than one dead connection around the clear (connections in use then come back dead), and a
    /// lost record fails its request: a few attempts more cost nothing (seen once in 10 runs with 3 under CPU load).
    /// </summary>
    private const int MaxAttemptsAfterLostConnection = 6;

    /// <summary>Records per INSERT at most (6 parameters each plus 3 per search key; parameters are bound by a linear look-up on SQLite).</summary>
    public const int MaxBatch = 64;

    // PostgreSQL's records, grouped into multi-row INSERTs (SQLite's go to the journal's lanes, grouped the same way).
    private readonly GroupedWrites<AuditEntry> _writes = new(batch => WriteAsync(dialect, batch), MaxBatch, MeasureBatches(meter, "database"));

    /// <summary>
    /// Records per durable batch (meter "FhirSortie"), by where they went: "journal" (SQLite's lanes) or "database"
    /// (PostgreSQL). Near 1 under load means requests did not share commits: the fsync per read is then the cost to look at.
    /// </summary>
    internal static Action<int>? MeasureBatches(Meter? meter, string store)
    {
        if (meter is null) return null;
        var sizes = meter.CreateHistogram<int>("fhirsortie.audit.batch.size", "{record}", "Audit records made durable by one commit.");
        var tag = new KeyValuePair<string, object?>("fhirsortie.audit.store", store);
        return count => sizes.Record(count, tag);
    }

    /// <summary>Transactions (commits) used for rows so far: fewer than the rows when requests run concurrently.</summary>
    public long Batches => journal.Enabled ? journal.Batches : _writes.Batches;

    public async System.Threading.Tasks.Task RecordAsync(HttpContext context)
    {
        var note = AuditNote.For(context);
        var status = context.Response.StatusCode;
        if (status < 400 && note.AuditedInTransaction && note.FailedEntries.Count == 0) return;
        var interaction = InteractionOf(context);
        if (note.Entities.Count == 0) AddRouteEntities(context, note);
        if (status is 403 or 404 && note.Patients.Count == 0) await AddPatientsOfRefusedResourceAsync(context, note);
        var query = note.Query ?? (interaction.StartsWith("search", StringComparison.Ordinal) ? context.Request.QueryString.Value?.TrimStart('?') : null);
        var caller = Caller.Of(context);
        var now = clock.GetUtcNow();
        var address = AuditEntry.AddressOf(context);
        var entries = new List<AuditEntry>();
        if (status >= 400 || !note.AuditedInTransaction) entries.Add(AuditEntry.Of(caller, interaction, status, now, note, query, address));
        // Each failed batch/transaction entry is its own record: what was attempted, on what, and why it failed.
        foreach (var failure in note.FailedEntries)
        {
            var entryNote = new AuditNote { Decision = failure.Decision, Purpose = note.Purpose };
            entryNote.Entities.Add(failure.Target);
            entryNote.Patients.UnionWith(failure.Patients);
            entries.Add(AuditEntry.Of(caller, failure.Interaction, failure.Status, now, entryNote, failure.Query, address));
        }
        // Each row through CommitAsync (grouped on PostgreSQL, its own unit joining the group commit on SQLite).
        await System.Threading.Tasks.Task.WhenAll(entries.Select(CommitAsync));
    }

    /// <summary>
    /// Adds <paramref name="entry"/> to the audit store (or its journal) and returns once it is durable (it throws when the
    /// row could not be written). Not cancellable: a client hanging up must not cancel the record of what it asked for.
    /// </summary>
    public System.Threading.Tasks.Task CommitAsync(AuditEntry entry) =>
        journal.Enabled ? journal.AppendAsync(entry) : _writes.WriteAsync(entry);

    /// <summary>One batch in one transaction; throws when it could not be written after the retries (nothing of it was).</summary>
    private static async System.Threading.Tasks.Task WriteAsync(StorageDialect dialect, List<AuditEntry> batch)
    {
        var lostConnection = false;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using (var unit = await dialect.BeginWriteAsync(CancellationToken.None))
                {
                    await AppendAsync(unit.Connection, unit.Transaction, batch, CancellationToken.None);
                    await unit.CommitAsync(CancellationToken.None);
                }
                return;
            }
            catch (System.Data.Common.DbException e) when (lostConnection && dialect.IsUniqueViolation(e))
            {
                // The batch is one transaction: its ids already stored means the attempt whose connection was lost had
                // committed before the connection went. Durable, as asked.
                return;
            }
            catch (System.Data.Common.DbException e) when (attempt < MaxAttemptsAfterLostConnection && dialect.IsConnectionLost(e))
            {
                // A pooled connection died with the database session (restart, failover): the others most likely did
                // too. Drop them and write the batch again on a new one.
                lostConnection = true;
                await using (var any = dialect.CreateConnection()) dialect.ClearPool(any);
            }
            catch (Exception e) when (attempt < 3 && (e is Storage.Sqlite.GroupCommitFailedException || (e is System.Data.Common.DbException db && dialect.IsTransient(db))))
            {
                // The shared SQLite transaction was lost, or PostgreSQL asks for a retry: nothing was written, try again.
            }
        }
    }

    /// <summary>Adds <paramref name="entries"/> to the audit store in the given transaction, one INSERT per table.</summary>
    private static System.Threading.Tasks.Task AppendAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, List<AuditEntry> entries, CancellationToken ct) =>
        AuditStore.AppendAsync(connection, transaction, entries, ct);

    /// <summary>Adds <paramref name="entry"/> to the audit store in the given transaction (a write's own AuditEvent, in its transaction).</summary>
    public static System.Threading.Tasks.Task AppendAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, AuditEntry entry, CancellationToken ct) =>
        AuditStore.AppendAsync(connection, transaction, [entry], ct);

    /// <summary>The restful-interaction code of the request, from its method and route template.</summary>
    public static string InteractionOf(HttpContext context)
    {
        // Normalised to "/fhir..." without a trailing slash: the group's "" route (system search, transaction) comes out as "/fhir/".
        var template = "/" + ((context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "").Trim('/');
        var tail = template.StartsWith(FhirBase.Path, StringComparison.Ordinal) ? template[FhirBase.Path.Length..] : template;
        // A HEAD is the GET it mirrors, without the body.
        var method = HttpMethods.IsHead(context.Request.Method) ? HttpMethods.Get : context.Request.Method;
        if (tail.Contains('$', StringComparison.Ordinal)) return "operation";
        return (method, tail) switch
        {
            ("GET", "/metadata") => "capabilities",
            ("GET", "") or ("POST", "/_search") => "search-system",
            ("POST", "") => "transaction",
            (_, "/_history" or "/{type}/_history" or "/{type}/{id}/_history") => "history",
            ("GET", "/{type}") or ("POST", "/{type}/_search") => "search-type",
            ("GET", "/{compartment}/{id}/{type}") => "search-type",
            ("POST", "/{type}") => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", _) => "delete",
            ("GET", "/{type}/{id}") => "read",
            ("GET", "/{type}/{id}/_history/{vid}") => "vread",
            _ => "operation",
        };
    }

    /// <summary>
    /// A request refused before the resource was loaded (e.g. a justice client's <c>GET Condition/x</c>, refused by type)
    /// still concerns that resource's patients: they are looked up here, on refusals only, so that the patient's access
    /// report ("who saw my data", which lists attempts too) shows the attempt.
    /// </summary>
    private async System.Threading.Tasks.Task AddPatientsOfRefusedResourceAsync(HttpContext context, AuditNote note)
    {
        var values = context.Request.RouteValues;
        if (values["type"] is not string type || values["id"] is not string id || values["compartment"] is not null) return;
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(CancellationToken.None);
        await using var select = Sql.Command(connection, null,
            "SELECT rc.compartment_id FROM resources r JOIN resource_compartment rc ON rc.rkey = r.rkey " +
            // "|| ''": keeps SQLite (no statistics) on the rkey-led index instead of walking every Patient compartment row.
            "WHERE r.type = @t AND r.id = @i AND rc.compartment_type || '' = 'Patient'")
            .With("@t", type).With("@i", id);
        await using var reader = await select.ExecuteReaderAsync(CancellationToken.None);
        while (await reader.ReadAsync(CancellationToken.None)) note.Patients.Add(reader.GetString(0));
    }

    private static void AddRouteEntities(HttpContext context, AuditNote note)
    {
        var values = context.Request.RouteValues;
        var type = values["type"] as string;
        var id = values["id"] as string;
        if (values["compartment"] is "Patient" && id is not null)
        {
            note.Patients.Add(id);
            return;
        }
        if (type is null) return;
        if (id is not null)
        {
            note.Entities.Add(values["vid"] is string vid ? $"{type}/{id}/_history/{vid}" : $"{type}/{id}");
            if (type == "Patient") note.Patients.Add(id);
        }
        if (context.Request.Query["patient"].ToString() is { Length: > 0 } patient) note.Patients.Add(patient.Replace("Patient/", "", StringComparison.Ordinal));
        if (context.Request.Query["subject"].ToString() is { Length: > 0 } subject && subject.StartsWith("Patient/", StringComparison.Ordinal))
            note.Patients.Add(subject["Patient/".Length..]);
    }
}

/// <summary>
/// Records the AuditEvent of every request under /fhir once its status is final and before the response starts,
/// and refuses patches and deletes of AuditEvents (append-only). Register after authentication (it reads the Caller).
/// </summary>
public sealed class AuditMiddleware(RequestDelegate next)
{
    public async System.Threading.Tasks.Task InvokeAsync(HttpContext context, AuditTrail trail, AuditJournal journal)
    {
        if (!context.Request.Path.StartsWithSegments(FhirBase.Path, out var rest))
        {
            await next(context);
            return;
        }
        var note = AuditNote.For(context);
        if (PurposeOfUse.From(context.Request) is { } purpose) note.Purpose = purpose;
        context.Response.OnStarting(() => trail.RecordAsync(context));
        // Only the gateway writes audit records (the audit store): no create, update, patch or delete by a client. Entries
        // of a transaction or batch are refused in the write itself (WriteHook).
        var onAuditEvents = rest.StartsWithSegments("/AuditEvent", out var after);
        if (onAuditEvents
            && (context.Request.Method is "PUT" or "PATCH" or "DELETE" || (context.Request.Method == "POST" && after.Value is null or "" or "/")))
        {
            note.Decision = Consents.AccessDecision.Deny("AuditEvents are append-only");
            await FhirResponse.WriteErrorAsync(context, HttpStatusCode.MethodNotAllowed,
                Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.NotSupported,
                    "AuditEvents are the gateway's append-only audit records: clients cannot create, update, patch or delete them."));
            return;
        }
        // Readers of AuditEvents (read, search, history, the access report) see the record of every request answered
        // before they asked: on SQLite the journal's rows are moved into the audit store first.
        if (context.Request.Method is "GET" or "HEAD" or "POST"
            && (onAuditEvents || rest.Value?.EndsWith("/$access-report", StringComparison.Ordinal) == true))
            await journal.DrainAsync(context.RequestAborted);
        await next(context);
    }
}
