using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// `dotnet FhirSortie.Server.dll backup &lt;folder&gt;` while the gateway serves reads and writes: restored into a new data
/// directory, the copy holds every resource and every read's audit record acknowledged before the backup began.
/// </summary>
public sealed class SqliteBackupTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_backup_taken_under_load_restores_everything_acknowledged_before_it()
    {
        using var storage = new SqliteStorage();
        using var restored = new SqliteStorage();
        var target = Path.Combine(Path.GetTempPath(), "fhirsortie-it", "backup-" + Guid.NewGuid().ToString("N"));
        var created = new List<string>();
        var reads = new ConcurrentDictionary<string, int>();
        int duringWrites;
        await using (var server = await ServerProcess.StartAsync(storage))
        {
            using var http = Http(server);
            for (var i = 0; i < 10; i++) created.Add(await CreateAsync(http));
            // Reads whose records are in the audit journal, most not yet moved to the audit store when the backup starts.
            foreach (var id in created)
            {
                using var read = await http.GetAsync($"Patient/{id}");
                Assert.Equal(HttpStatusCode.OK, read.StatusCode);
                reads.AddOrUpdate(id, 1, (_, n) => n + 1);
            }

            // The gateway keeps reading and writing while the copy is taken.
            using var stop = new CancellationTokenSource();
            var writer = Task.Run(async () =>
            {
                var n = 0;
                for (; !stop.IsCancellationRequested; n++) await CreateAsync(http);
                return n;
            });
            var reader = Task.Run(async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    using var read = await http.GetAsync($"Patient/{created[i % created.Count]}");
                    Assert.Equal(HttpStatusCode.OK, read.StatusCode);
                }
            });
            var (exit, said) = await BackupAsync(storage, target);
            await stop.CancelAsync();
            duringWrites = await writer;
            await reader;
            output.WriteLine(said);
            Assert.True(exit == 0, said);
            Assert.Contains("SQLite check: ok", said, StringComparison.Ordinal);
        }
        Assert.True(duringWrites > 0, "the gateway wrote nothing during the backup");

        var restoredFolder = restored.Environment["FhirSortie__DataDirectory"];
        CopyFolder(target, restoredFolder);
        Directory.Delete(target, recursive: true);
        await using (var second = await ServerProcess.StartAsync(restored))
        {
            using var http = Http(second);
            foreach (var id in created)
            {
                using var read = await http.GetAsync($"Patient/{id}");
                Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            }
            // The restored gateway moves the copied journal into its audit store at start: wait for it.
            var database = Path.Combine(restoredFolder, "fhirsortie.db");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            Dictionary<string, long> recorded;
            do
            {
                await Task.Delay(200);
                recorded = await SqliteAuditDurabilityTests.ReadRecordsAsync(database, created);
            }
            while (created.Any(id => recorded[id] < reads[id]) && DateTime.UtcNow < deadline);
            foreach (var id in created)
                Assert.True(recorded[id] >= reads[id], $"Patient/{id}: {reads[id]} reads answered before the backup, {recorded[id]} read records in the restored copy");
        }
    }

    [Fact]
    public async Task The_command_refuses_a_folder_that_is_not_empty()
    {
        using var storage = new SqliteStorage();
        await using (await ServerProcess.StartAsync(storage)) { }
        var target = Path.Combine(Path.GetTempPath(), "fhirsortie-it", "backup-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(target);
        await File.WriteAllTextAsync(Path.Combine(target, "older-backup.db"), "keep me");
        try
        {
            var (exit, said) = await BackupAsync(storage, target);
            Assert.Equal(2, exit);
            Assert.Contains("not empty", said, StringComparison.Ordinal);
            Assert.Equal("keep me", await File.ReadAllTextAsync(Path.Combine(target, "older-backup.db")));
            Assert.Single(Directory.EnumerateFileSystemEntries(target));
        }
        finally
        {
            Directory.Delete(target, recursive: true);
        }
    }

    private static async Task<string> CreateAsync(HttpClient http)
    {
        using var content = new StringContent("{\"resourceType\":\"Patient\",\"active\":true}", Encoding.UTF8, "application/fhir+json");
        using var response = await http.PostAsync("Patient", content);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return response.Headers.Location!.Segments[^3].TrimEnd('/');
    }

    /// <summary>Runs the backup command as an operator would: the server's dll, the same storage configuration.</summary>
    private static async Task<(int Exit, string Output)> BackupAsync(Storage storage, string target)
    {
        var result = await OperatorCommand.RunAsync(storage, ["backup", target]);
        return (result.Exit, result.All);
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
    }

    private static HttpClient Http(ServerProcess server)
    {
        var http = new HttpClient(server.Authenticated()) { BaseAddress = server.BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        return http;
    }
}
