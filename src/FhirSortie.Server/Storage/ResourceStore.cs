using System.Data.Common;
using FhirSortie.Server.Search;

namespace FhirSortie.Server.Storage;

/// <summary>
/// The resource store: current and historical versions of every resource, and their search index rows,
/// on SQLite or PostgreSQL. Reads take a pooled connection; writes go through a <see cref="WriteSession"/>
/// (one database transaction, so a FHIR transaction bundle is all or nothing).
/// </summary>
public sealed class ResourceStore(StorageDialect dialect, ResourceIndexer indexer, TimeProvider clock, Profiles.ProfileEnforcement? profiles = null)
{
    /// <summary>Profile checks run on every save (null in tests that build a bare store).</summary>
    public Profiles.ProfileEnforcement? Profiles { get; } = profiles;

    public StorageDialect Dialect { get; } = dialect;
    public ResourceIndexer Indexer { get; } = indexer;
    public TimeProvider Clock { get; } = clock;

    public async Task<DbConnection> OpenAsync(CancellationToken ct)
    {
        var connection = Dialect.CreateConnection();
        await connection.OpenAsync(ct);
        return connection;
    }

    public async Task<StoredResource?> ReadAsync(string type, string id, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return await ReadAsync(connection, null, type, id, forUpdate: false, ct);
    }

    internal async Task<StoredResource?> ReadAsync(DbConnection connection, DbTransaction? tx, string type, string id, bool forUpdate, CancellationToken ct)
    {
        await using var cmd = Sql.Command(connection, tx,
            $"SELECT {Sql.StoredColumns("r")} FROM resources r WHERE r.type = @t AND r.id = @i{(forUpdate ? Dialect.ForUpdate : "")}")
            .With("@t", type).With("@i", id);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Sql.ReadStored(reader) : null;
    }

    public async Task<StoredResource?> ReadVersionAsync(string type, string id, int version, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var cmd = Sql.Command(connection, null,
            "SELECT v.rkey, v.type, v.id, v.version, v.last_updated, CASE WHEN v.method = 'DELETE' THEN 1 ELSE 0 END, v.json, v.method " +
            "FROM resource_versions v WHERE v.type = @t AND v.id = @i AND v.version = @v")
            .With("@t", type).With("@i", id).With("@v", version);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Sql.ReadStored(reader) : null;
    }

    public async Task<WriteSession> BeginWriteAsync(CancellationToken ct)
    {
        var (connection, tx, writerLock) = await Dialect.BeginWriteAsync(ct);
        return new WriteSession(this, connection, tx, writerLock);
    }

    /// <summary>
    /// Runs a unit of work in a write transaction, retrying on transient conflicts (deadlock, serialisation,
    /// a concurrent insert of the same key) so that callers see a clean outcome instead of a database error.
    /// </summary>
    public async Task<T> WriteAsync<T>(Func<WriteSession, Task<T>> work, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var session = await BeginWriteAsync(ct);
            try
            {
                var result = await work(session);
                await session.CommitAsync(ct);
                return result;
            }
            catch (Exception e) when (attempt < 5 && IsRetryable(e))
            {
                await session.RollbackAsync();
            }
        }
    }

    private bool IsRetryable(Exception e) =>
        e is ConcurrentWriteException || (e is DbException db && (Dialect.IsTransient(db) || Dialect.IsUniqueViolation(db)));
}
