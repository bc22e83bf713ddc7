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

    // SQLite: the index INSERTs kept prepared on the writer connection (IndexWriter.PreparedRows).
    private PreparedRows? _indexRows;

    private PreparedRows? IndexRows => unit.Statements is { } statements ? _indexRows ??= new PreparedRows(statements, transaction) : null;

    /// <summary>
    /// A command of this session with @p0, @p1... bound to <paramref name="values"/>: kept prepared on SQLite's writer
    /// connection (parsed once, not on every execution), a new command on PostgreSQL. Dispose it as any command.
    /// </summary>
    public Statement Statement(string sql, params ReadOnlySpan<object?> values) => Storage.Statement.On(unit, sql, values);

    public DbConnection Connection => connection;

    /// <summary>The unit of work this session writes through (tests look at its kept statements).</summary>
    internal WriteUnit Unit => unit;
    public DbTransaction Transaction => transaction;
    public ResourceStore Store => store;

    /// <summary>The caller's access check on every version saved or deleted here (null: none, e.g. internal writes).</summary>
    public IWriteAccess? Access { get; set; }

    public async Task<StoredResource?> ReadForUpdateAsync(string type, string id, CancellationToken ct)
    {
        await using var read = Statement(store.ReadForUpdateSql, type, id);
        await using var reader = await read.Command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Sql.ReadStored(reader) : null;
    }

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
        if (current is null && connection is Microsoft.Data.Sqlite.SqliteConnection { Handle: { } handle })
        {
            // SQLite runs RETURNING as a trigger writing to a temporary table: each INSERT opened a temporary b-tree
            // (page cache allocated and cleared) and a statement journal (every page it changed copied first). The
            // connection's last rowid is the same key, read right after the INSERT by the one writer in turn.
            await RunAsync(ct, "INSERT INTO resources (type, id, version, last_updated, deleted, json) VALUES (@p0, @p1, @p2, @p3, 0, @p4)",
                resource.TypeName, resource.Id, version, now.ToUnixTimeMilliseconds(), json);
            key = SQLitePCL.raw.sqlite3_last_insert_rowid(handle);
        }
        else if (current is null)
        {
            await using var insert = Statement(
                "INSERT INTO resources (type, id, version, last_updated, deleted, json) VALUES (@p0, @p1, @p2, @p3, 0, @p4) RETURNING rkey",
                resource.TypeName, resource.Id, version, now.ToUnixTimeMilliseconds(), json);
            key = Convert.ToInt64(await insert.Command.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            key = current.Key;
            await using var update = Statement(
                "UPDATE resources SET version = @p0, last_updated = @p1, deleted = 0, json = @p2 WHERE rkey = @p3 AND version = @p4",
                version, now.ToUnixTimeMilliseconds(), json, key, current.Version);
            if (await update.Command.ExecuteNonQueryAsync(ct) != 1) throw new ConcurrentWriteException(resource.TypeName, id);
        }
        await InsertVersionAsync(key, resource.TypeName, id, version, now, method, json, ct);
        await IndexWriter.ReplaceAsync(connection, transaction, key, resource.TypeName, entries, existed: current is not null, ct, IndexRows);
        var saved = new StoredResource(key, resource.TypeName, id, version, now, false, json, method) { Normalised = normalised is { Count: > 0 } ? normalised : null };
        // Notifications of the matching Subscriptions, queued in this transaction once the new index rows are there.
        if (store.Notifications is { } subscriptions) await subscriptions.AfterSaveAsync(this, saved, ct);
        return saved;
    }

    /// <summary>
    /// Saves a record the gateway itself writes beside the caller's write, or with no caller at all (the write's
    /// Provenance, a release alert's Flag and its Provenance): the caller's scopes decide what it may write, not whether
    /// the gateway keeps its records; and it is not the caller's write, so the write hook does not trace it as one
    /// (<see cref="SavingGatewayRecord"/>): the code that writes it records its own Provenance.
    /// </summary>
    public async Task<StoredResource> SaveGatewayRecordAsync(Resource record, CancellationToken ct, StoredResource? current = null, string method = "POST")
    {
        var access = Access;
        Access = null;
        SavingGatewayRecord = true;
        try { return await SaveAsync(record, current, method, ct); }
        finally
        {
            Access = access;
            SavingGatewayRecord = false;
        }
    }

    /// <summary>True while <see cref="SaveGatewayRecordAsync"/> saves: the version being saved is the gateway's, not the caller's.</summary>
    public bool SavingGatewayRecord { get; private set; }

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

    private Task InsertVersionAsync(long key, string type, string id, int version, DateTimeOffset now, string method, byte[]? json, CancellationToken ct) =>
        RunAsync(ct, "INSERT INTO resource_versions (rkey, type, id, version, last_updated, method, json) VALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6)",
            key, type, id, version, now.ToUnixTimeMilliseconds(), method, json);

    /// <summary>
    /// Runs a statement that returns no row, with @p0, @p1... bound to <paramref name="values"/>: on SQLite's kept writer
    /// through SQLite's own API (Sqlite/NativeStatements.cs: none of Microsoft.Data.Sqlite's per-execution work inside the
    /// writer's turn), otherwise as <see cref="Statement"/>.
    /// </summary>
    public Task RunAsync(CancellationToken ct, string sql, params ReadOnlySpan<object?> values)
    {
        if (unit.Statements?.Native is { } native)
        {
            native.Run(sql, values);
            return Task.CompletedTask;
        }
        return ExecuteAsync(Statement(sql, values), ct);

        static async Task ExecuteAsync(Statement statement, CancellationToken ct)
        {
            await using (statement) await statement.Command.ExecuteNonQueryAsync(ct);
        }
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
    /// The kept statements belong to the writer connection, which the next unit uses once this one's turn is over:
    /// this session must not touch them after it completes.
    /// </summary>
    private void ReleaseStatements() => _indexRows = null;
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
