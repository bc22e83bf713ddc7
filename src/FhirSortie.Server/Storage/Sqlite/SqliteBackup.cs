using System.Globalization;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Storage.Sqlite;

/// <summary>
/// Operator command <c>dotnet FhirSortie.Server.dll backup &lt;folder&gt;</c> (same configuration as the server): a
/// consistent copy of the embedded data directory, taken while the gateway runs. Copying the files by hand is not one:
/// the database's last commits may still be in its WAL file, and audit records of reads may still be in the audit
/// journal. Restore: copy the folder's content into an empty data directory and start the gateway there; it moves
/// the journal's records into the audit store at start, as after a crash.
/// <para>
/// Order matters, because the running gateway moves journal records into the database and then deletes their segment:
/// the journal's segment files are copied first, then the database is copied as one read snapshot (SQLite's
/// <c>VACUUM INTO</c>, which does not stop the gateway's writers). A record acknowledged before the copy began is in a
/// copied segment, or its segment was deleted because the record had been moved, before the snapshot was taken.
/// Records already in the copied database are skipped when the journal is moved, by id. The copy holds the
/// resources as of the snapshot and the audit records of reads as of the start of the copy (a write's record is in
/// its own transaction, so in the snapshot with it).
/// </para>
/// PostgreSQL deployments back up with PostgreSQL's tools (<c>pg_dump</c>, or base backups and WAL archiving).
/// </summary>
public static class SqliteBackup
{
    public const string Command = "backup";

    /// <summary>The exit code of a refused backup (bad target, wrong provider): nothing was written but an empty folder.</summary>
    public const int Refused = 2;

    /// <summary>Runs the command: 0 when the copy is complete and checked, <see cref="Refused"/> otherwise (the reason on <paramref name="error"/>).</summary>
    public static async Task<int> RunAsync(StorageDialect dialect, IReadOnlyList<string> args, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var at = args.ToList().IndexOf(Command);
        if (dialect is not SqliteDialect sqlite)
        {
            await error.WriteLineAsync("FhirSortie:Storage:Provider is not Sqlite: back PostgreSQL up with its own tools (pg_dump, or base backups and WAL archiving).");
            return Refused;
        }
        if (at < 0 || at + 1 >= args.Count || args[at + 1].StartsWith('-'))
        {
            await error.WriteLineAsync("Usage: dotnet FhirSortie.Server.dll backup <folder> (a new or empty folder, outside the data directory).");
            return Refused;
        }
        var target = Path.GetFullPath(args[at + 1]);
        var dataDirectory = Path.GetDirectoryName(sqlite.DatabasePath)!;
        if (IsInside(target, dataDirectory))
        {
            await error.WriteLineAsync($"The backup folder {target} is inside the data directory {dataDirectory}: choose a folder outside it.");
            return Refused;
        }
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
        {
            await error.WriteLineAsync($"The backup folder {target} is not empty: a backup is never written over another.");
            return Refused;
        }
        if (!File.Exists(sqlite.DatabasePath))
        {
            await error.WriteLineAsync($"No database at {sqlite.DatabasePath}: check FhirSortie:DataDirectory.");
            return Refused;
        }
        Directory.CreateDirectory(target);

        // 1. The audit journal's segments, before the database (see above).
        var segments = 0;
        long journalBytes = 0;
        foreach (var lane in sqlite.AuditJournalPaths.Where(Directory.Exists))
        {
            var copy = Path.Combine(target, Path.GetFileName(lane));
            Directory.CreateDirectory(copy);
            // The segments only: the spare (a file that becomes the next segment) holds nothing to keep.
            foreach (var file in Directory.EnumerateFiles(lane, "*.seg").Order(StringComparer.Ordinal))
            {
                var copied = await CopyAsync(file, Path.Combine(copy, Path.GetFileName(file)), ct);
                if (copied is null) continue; // moved and deleted meanwhile: its records are in the database
                segments++;
                journalBytes += copied.Value;
            }
            Audit.AuditJournalSegment.SyncDirectory(copy);
        }

        // 2. The database, as one read snapshot.
        var database = Path.Combine(target, Path.GetFileName(sqlite.DatabasePath));
        await using (var connection = sqlite.CreateConnection())
        {
            await connection.OpenAsync(ct);
            await using var vacuum = connection.CreateCommand();
            vacuum.CommandText = "VACUUM INTO @target";
            vacuum.Parameters.Add(new SqliteParameter("@target", database));
            vacuum.CommandTimeout = 0; // as long as the copy takes
            await vacuum.ExecuteNonQueryAsync(ct);
        }
        await using (var written = new FileStream(database, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite)) written.Flush(flushToDisk: true);
        Audit.AuditJournalSegment.SyncDirectory(target);

        // 3. The copy is checked, and what it holds said.
        var (check, resources, versions, audits) = await CheckAsync(database, ct);
        if (check != "ok")
        {
            await error.WriteLineAsync($"The copy in {target} failed SQLite's check: {check}");
            return 1;
        }
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"Backup written to {target}: {resources} resources, {versions} versions, {audits} audit records in the database, {segments} audit journal segment(s) ({journalBytes / 1024} KB). SQLite check: ok."));
        await output.WriteLineAsync("Restore: copy the folder's content into an empty data directory (FhirSortie:DataDirectory) and start the gateway there.");
        return 0;
    }

    private static bool IsInside(string path, string folder)
    {
        var relative = Path.GetRelativePath(folder, path);
        return relative == "." || (!relative.StartsWith("..", StringComparison.Ordinal) && !Path.IsPathRooted(relative));
    }

    /// <summary>Copies and flushes one file; null when it no longer exists.</summary>
    private static async Task<long?> CopyAsync(string source, string destination, CancellationToken ct)
    {
        FileStream input;
        try
        {
            // ReadWrite sharing: the gateway keeps appending to its current segment.
            input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        await using (input)
        await using (var copy = new FileStream(destination, FileMode.CreateNew, FileAccess.Write))
        {
            await input.CopyToAsync(copy, ct);
            copy.Flush(flushToDisk: true);
            return copy.Length;
        }
    }

    private static async Task<(string Check, long Resources, long Versions, long Audits)> CheckAsync(string database, CancellationToken ct)
    {
        var readOnly = new SqliteConnectionStringBuilder { DataSource = database, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString();
        await using var connection = new SqliteConnection(readOnly);
        await connection.OpenAsync(ct);
        async Task<object?> ScalarAsync(string sql)
        {
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            command.CommandTimeout = 0;
            return await command.ExecuteScalarAsync(ct);
        }
        var check = (string?)await ScalarAsync("PRAGMA quick_check") ?? "no answer";
        return (check,
            (long)(await ScalarAsync("SELECT COUNT(*) FROM resources"))!,
            (long)(await ScalarAsync("SELECT COUNT(*) FROM resource_versions"))!,
            (long)(await ScalarAsync("SELECT COUNT(*) FROM audit_events"))!);
    }
}
