using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;

namespace FhirSortie.Server.Audit;

/// <summary>
/// Turns audit_log rows into AuditEvent resources in batches: one write unit per batch stores the AuditEvents and
/// deletes their rows, so a row is either still queued or materialised, never both, never lost (a process killed
/// mid-batch rolls back; the rows wait for the next run, on this node or another). Several nodes share the queue:
/// on PostgreSQL each batch locks its rows with FOR UPDATE SKIP LOCKED, so two nodes never take the same row;
/// SQLite has one writer anyway. The AuditEvent id is fixed in the row (unique), so no row can give two AuditEvents.
/// Runs on a short timer and as soon as a batch's worth of rows is queued; flushes on start (rows a previous
/// process left) and on shutdown.
/// </summary>
public sealed class AuditMaterialiser(ResourceStore store, StorageDialect dialect, IConfiguration configuration, ILogger<AuditMaterialiser> logger,
    Search.SearchParameters? parameters = null, Search.Compartments? compartments = null)
    : BackgroundService
{
    /// <summary>
    /// Build each AuditEvent's JSON and index rows straight from its row (<see cref="AuditEventRows"/>: about half the
    /// CPU of the generic save, bench/results/2026-11-23-audit-fast.md) rather than through the generic save. Only while the generic save would
    /// add nothing to it: no labelling rule and no required profile for AuditEvent, and no AuditEvent search parameter
    /// the direct build does not know (a custom SearchParameter): otherwise the generic path, as before.
    /// </summary>
    private readonly bool _direct = parameters is not null && compartments is not null && AuditEventRows.Covers(parameters)
        && !(store.WriteHook?.Labeller.Rules.Any(r => r.ResourceTypes.Contains("AuditEvent")) ?? false)
        && (store.Profiles?.ProfilesFor(new Hl7.Fhir.Model.AuditEvent()).Count ?? 0) == 0;

    /// <summary>True when this node materialises through <see cref="AuditEventRows"/> (see <see cref="_direct"/>).</summary>
    public bool Direct => _direct;

    /// <summary>
    /// Rows per batch. On SQLite a batch holds the single writer while it stores its AuditEvents, and reads wait for it
    /// to commit their own audit rows: 200 gave reads p90 111 ms / p99 170 ms under wrk, 50 gave 33 / 63 ms at the
    /// same throughput (bench/results/2026-11-23-audit.md).
    /// </summary>
    public const int BatchSize = 50;

    // Never disposed: the host may stop (and flush) this service while the container is being disposed, and a
    // SemaphoreSlim whose wait handle is never asked for holds nothing to release.
    private readonly SemaphoreSlim _signal = new(0, 1);
    /// <summary>One batch at a time per node: <see cref="FlushAsync"/> must not return while the timer's batch holds rows.</summary>
    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly TimeSpan _interval = TimeSpan.FromMilliseconds(configuration.GetValue("FhirSortie:Audit:FlushMilliseconds", 250));
    private int _queued;

    /// <summary>False on a node that must not materialise (e.g. tests of the queue itself); FlushAsync still works.</summary>
    private readonly bool _enabled = configuration.GetValue("FhirSortie:Audit:Materialise", true);

    /// <summary>Rows were queued: wake up early once a batch's worth is waiting.</summary>
    public void Notify(int rows = 1)
    {
        if (Interlocked.Add(ref _queued, rows) >= BatchSize && _signal.CurrentCount == 0)
        {
            try { _signal.Release(); } catch (SemaphoreFullException) { /* already signalled */ }
        }
    }

    /// <summary>Materialises every row queued so far (tests call it before searching AuditEvents; shutdown calls it).</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        while (await MaterialiseBatchAsync(ct) > 0) { }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_enabled) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await FlushAsync(stoppingToken);
                await _signal.WaitAsync(_interval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // The rows stay queued; no patient data in the message (the exception is a database or validation error).
                logger.LogError(e, "Audit materialisation failed; retrying in 1 s");
                try { await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken); } catch (OperationCanceledException) { break; }
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (!_enabled) return;
        try { await FlushAsync(cancellationToken); }
        catch (Exception e) when (e is OperationCanceledException or System.Data.Common.DbException)
        {
            // Not lost: the rows stay in audit_log for the next start.
            logger.LogWarning(e, "Audit flush on shutdown incomplete; the remaining rows are materialised on next start");
        }
    }

    /// <returns>The number of rows materialised.</returns>
    private async Task<int> MaterialiseBatchAsync(CancellationToken ct)
    {
        await _turn.WaitAsync(ct);
        try
        {
            Interlocked.Exchange(ref _queued, 0);
            if (!await AnyQueuedAsync(ct)) return 0; // no write unit (on SQLite: no commit, no fsync) when idle
            return await store.WriteAsync(async session =>
            {
                var rows = new List<(long Seq, string Entry)>();
                var skipLocked = dialect is PostgresDialect ? " FOR UPDATE SKIP LOCKED" : "";
                await using (var select = Sql.Command(session.Connection, session.Transaction,
                    $"SELECT seq, entry FROM audit_log ORDER BY seq LIMIT {BatchSize}{skipLocked}"))
                await using (var reader = await select.ExecuteReaderAsync(ct))
                {
                    while (await reader.ReadAsync(ct)) rows.Add((reader.GetInt64(0), reader.GetString(1)));
                }
                if (rows.Count == 0) return 0;
                if (_direct)
                {
                    await StoreDirectAsync(session, rows.Select(r => AuditEntry.FromJson(r.Entry)).ToList(), ct);
                }
                else
                {
                    foreach (var (_, entry) in rows)
                        await session.SaveGatewayRecordAsync(AuditRecords.Interaction(AuditEntry.FromJson(entry)), ct);
                }
                var keys = string.Join(",", rows.Select(r => r.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                await using var delete = Sql.Command(session.Connection, session.Transaction, $"DELETE FROM audit_log WHERE seq IN ({keys})");
                await delete.ExecuteNonQueryAsync(ct);
                return rows.Count;
            }, ct);
        }
        finally
        {
            _turn.Release();
        }
    }

    /// <summary>
    /// What <see cref="WriteSession.SaveGatewayRecordAsync"/> writes for each AuditEvent (version 1 in resources and
    /// resource_versions, its index rows), with one multi-row INSERT per table for the batch instead of one per event.
    /// </summary>
    private async Task StoreDirectAsync(WriteSession session, List<AuditEntry> entries, CancellationToken ct)
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(store.Clock.GetUtcNow().ToUnixTimeMilliseconds());
        var json = entries.Select(e => AuditEventRows.Json(e, now)).ToList();
        var keys = new Dictionary<string, long>(entries.Count, StringComparer.Ordinal);
        await using (var insert = Sql.Command(session.Connection, session.Transaction, ""))
        {
            var sql = new System.Text.StringBuilder("INSERT INTO resources (type, id, version, last_updated, deleted, json) VALUES ");
            insert.With("@u", now.ToUnixTimeMilliseconds());
            for (var i = 0; i < entries.Count; i++)
            {
                sql.Append(i == 0 ? "" : ", ").Append("('AuditEvent', @i").Append(i).Append(", 1, @u, 0, @j").Append(i).Append(')');
                insert.With("@i" + i, entries[i].Id).With("@j" + i, json[i]);
            }
            // RETURNING the id too: the order of RETURNING rows is not promised.
            insert.CommandText = sql.Append(" RETURNING rkey, id").ToString();
            await using var reader = await insert.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) keys[reader.GetString(1)] = reader.GetInt64(0);
        }
        await using (var versions = Sql.Command(session.Connection, session.Transaction, ""))
        {
            var sql = new System.Text.StringBuilder("INSERT INTO resource_versions (rkey, type, id, version, last_updated, method, json) VALUES ");
            versions.With("@u", now.ToUnixTimeMilliseconds());
            for (var i = 0; i < entries.Count; i++)
            {
                sql.Append(i == 0 ? "" : ", ").Append("(@k").Append(i).Append(", 'AuditEvent', @i").Append(i).Append(", 1, @u, 'POST', @j").Append(i).Append(')');
                versions.With("@k" + i, keys[entries[i].Id]).With("@i" + i, entries[i].Id).With("@j" + i, json[i]);
            }
            versions.CommandText = sql.ToString();
            await versions.ExecuteNonQueryAsync(ct);
        }
        // Index rows through IndexWriter, one command per AuditEvent: one multi-row INSERT per table for the whole batch
        // measured no better (bench micro-audit: 384 against 369 µs per AuditEvent, within the noise), the B-tree
        // inserts are the cost, not the statements; and IndexWriter stays the one place that knows the index tables.
        foreach (var entry in entries)
            await IndexWriter.ReplaceAsync(session.Connection, session.Transaction, keys[entry.Id], "AuditEvent", AuditEventRows.Index(entry, compartments!), existed: false, ct);
    }

    private async Task<bool> AnyQueuedAsync(CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        await using var cmd = Sql.Command(connection, null, "SELECT 1 FROM audit_log LIMIT 1");
        return await cmd.ExecuteScalarAsync(ct) is not null;
    }
}
