using System.Data.Common;

namespace FhirSortie.Server.Storage;

/// <summary>
/// What differs between SQLite and PostgreSQL. Everything else (the SQL of reads, writes and searches)
/// is shared: both accept named parameters, RETURNING, window functions and LIMIT/OFFSET.
/// </summary>
public abstract class StorageDialect
{
    public abstract string Name { get; }

    public abstract DbConnection CreateConnection();

    /// <summary>Starts a unit of writes (PostgreSQL: its own transaction; SQLite: one writer at a time, group commit).</summary>
    public abstract Task<WriteUnit> BeginWriteAsync(CancellationToken ct);

    /// <summary>The schema, as numbered steps; step n is applied once, in order.</summary>
    public abstract IReadOnlyList<string> Migrations { get; }

    /// <summary>Held while migrating, so that several gateway nodes starting together migrate once.</summary>
    public abstract Task<IAsyncDisposable> LockForMigrationAsync(DbConnection connection, CancellationToken ct);

    public abstract bool IsUniqueViolation(DbException e);

    /// <summary>True when the error means "try the transaction again" (serialisation failure, deadlock, busy).</summary>
    public abstract bool IsTransient(DbException e);

    /// <summary>
    /// Closes the idle pooled connections of <paramref name="connection"/>'s pool: called when a connection turned
    /// out broken (database restart, failover), since the others in the pool most likely are too.
    /// </summary>
    public virtual void ClearPool(DbConnection connection) { }

    /// <summary>
    /// True when the error means the connection itself is gone (the server restarted, failed over or ended the
    /// session): the request may be tried again on a new connection, and the pool holds more such connections.
    /// </summary>
    public virtual bool IsConnectionLost(DbException e) => false;

    /// <summary>
    /// Serialises the write transactions that name the same <paramref name="key"/> until the calling one ends, for checks
    /// on something no row stands for yet (e.g. "no version of this letter is stored"): PostgreSQL takes a transaction
    /// advisory lock, so the next transaction's statements see what the first one committed. SQLite has nothing to do:
    /// its writers already run one at a time.
    /// </summary>
    public virtual Task LockAsync(DbConnection connection, DbTransaction transaction, string key, CancellationToken ct) => Task.CompletedTask;

    /// <summary>"FOR UPDATE" where row locks exist (PostgreSQL); SQLite serialises writers instead.</summary>
    public abstract string ForUpdate { get; }

    /// <summary>Case-insensitive LIKE operator.</summary>
    public abstract string ILike { get; }
}
