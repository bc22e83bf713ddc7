using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Storage.Sqlite;

/// <summary>
/// Group commit for SQLite's single writer. With synchronous=FULL every commit writes and fsyncs the WAL, and the
/// writer lock is held meanwhile: measured in-process (bench micro-tx), the COMMIT was about a third of the time a
/// 15-resource transaction held the lock. So writers take turns on one shared transaction instead: each unit of work
/// runs inside its own SAVEPOINT, and when it is done it hands the transaction to the next waiting writer; the last
/// writer of a group (nobody waiting, or <see cref="MaxUnits"/> reached) commits for all. Guarantees kept:
/// <list type="bullet">
/// <item>a unit is atomic: a failed unit rolls back to its savepoint, and the others of the group still commit;</item>
/// <item>a caller's <see cref="WriteUnit.CommitAsync"/> returns only after the shared COMMIT (durable), never before;</item>
/// <item>if the shared transaction is lost (SQLite rolled it back on an I/O error, or COMMIT failed), every unit of
/// the group fails with <see cref="GroupCommitFailedException"/>, which <see cref="ResourceStore.WriteAsync{T}"/> retries;</item>
/// <item>units run one at a time, so a unit sees the writes of the units before it in its group, as it would have
/// seen them committed; a later failure of the group fails it too, so nothing answers on writes that are lost.</item>
/// </list>
/// </summary>
public sealed class SqliteGroupCommit(Func<CancellationToken, Task<SqliteConnection>> open, int maxUnits = SqliteGroupCommit.DefaultMaxUnits)
{
    public const int DefaultMaxUnits = 32;
    private const string Savepoint = "unit";

    private readonly SemaphoreSlim _writer = new(1, 1);
    private int _waiting;
    private Group? _open; // only read or written by the writer holding _writer
    private long _commits;
    private long _units;

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
        try
        {
            ct.ThrowIfCancellationRequested();
            var group = _open ??= await Group.StartAsync(open, ct);
            await group.Transaction.SaveAsync(Savepoint, CancellationToken.None);
            return new Unit(this, group);
        }
        catch
        {
            if (_open is { } group) group.Broken |= group.TransactionLost();
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
            if (!group.Broken && group.Members.Count < maxUnits && Volatile.Read(ref _waiting) > 0) return; // the next writer goes on
            _open = null;
            var committed = await group.CompleteAsync();
            if (committed > 0)
            {
                Interlocked.Increment(ref _commits);
                Interlocked.Add(ref _units, committed);
            }
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

        public static async Task<Group> StartAsync(Func<CancellationToken, Task<SqliteConnection>> open, CancellationToken ct)
        {
            var connection = await open(ct);
            try
            {
                return new Group(connection, connection.BeginTransaction(deferred: false));
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }

        /// <summary>True when SQLite has rolled the whole transaction back (it does on some errors, e.g. I/O or full disk).</summary>
        public bool TransactionLost() => connection.Handle is not { } handle || SQLitePCL.raw.sqlite3_get_autocommit(handle) != 0;

        /// <summary>Commits (or, with no member, rolls back) and tells the members; returns the number committed.</summary>
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
                return 0;
            }
            finally
            {
                await transaction.DisposeAsync();
                await connection.DisposeAsync();
            }
        }
    }

    private sealed class Unit(SqliteGroupCommit owner, Group group) : WriteUnit
    {
        private bool _done;

        public override DbConnection Connection => group.Connection;

        public override DbTransaction Transaction => group.Transaction;

        public override async Task CommitAsync(CancellationToken ct)
        {
            if (_done) throw new InvalidOperationException("This unit of work has already completed.");
            try
            {
                await group.Transaction.ReleaseAsync(Savepoint, CancellationToken.None);
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
                // ROLLBACK TO keeps the savepoint open; RELEASE closes it (its changes are already undone).
                await group.Transaction.RollbackAsync(Savepoint, CancellationToken.None);
                await group.Transaction.ReleaseAsync(Savepoint, CancellationToken.None);
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
