using System.Data;
using System.Data.Common;
using FhirSortie.Server.Search;

namespace FhirSortie.Server.Storage;

/// <summary>
/// The resource store: current and historical versions of every resource, and their search index rows,
/// on SQLite or PostgreSQL. Reads of the current version use kept readers (below), other reads a pooled
/// connection; writes go through a <see cref="WriteSession"/>
/// (one database transaction, so a FHIR transaction bundle is all or nothing).
/// </summary>
public sealed class ResourceStore(StorageDialect dialect, ResourceIndexer indexer, TimeProvider clock, Profiles.ProfileEnforcement? profiles = null,
    Mapping.Normalizer? normalizer = null, Consents.WriteHook? writeHook = null, Notifications.SubscriptionHook? notifications = null) : IAsyncDisposable
{
    /// <summary>Subscriptions recorded and notifications queued on every save, in its transaction (null in bare test stores).</summary>
    public Notifications.SubscriptionHook? Notifications { get; } = notifications;

    /// <summary>Labelling, consent grants, Provenance and audit on every save (null in tests that build a bare store).</summary>
    public Consents.WriteHook? WriteHook { get; } = writeHook;

    /// <summary>Profile checks run on every save (null in tests that build a bare store).</summary>
    public Profiles.ProfileEnforcement? Profiles { get; } = profiles;

    /// <summary>Plain R4 brought to the national shapes on every save, before the profile checks (null: as sent).</summary>
    public Mapping.Normalizer? Normalizer { get; } = normalizer;

    // Reads are the hot path (the issue asks for 15,000/s). Opening a pooled connection and preparing the SELECT on
    // every read cost more than half of the store's time (bench micro-read, SQLite: 24 → 9.6 µs CPU per read), so
    // idle readers are kept: an open connection with its read command already prepared. Bounded: beyond this many
    // idle ones, a returned reader is closed.
    private const int MaxIdleReaders = 16;
    private const long MaxIdleMilliseconds = 60_000;
    private readonly IdleConnections<CurrentReader> _readers = new(MaxIdleReaders);

    public StorageDialect Dialect { get; } = dialect;
    public ResourceIndexer Indexer { get; } = indexer;
    public TimeProvider Clock { get; } = clock;

    public async Task<DbConnection> OpenAsync(CancellationToken ct)
    {
        var connection = Dialect.CreateConnection();
        await connection.OpenAsync(ct);
        return connection;
    }

    public Task<StoredResource?> ReadAsync(string type, string id, CancellationToken ct) =>
        OnKeptReaderAsync((reader, token) => reader.ReadAsync(type, id, token), ct);

    /// <summary>
    /// Who wrote a resource (resource_origin's FINESS, null when unknown) and the patients whose compartment holds its
    /// current version (none listed for a Patient: it is its own): what the consent rule needs for a care organisation reading its own data. One statement, kept
    /// prepared on the kept readers like the read itself.
    /// </summary>
    public Task<ResourceOrigin> ReadOriginAsync(StoredResource stored, CancellationToken ct) =>
        OnKeptReaderAsync((reader, token) => reader.OriginAsync(stored, token), ct);

    private async Task<T> OnKeptReaderAsync<T>(Func<CurrentReader, CancellationToken, Task<T>> work, CancellationToken ct)
    {
        var reader = await RentReaderAsync(ct);
        T found;
        try
        {
            found = await work(reader, ct);
        }
        catch (DbException e) when ((reader.Reused || Dialect.IsConnectionLost(e)) && !ct.IsCancellationRequested)
        {
            // An idle connection may have been closed meanwhile (database restart, failover): then the other idle
            // ones most likely were too. Drop them all, and the pool's, and try again on a new connection; more than
            // once, because a connection another task held during the clear can still come back dead (seen once in 8
            // runs under CPU load, PostgresReadPathTests).
            for (var attempt = 1; ; attempt++)
            {
                Dialect.ClearPool(reader.Connection);
                await reader.DisposeAsync();
                await _readers.CloseIdleAsync();
                reader = await OpenReaderAsync(ct);
                try
                {
                    found = await work(reader, ct);
                    break;
                }
                catch (DbException again) when (attempt < 3 && Dialect.IsConnectionLost(again) && !ct.IsCancellationRequested)
                {
                    // Once more on a new connection.
                }
                catch
                {
                    await reader.DisposeAsync();
                    throw;
                }
            }
        }
        catch
        {
            // A failed reader (broken connection, cancellation mid-read) is not reused.
            await reader.DisposeAsync();
            throw;
        }
        await _readers.ReturnAsync(reader);
        return found;
    }

    private async Task<CurrentReader> RentReaderAsync(CancellationToken ct)
    {
        while (_readers.TryTake(out var idle, out var idleMilliseconds))
        {
            // Like a connection pool's idle lifetime: a connection idle for long is more likely to be stale.
            if (idleMilliseconds < MaxIdleMilliseconds)
            {
                idle.Reused = true;
                return idle;
            }
            await idle.DisposeAsync();
        }
        return await OpenReaderAsync(ct);
    }

    private async Task<CurrentReader> OpenReaderAsync(CancellationToken ct)
    {
        var connection = await OpenAsync(ct);
        try
        {
            var command = Sql.Command(connection, null, $"SELECT {Sql.StoredColumns("r")} FROM resources r WHERE r.type = @t AND r.id = @i");
            var type = Parameter(command, "@t", DbType.String);
            var id = Parameter(command, "@i", DbType.String);
            await command.PrepareAsync(ct);
            return new CurrentReader(connection, command, type, id);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static DbParameter Parameter(DbCommand command, string name, DbType dbType)
    {
        var p = command.CreateParameter();
        p.ParameterName = name;
        p.DbType = dbType; // typed so that PostgreSQL can prepare the statement server-side
        p.Value = dbType == DbType.Int64 ? 0L : "";
        command.Parameters.Add(p);
        return p;
    }

    public ValueTask DisposeAsync() => _readers.DisposeAsync();

    /// <summary>An open connection with the current-version read prepared on it.</summary>
    private sealed class CurrentReader(DbConnection connection, DbCommand command, DbParameter type, DbParameter id) : IAsyncDisposable
    {
        /// <summary>True when taken from the idle queue (it may have gone stale), false when just opened.</summary>
        public bool Reused { get; set; }

        public DbConnection Connection => connection;

        // Prepared on first use: only reads that reach the consent rule's author check need it.
        private (DbCommand Command, DbParameter Type, DbParameter Id, DbParameter Key)? _origin;

        public async Task<StoredResource?> ReadAsync(string resourceType, string resourceId, CancellationToken ct)
        {
            type.Value = resourceType;
            id.Value = resourceId;
            // Disposing the data reader resets the statement, so an idle reader holds no snapshot (WAL checkpoints go on).
            await using var rows = await command.ExecuteReaderAsync(CommandBehavior.SingleRow, ct);
            return await rows.ReadAsync(ct) ? Sql.ReadStored(rows) : null;
        }

        public async Task<ResourceOrigin> OriginAsync(StoredResource stored, CancellationToken ct)
        {
            if (_origin is not { } origin)
            {
                // "compartment_type || ''": without statistics SQLite otherwise picks the covering (compartment_type,
                // compartment_id, rkey) index and walks every Patient compartment row of the database on each read;
                // the rkey index finds the resource's few rows. PostgreSQL plans it on rkey either way.
                // A Patient is its own compartment: "@t <> 'Patient'" is evaluated once, before any index is read.
                var cmd = Sql.Command(connection, null,
                    "SELECT 0, finess FROM resource_origin WHERE type = @t AND id = @i " +
                    "UNION ALL SELECT 1, compartment_id FROM resource_compartment WHERE @t <> 'Patient' AND rkey = @k AND compartment_type || '' = 'Patient'");
                try
                {
                    origin = (cmd, Parameter(cmd, "@t", DbType.String), Parameter(cmd, "@i", DbType.String), Parameter(cmd, "@k", DbType.Int64));
                    await cmd.PrepareAsync(ct);
                }
                catch
                {
                    await cmd.DisposeAsync();
                    throw;
                }
                _origin = origin;
            }
            origin.Type.Value = stored.Type;
            origin.Id.Value = stored.Id;
            origin.Key.Value = stored.Key;
            string? finess = null;
            var patients = new List<string>();
            await using var rows = await origin.Command.ExecuteReaderAsync(ct);
            while (await rows.ReadAsync(ct))
            {
                if (rows.GetInt32(0) == 0) finess = rows.IsDBNull(1) ? null : rows.GetString(1);
                else patients.Add(rows.GetString(1));
            }
            return new ResourceOrigin(finess, patients);
        }

        public async ValueTask DisposeAsync()
        {
            if (_origin is { } origin) await origin.Command.DisposeAsync();
            await command.DisposeAsync();
            await connection.DisposeAsync();
        }
    }

    /// <summary>The current version by type (@p0) and id (@p1), locked for update where the dialect has row locks.</summary>
    internal string ReadForUpdateSql => _readForUpdateSql ??= $"SELECT {Sql.StoredColumns("r")} FROM resources r WHERE r.type = @p0 AND r.id = @p1{Dialect.ForUpdate}";

    private string? _readForUpdateSql;

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
        return await ReadVersionAsync(connection, null, type, id, version, ct);
    }

    /// <summary>A version, read on the caller's connection (a batch/transaction sees its own writes).</summary>
    internal async Task<StoredResource?> ReadVersionAsync(DbConnection connection, DbTransaction? tx, string type, string id, int version, CancellationToken ct)
    {
        await using var cmd = Sql.Command(connection, tx,
            "SELECT v.rkey, v.type, v.id, v.version, v.last_updated, CASE WHEN v.method = 'DELETE' THEN 1 ELSE 0 END, v.json, v.method " +
            "FROM resource_versions v WHERE v.type = @t AND v.id = @i AND v.version = @v")
            .With("@t", type).With("@i", id).With("@v", version);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Sql.ReadStored(reader) : null;
    }

    public async Task<WriteSession> BeginWriteAsync(CancellationToken ct)
    {
        return new WriteSession(this, await Dialect.BeginWriteAsync(ct));
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
        e is ConcurrentWriteException or Sqlite.GroupCommitFailedException || (e is DbException db && (Dialect.IsTransient(db) || Dialect.IsUniqueViolation(db)));
}

/// <summary>Who wrote a resource (FINESS of the author organisation, null when unknown) and the patients of its current version.</summary>
public sealed record ResourceOrigin(string? Finess, IReadOnlyList<string> Patients);
