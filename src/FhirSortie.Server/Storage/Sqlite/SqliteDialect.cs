using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Storage.Sqlite;

/// <summary>
/// The embedded default. WAL journal with synchronous=FULL so that an acknowledged commit survives a crash.
/// SQLite has one writer at a time: writers queue in-process rather than spin on SQLITE_BUSY, and share commits
/// (group commit, one fsync for several units of work).
/// </summary>
public sealed class SqliteDialect : StorageDialect, IAsyncDisposable
{
    private readonly string _connectionString;
    private readonly string _writerConnectionString;

    public SqliteDialect(string dataDirectory, int maxUnitsPerCommit = SqliteGroupCommit.DefaultMaxUnits, System.Diagnostics.Metrics.Meter? meter = null)
    {
        Directory.CreateDirectory(dataDirectory);
        var path = Path.GetFullPath(Path.Combine(dataDirectory, "fhirsortie.db"));
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        DatabasePath = path;
        AuditJournalPaths = Enumerable.Range(0, AuditJournalLanes)
            .Select(i => Path.GetFullPath(Path.Combine(dataDirectory, $"audit-journal-{i}"))).ToArray();
        LegacyAuditJournalPaths = Enumerable.Range(0, AuditJournalLanes)
            .Select(i => Path.GetFullPath(Path.Combine(dataDirectory, $"audit-journal-{i}.db"))).ToArray();
        // The writer's connection is kept open by the group commit, never pooled: its settings (cache size) stay its own.
        _writerConnectionString = new SqliteConnectionStringBuilder(_connectionString) { Pooling = false }.ToString();
        GroupCommit = new SqliteGroupCommit(OpenWriterAsync, maxUnitsPerCommit, meter);
    }

    public string DatabasePath { get; }

    /// <summary>
    /// Folders of the audit journal's lanes (Audit/AuditJournal.cs: segment files), the durable queue of audit records,
    /// kept apart from the database so that appending to it does not empty the readers' page caches. Never fewer than
    /// before: a lane no longer read would keep its records.
    /// One lane: on this VM an fsync costs about as much CPU as a read (I/O submissions exit to the hypervisor), so
    /// the fewer and fuller the commits the better once the CPUs are busy; more lanes only shorten the wait for an
    /// fsync when CPU is to spare (read, wrk -c10, perf stat: 1 lane 396 µs and 3.6 context switches per read, 2 lanes
    /// 448 µs and 4.8, 4 lanes 478 µs and 5.4; bench/results/2026-11-23-audit-journal.md).
    /// </summary>
    public const int AuditJournalLanes = 1;

    /// <inheritdoc cref="AuditJournalLanes"/>
    public IReadOnlyList<string> AuditJournalPaths { get; }

    /// <summary>The SQLite files older builds used as the journal's lanes: what they hold is moved once (Audit/AuditJournalLegacy.cs).</summary>
    public IReadOnlyList<string> LegacyAuditJournalPaths { get; }

    public override string Name => "Sqlite";

    public override DbConnection CreateConnection() => new SqliteConnection(_connectionString);

    /// <summary>Writers take turns on shared transactions committed once per group (see <see cref="SqliteGroupCommit"/>).</summary>
    public SqliteGroupCommit GroupCommit { get; }

    public override Task<WriteUnit> BeginWriteAsync(CancellationToken ct) => GroupCommit.BeginAsync(ct);

    private async Task<SqliteConnection> OpenWriterAsync(CancellationToken ct)
    {
        var connection = new SqliteConnection(_writerConnectionString);
        try
        {
            await connection.OpenAsync(ct);
            await using var pragma = connection.CreateCommand();
            // temp_store=MEMORY: statement and savepoint journals (multi-row INSERTs, group commit savepoints) stay in
            // memory instead of temp files; they only serve rollbacks inside the open transaction, never recovery.
            // bench micro-tx: bytes written per exit package 3.6 MB -> 1.8 MB.
            // wal_autocheckpoint=8000 pages (32 MB of WAL, default 1000): index pages rewritten by successive
            // transactions are copied to the database file once per checkpoint instead of every few commits
            // (written per package 1.8 -> 1.4 MB with 16,000). Durability is the WAL's fsync at COMMIT, unchanged.
            // cache_size=-65536 (64 MB, default 2 MB): the kept writer connection keeps the index pages it updates (see
            // SqliteGroupCommit); with 2 MB they were evicted and read again by the next transactions.
            pragma.CommandText = "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=8000; PRAGMA cache_size=-65536;";
            await pragma.ExecuteNonQueryAsync(ct);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public override IReadOnlyList<string> Migrations { get; } =
    [
        "PRAGMA journal_mode=WAL;",
        Schema.For(Schema.V1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.AuthV1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.V2Consent, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.SmartLaunchV1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.AuditLogV1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.NotificationsV1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.SearchPlansV1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.AuditStoreV1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.AuditKeysSqliteV2,
        Schema.SearchIndexesSqliteV2,
        Schema.For(Export.ExportSchema.V1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"), // Export/: bulk export jobs
    ];

    public override Task<IAsyncDisposable> LockForMigrationAsync(DbConnection connection, CancellationToken ct) =>
        System.Threading.Tasks.Task.FromResult<IAsyncDisposable>(new Releaser(null));

    public override bool IsUniqueViolation(DbException e) =>
        e is SqliteException { SqliteErrorCode: 19 }; // SQLITE_CONSTRAINT

    public override bool IsTransient(DbException e) =>
        e is SqliteException { SqliteErrorCode: 5 or 6 }; // BUSY, LOCKED

    public override void ClearPool(DbConnection connection)
    {
        if (connection is SqliteConnection sqlite) SqliteConnection.ClearPool(sqlite);
    }

    public override string ForUpdate => "";

    private DataDirectoryLock? _lock;

    /// <summary>Keeps the data directory's lock until this dialect is disposed (<see cref="DataDirectoryLock.Take"/>).</summary>
    internal void Hold(DataDirectoryLock taken) => _lock = taken;

    /// <summary>
    /// Closes the kept writer connection (the host disposes the dialect at shutdown), then releases the data directory:
    /// the next process may start once this one has written its last.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await GroupCommit.DisposeAsync();
        _lock?.Dispose();
    }

    public override string ILike => "LIKE"; // ASCII case-insensitive; values are stored normalised anyway

    private sealed class Releaser(SemaphoreSlim? semaphore) : IDisposable, IAsyncDisposable
    {
        private int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) semaphore?.Release();
        }
        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
