using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// The audit records on disk, as a crash would leave them: in the audit store, or (SQLite) still in a lane of the
/// audit journal on their way to it. Read on connections of their own, as another process would.
/// </summary>
public static class DurableAuditRecords
{
    /// <summary>Ids of the durable records whose search keys hold <paramref name="param"/> = <paramref name="value"/>.</summary>
    public static async Task<HashSet<string>> WithKeyAsync(StorageDialect dialect, string param, string value)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync();
            await using var cmd = Sql.Command(connection, null, "SELECT audit_id FROM audit_keys WHERE value = @v AND param = @p").With("@v", value).With("@p", param);
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) ids.Add(reader.GetString(0));
        }
        await InJournalAsync(dialect, "SELECT j.id FROM audit_journal j, json_each(j.keys) k WHERE json_extract(k.value, '$[0]') = $p AND json_extract(k.value, '$[2]') = $v",
            ids, ("$p", param), ("$v", value));
        return ids;
    }

    /// <summary>True when the record <paramref name="id"/> is durable (in the store or in the journal).</summary>
    public static async Task<bool> ExistsAsync(StorageDialect dialect, string id)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync();
            await using var cmd = Sql.Command(connection, null, "SELECT id FROM audit_events WHERE id = @i").With("@i", id);
            if (await cmd.ExecuteScalarAsync() is not null) return true;
        }
        await InJournalAsync(dialect, "SELECT id FROM audit_journal WHERE id = $i", ids, ("$i", id));
        return ids.Count > 0;
    }

    private static async Task InJournalAsync(StorageDialect dialect, string sql, HashSet<string> ids, params (string Name, string Value)[] values)
    {
        if (dialect is not SqliteDialect sqlite) return;
        foreach (var path in sqlite.AuditJournalPaths.Where(File.Exists))
        {
            await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            await connection.OpenAsync();
            await using var cmd = connection.CreateCommand();
            cmd.CommandText = sql;
            foreach (var (name, value) in values) cmd.Parameters.AddWithValue(name, value);
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) ids.Add(reader.GetString(0));
        }
    }
}
