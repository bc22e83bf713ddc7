using System.Globalization;
using System.IO.Compression;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Audit;

/// <summary>
/// Audit retention (issue 23 §1): access traces are kept for a fixed period (<c>FhirSortie:Audit:RetentionDays</c>), then
/// the operator command <c>archive-audit &lt;folder&gt;</c> moves the AuditEvents recorded before it into one compressed
/// NDJSON file (<c>auditevents-before-YYYYMMDD-&lt;run&gt;.ndjson.gz</c>, one AuditEvent per line, as the gateway served it)
/// and only then removes them from the audit store. Never silently: the file is written and flushed to disk and read back
/// (its line count checked) before any row goes; the command prints what it archived and removed; and the archive itself
/// leaves an AuditEvent (interaction <c>operation</c>, entity <c>$archive-audit</c>) saying how many records, until when, in which file. Nothing is
/// removed when no retention is set (0, the default) and no <c>--before</c> date is given.
/// Rows still in the SQLite audit journal are not yet in the store: they are archived by a later run.
/// </summary>
public static class AuditRetention
{
    public const string Command = "archive-audit";
    public const string RetentionSetting = "FhirSortie:Audit:RetentionDays";

    /// <summary>Runs the command; returns the exit code (0 done, 1 nothing asked or bad arguments, 2 the archive could not be written: nothing removed).</summary>
    public static async Task<int> RunAsync(StorageDialect dialect, AuditTrail trail, IConfiguration configuration, TimeProvider clock, string[] args, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var at = Array.IndexOf(args, Command);
        if (at < 0 || at + 1 >= args.Length || args[at + 1].StartsWith("--", StringComparison.Ordinal))
        {
            await error.WriteLineAsync($"Usage: {Command} <folder> [--before YYYY-MM-DD] (or set {RetentionSetting}).");
            return 1;
        }
        var folder = args[at + 1];
        DateTimeOffset cutoff;
        var before = Array.IndexOf(args, "--before");
        if (before >= 0)
        {
            if (before + 1 >= args.Length || !DateTimeOffset.TryParseExact(args[before + 1], "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out cutoff))
            {
                await error.WriteLineAsync("--before needs a date (YYYY-MM-DD).");
                return 1;
            }
        }
        else if (configuration.GetValue<int?>(RetentionSetting) is { } days and > 0)
        {
            cutoff = clock.GetUtcNow().Date.AddDays(-days);
        }
        else
        {
            await error.WriteLineAsync($"No retention is set ({RetentionSetting}) and no --before date given: nothing archived, nothing removed.");
            return 1;
        }
        var result = await ArchiveAsync(dialect, trail, folder, cutoff, clock, ct);
        if (result.Error is { } message)
        {
            await error.WriteLineAsync(message);
            return 2;
        }
        await output.WriteLineAsync(result.Count == 0
            ? $"No audit record before {cutoff:yyyy-MM-dd}: nothing archived, nothing removed."
            : $"Archived {result.Count} audit records recorded before {cutoff:yyyy-MM-dd} to {result.File} and removed them from the audit store.");
        return 0;
    }

    public sealed record Archived(int Count, string? File, string? Error);

    /// <summary>Archives then removes the audit records before <paramref name="cutoff"/>.</summary>
    public static async Task<Archived> ArchiveAsync(StorageDialect dialect, AuditTrail trail, string folder, DateTimeOffset cutoff, TimeProvider clock, CancellationToken ct)
    {
        Directory.CreateDirectory(folder);
        var limit = cutoff.ToUnixTimeMilliseconds();
        var file = Path.Combine(folder, $"auditevents-before-{cutoff:yyyyMMdd}-{clock.GetUtcNow():yyyyMMddHHmmss}.ndjson.gz");
        // The last seq archived: rows recorded before the cutoff but written after the archive started wait for the next run.
        long last = 0;
        var count = 0;
        try
        {
            await using (var stream = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.WriteThrough))
            {
                await using (var gzip = new GZipStream(stream, CompressionLevel.Optimal, leaveOpen: true))
                {
                    await using var connection = dialect.CreateConnection();
                    await connection.OpenAsync(ct);
                    while (true)
                    {
                        var page = 0;
                        await using var select = Sql.Command(connection, null,
                            $"SELECT {AuditStore.Columns("a")} FROM audit_events a WHERE a.recorded < @c AND a.seq > @after ORDER BY a.seq LIMIT 1000")
                            .With("@c", limit).With("@after", last);
                        await using var reader = await select.ExecuteReaderAsync(ct);
                        while (await reader.ReadAsync(ct))
                        {
                            var record = AuditStore.ReadRecord(reader);
                            await gzip.WriteAsync(record.Json, ct);
                            gzip.WriteByte((byte)'\n');
                            last = record.Key;
                            page++;
                        }
                        count += page;
                        if (page == 0) break;
                    }
                }
                await stream.FlushAsync(ct);
                stream.Flush(flushToDisk: true);
            }
            if (count == 0)
            {
                File.Delete(file);
                return new Archived(0, null, null);
            }
            // Read back: the file holds every line before anything is removed.
            var lines = 0;
            await using (var check = new GZipStream(File.OpenRead(file), CompressionMode.Decompress))
            using (var text = new StreamReader(check))
            {
                while (await text.ReadLineAsync(ct) is { Length: > 0 }) lines++;
            }
            if (lines != count) return new Archived(0, file, $"The archive {file} holds {lines} of {count} records: nothing removed.");
        }
        catch (IOException e)
        {
            return new Archived(0, file, $"The archive {file} could not be written ({e.Message}): nothing removed.");
        }

        await RemoveAsync(dialect, limit, last, ct);
        var note = new AuditNote();
        note.Entities.Add("$archive-audit");
        await trail.CommitAsync(AuditEntry.Of(null, "operation", 200, clock.GetUtcNow(), note,
            $"before={cutoff:yyyy-MM-dd}&count={count.ToString(CultureInfo.InvariantCulture)}&file={Path.GetFileName(file)}"));
        return new Archived(count, file, null);
    }

    /// <summary>Removes the archived rows (recorded before the cutoff, seq up to the last archived) and their search keys, 500 per unit.</summary>
    private static async Task RemoveAsync(StorageDialect dialect, long limit, long last, CancellationToken ct)
    {
        while (true)
        {
            await using var unit = await dialect.BeginWriteAsync(ct);
            var rows = new List<(long Seq, string Id, AuditEntry? Entry)>();
            await using (var select = Sql.Command(unit.Connection, unit.Transaction,
                "SELECT seq, id, entry FROM audit_events WHERE recorded < @c AND seq <= @last ORDER BY seq LIMIT 500").With("@c", limit).With("@last", last))
            await using (var reader = await select.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                    rows.Add((reader.GetInt64(0), reader.GetString(1), reader.IsDBNull(2) ? null : AuditEntry.FromJson(reader.GetString(2))));
            }
            if (rows.Count == 0) return;
            foreach (var (_, id, entry) in rows)
            {
                if (entry is null) continue;
                // audit_keys is keyed by (value, param, audit_id): each key removed by its own index entry, no scan.
                foreach (var key in AuditStore.Keys(entry))
                {
                    await using var delete = Sql.Command(unit.Connection, unit.Transaction, "DELETE FROM audit_keys WHERE value = @v AND param = @p AND audit_id = @i")
                        .With("@v", key.Value).With("@p", key.Param).With("@i", id);
                    await delete.ExecuteNonQueryAsync(ct);
                }
            }
            await using (var delete = Sql.Command(unit.Connection, unit.Transaction, "DELETE FROM audit_events WHERE recorded < @c AND seq <= @last AND seq <= @upto")
                .With("@c", limit).With("@last", last).With("@upto", rows[^1].Seq))
            {
                await delete.ExecuteNonQueryAsync(ct);
            }
            await unit.CommitAsync(ct);
        }
    }
}
