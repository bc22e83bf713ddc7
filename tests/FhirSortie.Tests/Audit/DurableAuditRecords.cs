using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using FhirSortie.Server.Audit;

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
        foreach (var row in InJournal(dialect))
            if (row.Keys.Any(k => k.Param == param && k.Value == value)) ids.Add(row.Id);
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
        return InJournal(dialect).Any(row => row.Id == id);
    }

    /// <summary>The records the journal's segment files hold, read from disk as a restart would (SQLite).</summary>
    private static IEnumerable<AuditJournalLane.Row> InJournal(StorageDialect dialect)
    {
        if (dialect is not SqliteDialect sqlite) yield break;
        foreach (var directory in sqlite.AuditJournalPaths)
            foreach (var (first, path) in AuditJournalSegment.List(directory))
                foreach (var row in AuditJournalSegment.ReadAll(path, first))
                    yield return row;
    }
}
