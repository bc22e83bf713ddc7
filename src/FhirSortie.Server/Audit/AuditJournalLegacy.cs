using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Audit;

/// <summary>
/// The audit journal as older builds wrote it: one SQLite file per lane (<c>audit-journal-N.db</c>, table audit_journal,
/// <see cref="Storage.Schema.AuditJournalV1"/>). What an older build left there is moved into the audit store once,
/// by the first move after an upgrade (records already in the store skipped by id), then the file is deleted.
/// </summary>
internal static class AuditJournalLegacy
{
    /// <summary>Moves every record of the file at <paramref name="path"/> into the store, then deletes the file.</summary>
    public static async Task<int> MoveAsync(Storage.Sqlite.SqliteDialect dialect, string path, CancellationToken ct)
    {
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString();
        var moved = 0;
        long after = 0;
        while (true)
        {
            var rows = new List<AuditJournalLane.Row>();
            await using (var connection = new SqliteConnection(connectionString))
            {
                await connection.OpenAsync(ct);
                await using var select = connection.CreateCommand();
                select.CommandText = "SELECT seq, id, recorded, interaction, action, outcome, entry, keys FROM audit_journal WHERE seq > $s ORDER BY seq LIMIT $n";
                select.Parameters.AddWithValue("$s", after);
                select.Parameters.AddWithValue("$n", AuditJournal.MoveRowsPerLane);
                await using var reader = await select.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct))
                    rows.Add(new AuditJournalLane.Row(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetString(3), reader.GetString(4),
                        reader.GetString(5), reader.GetString(6), ParseKeys(reader.GetString(7))));
            }
            if (rows.Count == 0) break;
            await using (var unit = await dialect.BeginWriteAsync(ct))
            {
                using (var inserts = new AuditJournalInserts(unit))
                {
                    var payload = new System.Buffers.ArrayBufferWriter<byte>(4096);
                    foreach (var row in rows)
                    {
                        payload.ResetWrittenCount();
                        AuditJournalSegment.WritePayload(payload, row.Id, row.Recorded, row.Interaction, row.Action, row.Outcome, row.Entry, row.Keys);
                        inserts.Insert(payload.WrittenSpan);
                    }
                }
                await unit.CommitAsync(CancellationToken.None);
            }
            after = rows[^1].Seq;
            moved += rows.Count;
        }
        // Everything is in the store (its connections were not pooled, so none holds the file): the file and its WAL go.
        foreach (var file in new[] { path, path + "-wal", path + "-shm" }) File.Delete(file);
        return moved;
    }

    private static List<AuditStore.Key> ParseKeys(string json)
    {
        using var document = JsonDocument.Parse(json);
        var keys = new List<AuditStore.Key>(document.RootElement.GetArrayLength());
        foreach (var key in document.RootElement.EnumerateArray())
            keys.Add(new AuditStore.Key(key[0].GetString()!, key[1].GetString()!, key[2].GetString()!));
        return keys;
    }
}
