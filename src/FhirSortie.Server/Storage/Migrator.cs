using System.Data.Common;
using Microsoft.Extensions.Logging;

namespace FhirSortie.Server.Storage;

/// <summary>Creates or upgrades the schema at start; each numbered step runs once, in its own transaction.</summary>
public static class Migrator
{
    public static async Task MigrateAsync(StorageDialect dialect, ILogger logger, CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        if (dialect is Sqlite.SqliteDialect)
        {
            // journal_mode cannot change inside a transaction; it is persistent once set.
            await ExecAsync(connection, null, "PRAGMA journal_mode=WAL;", ct);
        }
        await using var migrationLock = await dialect.LockForMigrationAsync(connection, ct);
        await ExecAsync(connection, null, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)", ct);
        var applied = new HashSet<int>();
        await using (var cmd = connection.CreateCommand())
        {
            cmd.CommandText = "SELECT version FROM schema_migrations";
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) applied.Add(reader.GetInt32(0));
        }
        for (var i = 0; i < dialect.Migrations.Count; i++)
        {
            var version = i + 1;
            if (applied.Contains(version)) continue;
            await using var tx = await connection.BeginTransactionAsync(ct);
            await ExecAsync(connection, tx, dialect.Migrations[i], ct);
            await ExecAsync(connection, tx, $"INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, '{DateTimeOffset.UtcNow:O}')", ct);
            await tx.CommitAsync(ct);
            logger.LogInformation("Applied schema migration {Version} on {Dialect}", version, dialect.Name);
        }
    }

    private static async Task ExecAsync(DbConnection connection, DbTransaction? tx, string sql, CancellationToken ct)
    {
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
