using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// SQLite: every read answered 200 left its audit record in the audit journal's segment files before the answer left,
/// so after kill -9 (reads in flight) and a restart on the same data, the store holds a read record for each of them:
/// the restarted gateway finds them in the segments and moves them.
/// </summary>
public sealed class SqliteAuditDurabilityTests(ITestOutputHelper output)
{
    private const int Readers = 8;
    private const int Patients = 4;

    [Fact]
    public async Task Every_answered_read_has_its_audit_record_after_kill_9_and_restart()
    {
        using var storage = new SqliteStorage();
        var answered = new ConcurrentDictionary<string, int>();
        var ids = new List<string>();
        await using (var server = await ServerProcess.StartAsync(storage))
        {
            using var http = Http(server);
            for (var i = 0; i < Patients; i++)
            {
                using var content = new StringContent("{\"resourceType\":\"Patient\",\"active\":true}", Encoding.UTF8, "application/fhir+json");
                using var created = await http.PostAsync("Patient", content);
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                ids.Add(created.Headers.Location!.Segments[^3].TrimEnd('/'));
            }
            using var stop = new CancellationTokenSource();
            async Task ReaderAsync(int reader)
            {
                for (var i = reader; !stop.IsCancellationRequested; i++)
                {
                    var id = ids[i % Patients];
                    try
                    {
                        using var response = await http.GetAsync($"Patient/{id}");
                        if (response.StatusCode == HttpStatusCode.OK) answered.AddOrUpdate(id, 1, (_, n) => n + 1);
                    }
                    catch (HttpRequestException)
                    {
                        return; // the server died under this read: not answered
                    }
                }
            }
            var readers = Enumerable.Range(0, Readers).Select(r => Task.Run(() => ReaderAsync(r))).ToArray();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (answered.Values.Sum() < 400 && DateTime.UtcNow < deadline && readers.All(r => !r.IsCompleted)) await Task.Delay(10);
            await server.CrashAsync();
            await stop.CancelAsync();
            await Task.WhenAll(readers);
        }
        output.WriteLine($"{answered.Values.Sum()} reads answered before kill -9");
        Assert.True(answered.Values.Sum() >= 50, "too few reads answered before the kill");

        await using (var restarted = await ServerProcess.StartAsync(storage))
        {
            // The restarted gateway moves what the journal holds in the background (at start): wait for it.
            var database = Path.Combine(storage.Environment["FhirSortie__DataDirectory"], "fhirsortie.db");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            Dictionary<string, long> recorded;
            do
            {
                await Task.Delay(200);
                recorded = await ReadRecordsAsync(database, ids);
            }
            while (ids.Any(id => recorded[id] < answered.GetValueOrDefault(id)) && DateTime.UtcNow < deadline);
            foreach (var id in ids)
                Assert.True(recorded[id] >= answered.GetValueOrDefault(id), $"Patient/{id}: {answered.GetValueOrDefault(id)} reads answered, {recorded[id]} read records after the restart");
        }
    }

    /// <summary>How many "read" audit records name each Patient, in the audit store of <paramref name="database"/> (also SqliteBackupTests).</summary>
    internal static async Task<Dictionary<string, long>> ReadRecordsAsync(string database, List<string> ids)
    {
        var counts = new Dictionary<string, long>();
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = database, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        await connection.OpenAsync();
        foreach (var id in ids)
        {
            await using var count = connection.CreateCommand();
            count.CommandText = "SELECT COUNT(*) FROM audit_events a JOIN audit_keys k ON k.audit_id = a.id " +
                "WHERE k.value = $id AND k.param = 'entity' AND k.sys = 'Patient' AND a.interaction = 'read'";
            count.Parameters.AddWithValue("$id", id);
            counts[id] = (long)(await count.ExecuteScalarAsync())!;
        }
        return counts;
    }

    private static HttpClient Http(ServerProcess server)
    {
        var http = new HttpClient(server.Authenticated(new SocketsHttpHandler { MaxConnectionsPerServer = Readers })) { BaseAddress = server.BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        return http;
    }
}
