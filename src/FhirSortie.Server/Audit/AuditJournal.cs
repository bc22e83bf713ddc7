using System.Diagnostics.Metrics;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;

namespace FhirSortie.Server.Audit;

/// <summary>
/// SQLite: the durable queue the audit records of reads (and of refused or failed requests) go through on their way to
/// the audit store, which issue 5 allows ("durable before the response leaves, or written by a durable queue that
/// cannot lose them"). It is a folder of append-only segment files next to the database (or a few: the lanes
/// <see cref="SqliteDialect.AuditJournalPaths"/>, <see cref="AuditJournalLane"/>, <see cref="AuditJournalSegment"/>):
/// <list type="bullet">
/// <item><see cref="AppendAsync"/>: the record goes to an idle lane; the caller that finds it idle writes its record
/// and those queued meanwhile as one write of checksummed frames followed by one fdatasync, and the call returns once
/// that is done: a read is answered only when its record would survive a crash (a frame torn by a crash belongs to a
/// record nobody was told about, and is ignored with whatever follows it).</item>
/// <item><see cref="MoveAsync"/>: the records go on to audit_events and audit_keys a couple of thousand at a time, read
/// from the lanes' segments first, then inserted in one write unit of the store. Records already in the store are
/// skipped (by id), so a move repeated after a crash never doubles a record; a segment is deleted once the store
/// holds all of it.</item>
/// <item><see cref="DrainAsync"/>: whatever was appended before it is in the store when it returns: every reader of
/// AuditEvents (read, search, history, $access-report, batch GET entries) calls it first, so an auditor sees the
/// record of every request that was answered before the auditor asked.</item>
/// </list>
/// Why not straight into the audit store: a read's record then committed into the resources' database, and in WAL mode
/// every commit there empties every reader connection's page cache, so the next reads read their pages again
/// (pcache1TruncateUnsafe 6% of CPU, 11 preads per read), besides the audit_events and audit_keys b-tree inserts on the
/// request path. Why not a SQLite file (as until 2026-12): see <see cref="AuditJournalLane"/>; what an older build left
/// in one is moved once (<see cref="AuditJournalLegacy"/>). Figures: bench/results/2026-11-23-audit-journal.md,
/// bench/results/2026-12-06-audit-log.md.
/// PostgreSQL has no journal (<see cref="Enabled"/> false): its records are grouped straight into the shared database,
/// which every node reads; a node-local file would hide them from the other nodes.
/// One gateway process per SQLite data directory (as for the database itself): what was appended is known in memory.
/// </summary>
public sealed class AuditJournal : IDisposable
{
    /// <summary>Rows per lane per move: one write unit of at most ~2,000 records (the writer is held ~50-100 ms).</summary>
    public const int MoveRowsPerLane = 2000;

    private readonly SqliteDialect? _dialect;
    private readonly AuditJournalLane[] _lanes = [];
    private readonly string[] _legacyPaths = [];
    private bool _legacyPending;
    private readonly SemaphoreSlim _moving = new(1, 1);
    private readonly SemaphoreSlim _backlog = new(0, 1);
    private readonly Lock _starting = new();
    private bool _started;
    private int _next;

    public AuditJournal(StorageDialect dialect, Meter? meter = null) : this(dialect, AuditJournalSegment.DefaultBytes, meter)
    {
    }

    /// <summary>Segments of <paramref name="segmentBytes"/> (tests: small ones, to see segments filled, deleted and reused).</summary>
    internal AuditJournal(StorageDialect dialect, int segmentBytes, Meter? meter = null)
    {
        if (dialect is not SqliteDialect sqlite) return;
        _dialect = sqlite;
        var written = AuditTrail.MeasureBatches(meter, "journal");
        _lanes = sqlite.AuditJournalPaths.Select(path => new AuditJournalLane(path, segmentBytes, written)).ToArray();
        _legacyPaths = sqlite.LegacyAuditJournalPaths.ToArray();
        // A backlog that keeps growing means the mover does not keep up: AuditEvent searches lag and the journal grows on disk.
        meter?.CreateObservableGauge("fhirsortie.audit.journal.backlog", () => Backlog, "{record}",
            "Audit records in the journal not yet moved to the audit store.");
    }

    /// <summary>False on PostgreSQL: records go straight to the audit store.</summary>
    public bool Enabled => _dialect is not null;

    /// <summary>Records appended and not yet moved to the store, as this process knows them.</summary>
    public long Backlog => _lanes.Sum(l => Math.Max(0, l.Appended - l.Moved));

    /// <summary>Transactions the lanes committed so far (fewer than the records when requests run concurrently).</summary>
    public long Batches => _lanes.Sum(l => l.Batches);

    /// <summary>Creates the lanes' files if needed, learns what they hold (a crash may have left records) and starts them.</summary>
    public void Start()
    {
        if (!Enabled || Volatile.Read(ref _started)) return;
        lock (_starting)
        {
            if (_started) return;
            foreach (var lane in _lanes) lane.Start();
            _legacyPending = _legacyPaths.Any(File.Exists);
            Volatile.Write(ref _started, true);
        }
        if (Backlog > 0 || Volatile.Read(ref _legacyPending)) Signal();
    }

    /// <summary>Appends <paramref name="entry"/> and returns once it is durable; throws when it could not be written.</summary>
    public Task AppendAsync(AuditEntry entry)
    {
        if (!Enabled) throw new InvalidOperationException("No audit journal on this storage.");
        Start();
        var lane = PickLane();
        var task = lane.AppendAsync(entry);
        if (lane.Appended - lane.Moved >= MoveRowsPerLane) Signal();
        return task;
    }

    /// <summary>An idle lane (its record starts committing at once), else the one with the fewest records queued.</summary>
    private AuditJournalLane PickLane()
    {
        var start = (int)((uint)Interlocked.Increment(ref _next) % (uint)_lanes.Length);
        AuditJournalLane? least = null;
        for (var i = 0; i < _lanes.Length; i++)
        {
            var lane = _lanes[(start + i) % _lanes.Length];
            if (!lane.Busy && lane.Queued == 0) return lane;
            if (least is null || lane.Queued < least.Queued) least = lane;
        }
        return least!;
    }

    /// <summary>
    /// Moves up to <see cref="MoveRowsPerLane"/> rows of each lane into the audit store in one write unit; returns the
    /// rows found to move, and whether a lane had more than that.
    /// </summary>
    public async Task<(int Rows, bool More)> MoveAsync(CancellationToken ct)
    {
        if (!Enabled) return (0, false);
        Start();
        await _moving.WaitAsync(ct);
        try
        {
            // What an older build left in its SQLite journal files goes first, once.
            var legacy = 0;
            foreach (var path in _legacyPaths.Where(File.Exists)) legacy += await AuditJournalLegacy.MoveAsync(_dialect!, path, ct);
            Volatile.Write(ref _legacyPending, false);
            // Read from the lanes' segment files as the rows are inserted: nothing here holds a lane's writer back, and a
            // move's rows are not held in memory all at once.
            var cursors = new List<(AuditJournalLane Lane, AuditJournalLane.RowCursor Rows)>();
            try
            {
                foreach (var lane in _lanes)
                {
                    var rows = lane.ReadMoves(MoveRowsPerLane);
                    if (rows.Read()) cursors.Add((lane, rows));
                    else rows.Dispose();
                }
                if (cursors.Count == 0) return (legacy, false);
                var last = new long[cursors.Count];
                await using (var unit = await _dialect!.BeginWriteAsync(ct))
                {
                    using (var inserts = new AuditJournalInserts(unit))
                        for (var i = 0; i < cursors.Count; i++)
                        {
                            var rows = cursors[i].Rows;
                            do
                            {
                                last[i] = rows.Seq;
                                inserts.Insert(rows.Payload);
                            }
                            while (rows.Read());
                        }
                    await unit.CommitAsync(CancellationToken.None);
                }
                for (var i = 0; i < cursors.Count; i++) cursors[i].Lane.MovedUpTo(cursors[i].Rows, last[i]);
                return (legacy + cursors.Sum(c => c.Rows.Count), cursors.Any(c => c.Rows.Count == MoveRowsPerLane));
            }
            finally
            {
                foreach (var (_, rows) in cursors) rows.Dispose();
            }
        }
        finally
        {
            _moving.Release();
        }
    }

    /// <summary>Returns once every record appended before the call is in the audit store. Does nothing on PostgreSQL.</summary>
    public async Task DrainAsync(CancellationToken ct)
    {
        if (!Enabled) return;
        Start();
        var targets = _lanes.Select(l => l.Appended).ToArray();
        if (Volatile.Read(ref _legacyPending)) await MoveAsync(ct);
        for (var empty = 0; _lanes.Where((lane, i) => lane.Moved < targets[i]).Any();)
        {
            if ((await MoveAsync(ct)).Rows > 0) continue;
            // The records are acknowledged, so on disk: give up (the background mover goes on) only if they are not
            // found at all, e.g. a segment was deleted by hand.
            if (++empty == 50) throw new InvalidOperationException("Audit records appended to the journal could not be found to move.");
            await System.Threading.Tasks.Task.Delay(Math.Min(empty, 20), ct);
        }
    }

    /// <summary>Waits until a move is due: a backlog of a full move, or <paramref name="interval"/> elapsed.</summary>
    public async Task WaitForBacklogAsync(TimeSpan interval, CancellationToken ct) => await _backlog.WaitAsync(interval, ct);

    private void Signal()
    {
        try
        {
            if (_backlog.CurrentCount == 0) _backlog.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled.
        }
    }

    /// <summary>Stops the lanes once what they were given is written.</summary>
    public void Dispose()
    {
        foreach (var lane in _lanes) lane.Dispose();
    }
}
