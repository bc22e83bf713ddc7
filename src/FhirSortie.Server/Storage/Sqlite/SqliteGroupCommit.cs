using System.Data.Common;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Storage.Sqlite;

/// <summary>
/// Group commit for SQLite's single writer. With synchronous=FULL every commit writes and fsyncs the WAL, and the
/// writer lock is held meanwhile: measured in-process (bench micro-tx), the COMMIT was about a third of the time a
/// 15-resource transaction held the lock. So writers take turns on one shared transaction instead: each unit of work
/// after the first of a group runs inside its own SAVEPOINT, and when it is done it hands the transaction to the next
/// waiting writer; the last writer of a group (nobody waiting, or <see cref="MaxUnits"/> reached) commits for all. Guarantees kept:
/// <list type="bullet">
/// <item>a unit is atomic: a failed unit rolls back to its savepoint, and the others of the group still commit (a
/// failed first unit, which has no savepoint, ends its group with a ROLLBACK before anybody else wrote in it);</item>
/// <item>a caller's <see cref="WriteUnit.CommitAsync"/> returns only after the shared COMMIT (durable), never before;</item>
/// <item>if the shared transaction is lost (SQLite rolled it back on an I/O error, or COMMIT failed), every unit of
/// the group fails with <see cref="GroupCommitFailedException"/>, which <see cref="ResourceStore.WriteAsync{T}"/> retries;</item>
/// <item>units run one at a time, so a unit sees the writes of the units before it in its group, as it would have
/// seen them committed; a later failure of the group fails it too, so nothing answers on writes that are lost.</item>
/// </list>
/// The writer's connection is kept open from one group to the next (and dropped only after a failure): in WAL mode a
/// connection's page cache stays valid as long as no other connection writes, and the writer is the only one that
/// does, so the index pages a transaction updates are found in memory instead of being read again (bench
/// micro-tx-http: a new pooled connection per group re-read about 1.8 MB per exit package). The statements the write
/// path runs are kept prepared on it too (<see cref="WriteUnit.Statements"/>).
/// With a <paramref name="meter"/>, the turns and commits are measured (Telemetry/): the writer's turn is what bounds
/// SQLite's write throughput, so it is the figure to watch on a node.
/// </summary>
public sealed class SqliteGroupCommit(Func<CancellationToken, Task<SqliteConnection>> open, int maxUnits = SqliteGroupCommit.DefaultMaxUnits, Meter? meter = null) : IAsyncDisposable
{
    public const int DefaultMaxUnits = 32;
    // The savepoint statements run on kept statements (NativeStatements): SqliteTransaction.Save/Release/Rollback(name)
    // made, parsed and disposed a new command each time, and disposing one walks every command the kept writer
    // connection has made (SqliteConnection.RemoveCommand: 2 % of the CPU of exit-package transactions, in the turn).
    private const string Savepoint = "SAVEPOINT unit";
    private const string Release = "RELEASE SAVEPOINT unit";
    private const string RollbackTo = "ROLLBACK TO SAVEPOINT unit";

    private readonly SemaphoreSlim _writer = new(1, 1);
    private int _waiting;
    private Group? _open; // only read or written by the writer holding _writer
    private SqliteConnection? _connection; // the kept writer connection, idem
    private PreparedStatements? _statements; // prepared on _connection, idem
    private KeptCommands? _commands; // Sql.Command's statements compiled on _connection, idem
    private bool _disposed;
    private long _commits;
    private long _units;
    private long _turnStarted; // Stopwatch timestamp of the current turn, idem

    private readonly Histogram<double>? _turnSeconds = meter?.CreateHistogram<double>("fhirsortie.sqlite.write.turn.duration", "s",
        "Time a writer held SQLite's single writer: its unit's statements, plus the shared COMMIT when it was the last of its group.");
    private readonly Histogram<double>? _commitSeconds = meter?.CreateHistogram<double>("fhirsortie.sqlite.commit.duration", "s",
        "Shared COMMIT of a group of write units (WAL write and fsync).");
    private readonly Histogram<int>? _commitUnits = meter?.CreateHistogram<int>("fhirsortie.sqlite.commit.units", "{unit}",
        "Write units (one per request's write) made durable by one shared COMMIT.");

    public int MaxUnits => maxUnits;

    /// <summary>Shared COMMITs done so far (each may carry several units).</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Writers waiting for their turn right now.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Units committed so far.</summary>
    public long Units => Interlocked.Read(ref _units);

    public async Task<WriteUnit> BeginAsync(CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        Interlocked.Increment(ref _waiting);
        try
        {
            // Not cancellable on purpose: a writer hands an open group over only when it sees a waiter, and counts on
            // that waiter taking its turn (and committing if it is the last). A turn is short; a cancelled caller
            // ends its turn right away below.
            await _writer.WaitAsync(CancellationToken.None);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
        _turnStarted = Stopwatch.GetTimestamp();
        try
        {
            ct.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_open is null)
            {
                if (_connection is null)
                {
                    _connection = await open(ct);
                    _statements = new PreparedStatements(_connection);
                    _commands = KeptCommands.Attach(_connection);
                }
                // The first unit of a group runs without a savepoint: the transaction is all its own, so undoing it is
                // a ROLLBACK of the group (see Unit.RollbackAsync). A savepoint makes SQLite copy every page the unit
                // changes into its sub-journal first (malloc + 4 KB copy per page, about 450 pages per exit package).
                _open = Group.Start(_connection);
                return new Unit(this, _open, _statements!, savepoint: false);
            }
            _statements!.Native!.Run(Savepoint, []);
            return new Unit(this, _open, _statements!, savepoint: true);
        }
        catch
        {
            if (_open is { } group) group.Broken |= group.TransactionLost();
            else await DropConnectionAsync(); // it could not even start a transaction: the next writer opens a new one
            await EndTurnAsync();
            throw;
        }
    }

    /// <summary>Called by the writer holding the lock once its unit is released or rolled back: hand over or commit.</summary>
    private async Task EndTurnAsync()
    {
        try
        {
            if (_open is not { } group) return;
            if (!group.Broken && !group.Discarded && group.Members.Count < maxUnits && Volatile.Read(ref _waiting) > 0) return; // the next writer goes on
            _open = null;
            var started = Stopwatch.GetTimestamp();
            var committed = await group.CompleteAsync();
            if (committed > 0)
            {
                Interlocked.Increment(ref _commits);
                Interlocked.Add(ref _units, committed);
                _commitSeconds?.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
                _commitUnits?.Record(committed);
            }
            // A group that failed may have left the connection in any state: the next group starts on a new one.
            if (committed < 0) await DropConnectionAsync();
        }
        finally
        {
            _turnSeconds?.Record(Stopwatch.GetElapsedTime(_turnStarted).TotalSeconds);
            _writer.Release();
        }
    }

    private async Task DropConnectionAsync()
    {
        _statements?.Dispose();
        _statements = null;
        _commands?.Dispose();
        _commands = null;
        if (_connection is { } connection)
        {
            _connection = null;
            await connection.DisposeAsync();
        }
    }

    /// <summary>Closes the kept writer connection once the writer in turn (if any) is done.</summary>
    public async ValueTask DisposeAsync()
    {
        await _writer.WaitAsync(CancellationToken.None);
        try
        {
            _disposed = true;
            if (_open is null) await DropConnectionAsync();
        }
        finally
        {
            _writer.Release();
        }
    }

    private sealed class Group(SqliteConnection connection, SqliteTransaction transaction)
    {
        public SqliteConnection Connection => connection;
        public SqliteTransaction Transaction => transaction;
        public List<TaskCompletionSource> Members { get; } = [];
        public bool Broken { get; set; }

        /// <summary>Its first unit (the one without a savepoint) rolled back: the group ends, rolled back, with no member.</summary>
        public bool Discarded { get; set; }

        public static Group Start(SqliteConnection connection) => new(connection, connection.BeginTransaction(deferred: false));

        /// <summary>True when SQLite has rolled the whole transaction back (it does on some errors, e.g. I/O or full disk).</summary>
        public bool TransactionLost() => connection.Handle is not { } handle || SQLitePCL.raw.sqlite3_get_autocommit(handle) != 0;

        /// <summary>
        /// Commits (or, with no member, rolls back) and tells the members; returns the number committed, or -1 when the
        /// group failed (the members get <see cref="GroupCommitFailedException"/>). The connection stays open.
        /// </summary>
        public async Task<int> CompleteAsync()
        {
            try
            {
                if (Broken || TransactionLost()) throw new GroupCommitFailedException("SQLite rolled the shared write transaction back.", null);
                if (Members.Count == 0)
                {
                    await transaction.RollbackAsync(CancellationToken.None);
                    return 0;
                }
                await transaction.CommitAsync(CancellationToken.None); // never cancelled: other callers wait on it
                foreach (var member in Members) member.TrySetResult();
                return Members.Count;
            }
            catch (Exception e)
            {
                var failure = e as GroupCommitFailedException ?? new GroupCommitFailedException("The shared write transaction failed to commit.", e);
                foreach (var member in Members) member.TrySetException(failure);
                return -1;
            }
            finally
            {
                try { await transaction.DisposeAsync(); }
                catch (Exception e) when (e is SqliteException or InvalidOperationException) { /* the connection is dropped after a failure */ }
            }
        }
    }

    private sealed class Unit(SqliteGroupCommit owner, Group group, PreparedStatements statements, bool savepoint) : WriteUnit
    {
        private bool _done;

        public override DbConnection Connection => group.Connection;

        public override DbTransaction Transaction => group.Transaction;

        public override PreparedStatements? Statements => _done ? null : statements;

        public override async Task CommitAsync(CancellationToken ct)
        {
            if (_done) throw new InvalidOperationException("This unit of work has already completed.");
            try
            {
                if (savepoint) statements.Native!.Run(Release, []);
            }
            catch
            {
                await RollbackAsync();
                throw;
            }
            _done = true;
            var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            group.Members.Add(durable);
            await owner.EndTurnAsync();
            await durable.Task;
        }

        public override async Task RollbackAsync()
        {
            if (_done) return;
            _done = true;
            try
            {
                if (savepoint)
                {
                    // ROLLBACK TO keeps the savepoint open; RELEASE closes it (its changes are already undone).
                    statements.Native!.Run(RollbackTo, []);
                    statements.Native.Run(Release, []);
                }
                else
                {
                    // The first unit: nobody else has written in this transaction; the group ends with a ROLLBACK.
                    group.Discarded = true;
                }
            }
            catch (Exception e) when (e is SqliteException or InvalidOperationException)
            {
                group.Broken = true;
            }
            group.Broken |= group.TransactionLost();
            await owner.EndTurnAsync();
        }

        public override async ValueTask DisposeAsync() => await RollbackAsync();
    }
}

/// <summary>The shared SQLite transaction of a commit group was lost: nothing of the unit was written; run it again.</summary>
public sealed class GroupCommitFailedException(string message, Exception? inner) : Exception(message, inner);
