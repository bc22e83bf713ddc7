using System.Globalization;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Tests.Storage;

/// <summary>
/// The backup command of the embedded database (Storage/Sqlite/SqliteBackup.cs): what it copies, in which order, and
/// what it refuses. Under a running gateway: FhirSortie.IntegrationTests' SqliteBackupTests.
/// </summary>
public sealed class SqliteBackupTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "fhirsortie-backup-" + Guid.NewGuid().ToString("N"));

    private string DataDirectory => Path.Combine(_root, "data");

    private string Target => Path.Combine(_root, "backup");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static AuditEntry ReadOf(string patient) => new()
    {
        Id = Server.Rest.FhirRequest.NewId(),
        Recorded = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        Interaction = "read",
        Status = 200,
        ClientId = "csapa-backup",
        Entities = [$"Patient/{patient}"],
        Patients = [patient],
    };

    private static async Task<SqliteDialect> OpenAsync(string directory)
    {
        var dialect = new SqliteDialect(directory);
        await Migrator.MigrateAsync(dialect, NullLogger.Instance, CancellationToken.None);
        return dialect;
    }

    private static async Task<(int Exit, string Output)> BackupAsync(StorageDialect dialect, params string[] args)
    {
        using var output = new StringWriter(CultureInfo.InvariantCulture);
        var exit = await SqliteBackup.RunAsync(dialect, args, output, output, CancellationToken.None);
        return (exit, output.ToString());
    }

    [Fact]
    public async Task A_backup_holds_the_records_moved_and_those_still_in_the_journal_each_once_after_restore()
    {
        var dialect = await OpenAsync(DataDirectory);
        // Small segments: the moved records' segments are deleted or reused, the pending ones span several.
        var journal = new AuditJournal(dialect, 16 * 1024);
        var moved = Enumerable.Range(0, 60).Select(i => ReadOf($"moved{i}")).ToList();
        await Task.WhenAll(moved.Select(journal.AppendAsync));
        await journal.DrainAsync(CancellationToken.None);
        var pending = Enumerable.Range(0, 60).Select(i => ReadOf($"pending{i}")).ToList();
        await Task.WhenAll(pending.Select(journal.AppendAsync));

        var (exit, said) = await BackupAsync(dialect, "backup", Target);

        Assert.True(exit == 0, said);
        Assert.Contains("SQLite check: ok", said, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Target, "audit-journal-0"), "*.tmp"));
        journal.Dispose();
        await dialect.DisposeAsync();

        // Restored: the copy is a data directory; its journal is moved at start, records already in the store skipped.
        var restored = await OpenAsync(Target);
        var again = new AuditJournal(restored, 16 * 1024);
        again.Start();
        await again.DrainAsync(CancellationToken.None);
        await using var connection = restored.CreateConnection();
        await connection.OpenAsync();
        foreach (var entry in moved.Concat(pending))
        {
            await using var count = Sql.Command(connection, null, "SELECT COUNT(*) FROM audit_events WHERE id = @i").With("@i", entry.Id);
            Assert.Equal(1L, Convert.ToInt64(await count.ExecuteScalarAsync(), CultureInfo.InvariantCulture));
        }
        again.Dispose();
        await restored.DisposeAsync();
    }

    [Fact]
    public async Task Without_a_folder_inside_the_data_directory_or_without_a_database_nothing_is_written()
    {
        var dialect = await OpenAsync(DataDirectory);
        var before = Directory.EnumerateFileSystemEntries(DataDirectory, "*", SearchOption.AllDirectories).Order().ToList();

        var (noFolder, usage) = await BackupAsync(dialect, "backup");
        var (inside, insideSaid) = await BackupAsync(dialect, "backup", Path.Combine(DataDirectory, "copy"));
        var empty = new SqliteDialect(Path.Combine(_root, "nothing-here"));
        File.Delete(empty.DatabasePath);
        var (noDatabase, noDatabaseSaid) = await BackupAsync(empty, "backup", Target);

        Assert.Equal((SqliteBackup.Refused, SqliteBackup.Refused, SqliteBackup.Refused), (noFolder, inside, noDatabase));
        Assert.Contains("Usage", usage, StringComparison.Ordinal);
        Assert.Contains("inside the data directory", insideSaid, StringComparison.Ordinal);
        Assert.Contains("No database", noDatabaseSaid, StringComparison.Ordinal);
        Assert.Equal(before, Directory.EnumerateFileSystemEntries(DataDirectory, "*", SearchOption.AllDirectories).Order().ToList());
        Assert.False(Directory.Exists(Target));
        await empty.DisposeAsync();
        await dialect.DisposeAsync();
    }
}
