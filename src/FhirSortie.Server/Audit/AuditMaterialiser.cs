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
public sealed class AuditMaterialiser(ResourceStore store, StorageDialect dialect, IConfiguration configuration, ILogger<AuditMaterialiser> logger)
    : BackgroundService
{
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

    /// <summary>A row was queued: wake up early once a batch's worth is waiting.</summary>
    public void Notify()
    {
        if (Interlocked.Increment(ref _queued) >= BatchSize && _signal.CurrentCount == 0)
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
                foreach (var (_, entry) in rows)
                    await session.SaveGatewayRecordAsync(AuditRecords.Interaction(AuditEntry.FromJson(entry)), ct);
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

    private async Task<bool> AnyQueuedAsync(CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        await using var cmd = Sql.Command(connection, null, "SELECT 1 FROM audit_log LIMIT 1");
        return await cmd.ExecuteScalarAsync(ct) is not null;
    }
}
