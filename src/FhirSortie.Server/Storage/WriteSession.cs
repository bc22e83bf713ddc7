using System.Data.Common;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Storage;

/// <summary>
/// One database transaction of writes. Every version written here, with its index rows, commits or rolls back
/// together. Callers read the current version with <see cref="ReadForUpdateAsync"/> (a row lock on PostgreSQL;
/// SQLite serialises writers) before deciding, so no concurrent writer can slip in between check and write.
/// On SQLite the session may be one savepoint of a transaction shared with other sessions (group commit):
/// it still commits or rolls back as a whole, and <see cref="CommitAsync"/> returns once it is durable.
/// </summary>
public sealed class WriteSession(ResourceStore store, WriteUnit unit) : IAsyncDisposable
{
    private readonly DbConnection connection = unit.Connection;
    private readonly DbTransaction transaction = unit.Transaction;

    // SQLite: the index INSERTs prepared once for the whole session (IndexWriter.PreparedRows).
    private PreparedRows? _indexRows;

    private PreparedRows? IndexRows => store.Dialect is Sqlite.SqliteDialect ? _indexRows ??= new PreparedRows(connection, transaction) : null;

    public DbConnection Connection => connection;
    public DbTransaction Transaction => transaction;
    public ResourceStore Store => store;

    /// <summary>The caller's access check on every version saved or deleted here (null: none, e.g. internal writes).</summary>
    public IWriteAccess? Access { get; set; }

    public Task<StoredResource?> ReadForUpdateAsync(string type, string id, CancellationToken ct) =>
        store.ReadAsync(connection, transaction, type, id, forUpdate: true, ct);

    /// <summary>
    /// Writes a new version of <paramref name="resource"/> (its Id must be set): version 1 when
    /// <paramref name="current"/> is null, otherwise current.Version + 1 (also after a delete).
    /// Sets meta.versionId and meta.lastUpdated on the resource.
    /// </summary>
    public async Task<StoredResource> SaveAsync(Resource resource, StoredResource? current, string method, CancellationToken ct)
    {
        var id = resource.Id ?? throw new ArgumentException("The resource id must be set before saving.", nameof(resource));
        Access?.CheckSave(resource, current, method); // 403 before anything else
        var normalised = store.Normalizer?.Normalize(resource); // national shapes first, so that they are what is validated
        // Security labels, consent grants, Provenance and AuditEvent of the write, in this transaction (Consent/WriteHook.cs).
        if (store.WriteHook is { } hook) await hook.BeforeSaveAsync(this, resource, current, method, ct);
        // Subscriptions: a client's Subscription is checked and its subscriber recorded (Notifications/SubscriptionHook.cs).
        if (store.Notifications is { } notifications) await notifications.BeforeSaveAsync(this, resource, current, ct);
        store.Profiles?.Check(resource); // 422 before anything is written, for every kind of write
        var version = (current?.Version ?? 0) + 1;
        var now = Now(current);
        resource.Meta ??= new Meta();
        resource.Meta.VersionId = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        resource.Meta.LastUpdated = now;
        var json = Rest.FhirFormat.Serialize(resource, Rest.WireFormat.Json, pretty: false);
        var entries = store.Indexer.Index(resource);

        long key;
        if (current is null)
        {
            await using var insert = Sql.Command(connection, transaction,
                "INSERT INTO resources (type, id, version, last_updated, deleted, json) VALUES (@t, @i, @v, @u, 0, @j) RETURNING rkey")
                .With("@t", resource.TypeName).With("@i", resource.Id).With("@v", version)
                .With("@u", now.ToUnixTimeMilliseconds()).With("@j", json);
            key = Convert.ToInt64(await insert.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            key = current.Key;
            await using var update = Sql.Command(connection, transaction,
                "UPDATE resources SET version = @v, last_updated = @u, deleted = 0, json = @j WHERE rkey = @k AND version = @old")
                .With("@v", version).With("@u", now.ToUnixTimeMilliseconds()).With("@j", json)
                .With("@k", key).With("@old", current.Version);
            if (await update.ExecuteNonQueryAsync(ct) != 1) throw new ConcurrentWriteException(resource.TypeName, id);
        }
        await InsertVersionAsync(key, resource.TypeName, id, version, now, method, json, ct);
        await IndexWriter.ReplaceAsync(connection, transaction, key, resource.TypeName, entries, existed: current is not null, ct, IndexRows);
        var saved = new StoredResource(key, resource.TypeName, id, version, now, false, json, method) { Normalised = normalised is { Count: > 0 } ? normalised : null };
        // Notifications of the matching Subscriptions, queued in this transaction once the new index rows are there.
        if (store.Notifications is { } subscriptions) await subscriptions.AfterSaveAsync(this, saved, ct);
        return saved;
    }

    /// <summary>
    /// Saves a record the gateway itself writes with the caller's write (its Provenance and AuditEvent): the caller's
    /// scopes decide what it may write, not whether the gateway keeps its records.
    /// </summary>
    public async Task<StoredResource> SaveGatewayRecordAsync(Resource record, CancellationToken ct)
    {
        var access = Access;
        Access = null;
        try { return await SaveAsync(record, null, "POST", ct); }
        finally { Access = access; }
    }

    /// <summary>Marks the resource deleted as a new version (history keeps the earlier ones) and drops its index rows.</summary>
    public async Task<StoredResource> DeleteAsync(StoredResource current, CancellationToken ct)
    {
        Access?.CheckDelete(current);
        // The deletion's Provenance and audit row, in this transaction like every write (Consent/WriteHook.cs).
        if (store.WriteHook is { } hook) await hook.BeforeDeleteAsync(this, current, ct);
        if (store.Notifications is { } notifications) await notifications.BeforeDeleteAsync(this, current, ct);
        var version = current.Version + 1;
        var now = Now(current);
        await using var update = Sql.Command(connection, transaction,
            "UPDATE resources SET version = @v, last_updated = @u, deleted = 1, json = NULL WHERE rkey = @k AND version = @old")
            .With("@v", version).With("@u", now.ToUnixTimeMilliseconds()).With("@k", current.Key).With("@old", current.Version);
        if (await update.ExecuteNonQueryAsync(ct) != 1) throw new ConcurrentWriteException(current.Type, current.Id);
        await InsertVersionAsync(current.Key, current.Type, current.Id, version, now, "DELETE", null, ct);
        await IndexWriter.ReplaceAsync(connection, transaction, current.Key, current.Type, null, existed: true, ct);
        await using (var keys = Sql.Command(connection, transaction, "DELETE FROM conditional_keys WHERE rkey = @k").With("@k", current.Key))
        {
            await keys.ExecuteNonQueryAsync(ct);
        }
        return current with { Version = version, LastUpdated = now, Deleted = true, Json = null, Method = "DELETE" };
    }

    private async Task InsertVersionAsync(long key, string type, string id, int version, DateTimeOffset now, string method, byte[]? json, CancellationToken ct)
    {
        await using var insert = Sql.Command(connection, transaction,
            "INSERT INTO resource_versions (rkey, type, id, version, last_updated, method, json) VALUES (@k, @t, @i, @v, @u, @m, @j)")
            .With("@k", key).With("@t", type).With("@i", id).With("@v", version)
            .With("@u", now.ToUnixTimeMilliseconds()).With("@m", method).With("@j", json);
        await insert.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Millisecond precision (what we store), never earlier than the previous version.</summary>
    private DateTimeOffset Now(StoredResource? current)
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(store.Clock.GetUtcNow().ToUnixTimeMilliseconds());
        return current is not null && now <= current.LastUpdated ? current.LastUpdated.AddMilliseconds(1) : now;
    }

    /// <summary>
    /// Runs once in the transaction just before it commits: the write hook's one Provenance and audit row for all
    /// the versions the session saved (Consent/WriteHook.cs).
    /// </summary>
    public Func<WriteSession, CancellationToken, Task>? BeforeCommit { get; set; }

    public async Task CommitAsync(CancellationToken ct)
    {
        if (BeforeCommit is { } before)
        {
            BeforeCommit = null;
            await before(this, ct);
        }
        ReleaseStatements();
        await unit.CommitAsync(ct);
    }

    public Task RollbackAsync()
    {
        ReleaseStatements();
        return unit.RollbackAsync();
    }

    public ValueTask DisposeAsync()
    {
        ReleaseStatements();
        return unit.DisposeAsync();
    }

    /// <summary>
    /// Prepared statements go before the unit completes: on SQLite the connection is shared by the units of a group
    /// commit and closed by whichever completes the group, possibly on another thread, once this unit's turn is over.
    /// </summary>
    private void ReleaseStatements()
    {
        _indexRows?.Dispose();
        _indexRows = null;
    }
}

/// <summary>Another writer changed the row between our read and our write; the unit of work is retried or reported as 409/412.</summary>
public sealed class ConcurrentWriteException(string type, string id) : Exception($"{type}/{id} was changed by a concurrent writer");

/// <summary>
/// Access decisions on the versions a write session touches (Security's AccessPoint implements it): each throws a
/// FhirException (403) to refuse. Called on the resource as written, so conditional and transaction writes are
/// checked on what they really change.
/// </summary>
public interface IWriteAccess
{
    void CheckSave(Resource next, StoredResource? current, string method);

    void CheckDelete(StoredResource current);

    /// <summary>A search a write runs on the caller's behalf (a conditional reference).</summary>
    void CheckSearch(string type, IReadOnlyList<KeyValuePair<string, string>> query);

    /// <summary>A resource a write answers with without writing it (the match of a conditional create).</summary>
    void CheckRead(StoredResource found);
}
