using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// An acknowledged write survives kill -9 of the server: concurrent creates and updates, SIGKILL while requests are
/// still in flight, restart on the same data, and every version that was answered 200/201 with an ETag reads back.
/// </summary>
public abstract class DurabilityTests(string dialect, ITestOutputHelper output)
{
    private const int Writers = 16;
    private const int AcknowledgedBeforeKill = 200;

    /// <summary>On a loaded CI machine the kill comes after 60 s whatever the count; below this the test proves too little.</summary>
    private const int MinimumAcknowledged = 32;
    private const string MarkerSystem = "urn:fhirsortie:test:write";

    private static readonly BaseFhirJsonSerializer Serializer = new(ModelInfo.ModelInspector);
    private static readonly FhirJsonDeserializer Parser = new(new DeserializerSettings());

    /// <summary>One write the server acknowledged: which version it said it stored, and the marker it carried.</summary>
    private sealed record Acknowledged(string Id, string Version, string Marker);

    [Fact]
    public async Task Acknowledged_writes_survive_kill_9_and_restart()
    {
        using var storage = Storage.Create(dialect);
        var acknowledged = new ConcurrentBag<Acknowledged>();
        var ids = new ConcurrentBag<string>();
        int attempted = 0, failedInFlight = 0;
        int serverPid;

        await using (var server = await ServerProcess.StartAsync(storage))
        {
            serverPid = server.Pid;
            using var http = Http(server);
            using var stop = new CancellationTokenSource();

            async Task WriterAsync(int writer)
            {
                string? myId = null;
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var marker = $"w{writer}-{i}";
                    var patient = new Patient
                    {
                        Id = i % 3 == 0 ? null : myId, // one create, then two updates of the same resource, and so on
                        Identifier = [new Identifier(MarkerSystem, marker)],
                        Active = true,
                    };
                    if (patient.Id is null) myId = null;
                    Interlocked.Increment(ref attempted);
                    try
                    {
                        using var content = new StringContent(Serializer.SerializeToString(patient), Encoding.UTF8, "application/fhir+json");
                        using var response = myId is null
                            ? await http.PostAsync("Patient", content, CancellationToken.None)
                            : await http.PutAsync($"Patient/{myId}", content, CancellationToken.None);
                        var etag = response.Headers.ETag?.Tag;
                        if (response.StatusCode is not (HttpStatusCode.Created or HttpStatusCode.OK) || etag is null)
                            throw new InvalidOperationException($"write {marker} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                        var stored = (Patient)Parser.DeserializeResource(await response.Content.ReadAsStringAsync());
                        Assert.Equal($"\"{stored.Meta!.VersionId}\"", etag);
                        myId = stored.Id;
                        ids.Add(stored.Id!);
                        acknowledged.Add(new Acknowledged(stored.Id!, stored.Meta.VersionId!, marker));
                    }
                    catch (HttpRequestException)
                    {
                        // The server died under this request: no acknowledgement, nothing to check. Before the kill this
                        // ends the writer early, which the caller notices.
                        Interlocked.Increment(ref failedInFlight);
                        return;
                    }
                }
            }

            var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(() => WriterAsync(w))).ToArray();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (acknowledged.Count < AcknowledgedBeforeKill && DateTime.UtcNow < deadline && writers.All(w => !w.IsCompleted))
                await Task.Delay(10);
            foreach (var broken in writers.Where(w => w.IsFaulted)) await broken; // rethrows why a writer failed before the kill
            // Kill while all writers are busy, so that some requests are cut in the middle.
            await server.CrashAsync();
            await stop.CancelAsync();
            await Task.WhenAll(writers);
        }

        var acks = acknowledged.ToList();
        output.WriteLine($"{dialect}: {attempted} writes sent by {Writers} writers, {acks.Count} acknowledged before kill -9 of pid {serverPid}, {failedInFlight} cut in flight");
        Assert.True(acks.Count >= MinimumAcknowledged, $"only {acks.Count} writes acknowledged before the kill");
        Assert.True(failedInFlight > 0 || attempted > acks.Count, "the kill should have cut some requests in flight");

        await using (var restarted = await ServerProcess.StartAsync(storage))
        {
            using var http = Http(restarted);
            var lost = new List<string>();
            foreach (var ack in acks)
            {
                using var response = await http.GetAsync($"Patient/{ack.Id}/_history/{ack.Version}");
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    lost.Add($"{ack.Marker} -> Patient/{ack.Id}/_history/{ack.Version}: {(int)response.StatusCode}");
                    continue;
                }
                var patient = (Patient)Parser.DeserializeResource(await response.Content.ReadAsStringAsync());
                if (patient.Identifier.Single().Value != ack.Marker)
                    lost.Add($"{ack.Marker} -> Patient/{ack.Id}/_history/{ack.Version} holds {patient.Identifier.Single().Value}");
            }
            // The current version of each resource is at least the last version acknowledged for it.
            foreach (var group in acks.GroupBy(a => a.Id))
            {
                using var response = await http.GetAsync($"Patient/{group.Key}");
                var current = response.Headers.ETag?.Tag.Trim('"');
                var highest = group.Max(a => int.Parse(a.Version, System.Globalization.CultureInfo.InvariantCulture));
                if (current is null || int.Parse(current, System.Globalization.CultureInfo.InvariantCulture) < highest)
                    lost.Add($"Patient/{group.Key} is at version {current ?? "(none)"} after restart, {highest} was acknowledged");
            }
            Assert.True(lost.Count == 0, $"{lost.Count} acknowledged writes lost after kill -9:\n{string.Join('\n', lost.Take(20))}");
        }
    }

    private static HttpClient Http(ServerProcess server)
    {
        var http = new HttpClient(server.Authenticated(new SocketsHttpHandler { MaxConnectionsPerServer = Writers })) { BaseAddress = server.BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        return http;
    }
}

public sealed class SqliteDurabilityTests(ITestOutputHelper output) : DurabilityTests("Sqlite", output);

public sealed class PostgresDurabilityTests(ITestOutputHelper output) : DurabilityTests("Postgres", output);
