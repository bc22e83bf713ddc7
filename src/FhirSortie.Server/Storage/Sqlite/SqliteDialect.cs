using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Storage.Sqlite;

/// <summary>
/// The embedded default. WAL journal with synchronous=FULL so that an acknowledged commit survives a crash.
/// SQLite has one writer at a time: writers queue on a semaphore here rather than spin on SQLITE_BUSY.
/// </summary>
public sealed class SqliteDialect : StorageDialect
{
    private readonly string _connectionString;
    private readonly SemaphoreSlim _writer = new(1, 1);

    public SqliteDialect(string dataDirectory)
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
    }

    public string DatabasePath { get; }

    public override string Name => "Sqlite";

    public override DbConnection CreateConnection() => new SqliteConnection(_connectionString);

    public override async Task<(DbConnection, DbTransaction, IDisposable?)> BeginWriteAsync(CancellationToken ct)
    {
        await _writer.WaitAsync(ct);
        var release = new Releaser(_writer);
        try
        {
            var connection = new SqliteConnection(_connectionString);
            await connection.OpenAsync(ct);
            await using (var pragma = connection.CreateCommand())
            {
                pragma.CommandText = "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;";
                await pragma.ExecuteNonQueryAsync(ct);
            }
            var tx = connection.BeginTransaction(deferred: false);
            return (connection, tx, release);
        }
        catch
        {
            release.Dispose();
            throw;
        }
    }

    public override IReadOnlyList<string> Migrations { get; } =
    [
        "PRAGMA journal_mode=WAL;",
        Schema.For(Schema.V1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.AuthV1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
        Schema.For(Schema.SmartLaunchV1, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "INTEGER"),
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
