using System.Data.Common;

namespace FhirSortie.Server.Storage;

/// <summary>
/// What a <see cref="WriteSession"/> writes through: a connection and a transaction that commit or roll back as one.
/// PostgreSQL gives each unit its own database transaction (<see cref="TransactionWriteUnit"/>); SQLite may run several
/// units as savepoints of one shared transaction committed once (<see cref="Sqlite.SqliteGroupCommit"/>).
/// Either way <see cref="CommitAsync"/> returns only once the unit's writes are durable.
/// </summary>
public abstract class WriteUnit : IAsyncDisposable
{
    public abstract DbConnection Connection { get; }

    public abstract DbTransaction Transaction { get; }

    /// <summary>
    /// Statements kept prepared on this unit's connection from one unit to the next (SQLite's kept writer), or null when
    /// the connection does not outlive the unit (PostgreSQL: Npgsql prepares the frequent ones itself). Only valid while
    /// the unit is open.
    /// </summary>
    public virtual PreparedStatements? Statements => null;

    public abstract Task CommitAsync(CancellationToken ct);

    /// <summary>Undoes the unit's writes; does nothing once committed or rolled back.</summary>
    public abstract Task RollbackAsync();

    public abstract ValueTask DisposeAsync();
}

/// <summary>A unit that is a whole database transaction on its own connection.</summary>
public sealed class TransactionWriteUnit(DbConnection connection, DbTransaction transaction, IDisposable? writerLock) : WriteUnit
{
    private bool _completed;

    public override DbConnection Connection => connection;

    public override DbTransaction Transaction => transaction;

    public override async Task CommitAsync(CancellationToken ct)
    {
        await transaction.CommitAsync(ct);
        _completed = true;
    }

    public override async Task RollbackAsync()
    {
        if (_completed) return;
        _completed = true;
        try { await transaction.RollbackAsync(); } catch (InvalidOperationException) { /* already rolled back by the provider */ }
    }

    public override async ValueTask DisposeAsync()
    {
        await RollbackAsync();
        await transaction.DisposeAsync();
        await connection.DisposeAsync();
        writerLock?.Dispose();
    }
}
