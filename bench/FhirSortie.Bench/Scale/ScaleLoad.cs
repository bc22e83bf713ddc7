extern alias server;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using server::FhirSortie.Server.Demo;
using server::FhirSortie.Server.Rest;
using TaskStatus = Hl7.Fhir.Model.Task.TaskStatus;

namespace FhirSortie.Bench.Scale;

/// <summary>
/// scale-load: the exit packages of people 1..N posted as transactions through the in-process gateway
/// (<see cref="ScaleGateway"/>), each by its prison's USMP client, from <c>workers</c> concurrent clients; then the
/// receiver moves the hand-off Task to its final status by JSON Patch, as a CSAPA's software would. What is done is
/// appended to <c>people.tsv</c> in the output folder (person, Patient id, Task id, prison, receiver, kind, consent):
/// a second run skips those people and carries on (a person cut off mid-way is posted again: every entry is a
/// conditional create, so it matches what the first attempt committed).
/// </summary>
public static class ScaleLoad
{
    public const string PeopleFile = "people.tsv";
    private const string ReceiverScope = "system/*.rs system/Task.u";

    public static async Task<int> RunAsync(string storage, string outDir, int people, int workers)
    {
        Directory.CreateDirectory(outDir);
        var dataDirectory = ScaleGateway.IsPostgres(storage) ? Path.Combine(outDir, "gateway") : storage;
        Directory.CreateDirectory(dataDirectory);
        var clock = Stopwatch.StartNew();
        await using var gateway = new ScaleGateway(storage, dataDirectory);
        var usmps = Enumerable.Range(0, ScaleWorld.Prisons).Select(p => gateway.Client(ScaleWorld.UsmpClient(p), "system/*.cruds")).ToArray();
        var receivers = Enumerable.Range(0, ScaleWorld.Receivers).Select(r => gateway.Client(ScaleWorld.ReceiverClient(r), ReceiverScope)).ToArray();
        foreach (var usmp in usmps) usmp.DefaultRequestHeaders.Add("Prefer", "return=minimal");
        await PostAsync(usmps[0], ReferenceData());
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"gateway started and reference data posted in {clock.Elapsed.TotalSeconds:0.0} s"));

        var path = Path.Combine(outDir, PeopleFile);
        var done = File.Exists(path)
            ? File.ReadLines(path).Select(l => int.Parse(l.Split('\t')[0], CultureInfo.InvariantCulture)).ToHashSet()
            : [];
        var todo = Enumerable.Range(1, people).Where(n => !done.Contains(n)).ToArray();
        Console.WriteLine($"{done.Count} people already loaded, {todo.Length} to load with {workers} workers");
        await using var log = new StreamWriter(path, append: true) { AutoFlush = true };
        var next = -1;
        long resources = 0, moves = 0, finished = 0;
        var started = Stopwatch.StartNew();
        using var report = new Timer(_ =>
        {
            var s = started.Elapsed.TotalSeconds;
            var f = Interlocked.Read(ref finished);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {f}/{todo.Length} people, {Interlocked.Read(ref resources)} entries, {Interlocked.Read(ref moves)} Task moves in {s:0} s: {f / s:0.0} packages/s, ETA {(todo.Length - f) / Math.Max(0.01, f / s) / 60:0.0} min"));
        }, null, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30));
        await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, workers).Select(_ => System.Threading.Tasks.Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) is var i && i < todo.Length)
            {
                var person = new ScalePerson(todo[i]);
                var package = person.Package();
                var (locations, created) = await PostAsync(usmps[person.Prison], package);
                var patientId = IdOf(locations[person.PatientEntry]);
                var taskId = person.TaskEntry >= 0 ? IdOf(locations[person.TaskEntry]) : IdOf(locations[package.Entry.FindIndex(e => e.Resource is Hl7.Fhir.Model.Task)]);
                foreach (var status in person.HandoffMoves())
                {
                    // A person posted again after an interrupted run may already be past this move (409): carry on.
                    if (!await MoveAsync(receivers[person.Receiver], taskId, status, tolerateConflict: !created)) break;
                    Interlocked.Increment(ref moves);
                }
                Interlocked.Add(ref resources, package.Entry.Count);
                var line = string.Join('\t', person.Number.ToString(CultureInfo.InvariantCulture), patientId, taskId,
                    person.Prison.ToString(CultureInfo.InvariantCulture), person.Receiver.ToString(CultureInfo.InvariantCulture), person.Kind.ToString(),
                    person.Kind == ExitKind.Unannounced ? "0" : "1", person.Ins, (person.HandoffStatus ?? TaskStatus.Requested).ToString());
                lock (log) log.WriteLine(line);
                Interlocked.Increment(ref finished);
            }
        })));
        var seconds = started.Elapsed.TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"loaded {todo.Length} people ({resources} entries, {moves} Task moves) in {seconds:0} s: {todo.Length / Math.Max(0.001, seconds):0.0} packages/s, {workers} workers"));
        foreach (var c in usmps.Concat(receivers)) c.Dispose();
        return 0;
    }

    /// <summary>Every organisation, prescriber and place of the world, once, before the workers start (no two first packages race to create them).</summary>
    private static Bundle ReferenceData()
    {
        var b = new DemoPackages.PackageBuilder("scale-reference");
        for (var p = 0; p < ScaleWorld.Prisons; p++)
        {
            b.Organization(ScaleWorld.UsmpFiness(p), $"USMP du centre pénitentiaire n° {p + 1} (fictif)", "Unité sanitaire en milieu pénitentiaire");
            for (var d = 0; d < ScaleWorld.DoctorsPerPrison; d++) b.Practitioner(ScaleWorld.DoctorRpps(p, d), "PRESCRIPTEUR", "Camille");
        }
        for (var r = 0; r < ScaleWorld.Receivers; r++)
        {
            var receiver = ScaleWorld.IsCsapa(r)
                ? b.Organization(ScaleWorld.ReceiverFiness(r), $"CSAPA n° {r + 1} (fictif)", "Centre de soins, d'accompagnement et de prévention en addictologie")
                : b.Organization(ScaleWorld.ReceiverFiness(r), $"ACT n° {r + 1} (fictif)", "Appartement de coordination thérapeutique");
            b.Location("SCALE-LOC-" + r.ToString(CultureInfo.InvariantCulture), $"Accueil du centre n° {r + 1} (fictif)", receiver);
        }
        return b.Bundle;
    }

    private static readonly Hl7.Fhir.Serialization.BaseFhirJsonSerializer Serializer = new(Hl7.Fhir.Model.ModelInfo.ModelInspector);

    /// <summary>Posts a transaction; the entries' locations ("Type/id/_history/v") and whether anything was created (201).</summary>
    private static async Task<(List<string> Locations, bool Created)> PostAsync(HttpClient http, Bundle bundle)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var content = new StringContent(Serializer.SerializeToString(bundle), Encoding.UTF8, FhirFormat.JsonContentType);
            using var response = await http.PostAsync("", content);
            var body = await response.Content.ReadAsStringAsync();
            // A transaction that lost a race with a concurrent one (SQLite busy, PostgreSQL serialisation) is retried, as a client would.
            if ((int)response.StatusCode is 409 or 503 && attempt < 5) { await System.Threading.Tasks.Task.Delay(100 * attempt); continue; }
            if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"transaction answered {(int)response.StatusCode}: {body}");
            using var document = JsonDocument.Parse(body);
            var locations = new List<string>();
            var created = false;
            foreach (var entry in document.RootElement.GetProperty("entry").EnumerateArray())
            {
                var r = entry.GetProperty("response");
                locations.Add(r.TryGetProperty("location", out var location) ? location.GetString() ?? "" : "");
                created |= r.GetProperty("status").GetString()!.StartsWith("201", StringComparison.Ordinal);
            }
            return (locations, created);
        }
    }

    /// <summary>The id in a location ("[base/]Type/id/_history/v").</summary>
    private static string IdOf(string location)
    {
        var parts = location.Split('/');
        var history = Array.IndexOf(parts, "_history");
        return history > 0 ? parts[history - 1] : throw new InvalidOperationException("no version in location " + location);
    }

    /// <summary>The receiver's move of a hand-off Task by JSON Patch; false on a tolerated conflict.</summary>
    private static async Task<bool> MoveAsync(HttpClient receiver, string taskId, TaskStatus status, bool tolerateConflict)
    {
        var code = Hl7.Fhir.Utility.EnumUtility.GetLiteral(status);
        var patch = status == TaskStatus.Rejected
            ? $$$"""[{"op":"replace","path":"/status","value":"{{{code}}}"},{"op":"add","path":"/statusReason","value":{"text":"Pas de place disponible, réorientation"}}]"""
            : $$"""[{"op":"replace","path":"/status","value":"{{code}}"}]""";
        for (var attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Patch, "Task/" + taskId) { Content = new StringContent(patch, Encoding.UTF8) };
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(Patch.JsonPatchContentType);
            using var response = await receiver.SendAsync(request);
            if (response.IsSuccessStatusCode) return true;
            if ((int)response.StatusCode == 409 && tolerateConflict) return false;
            if ((int)response.StatusCode == 503 && attempt < 5) { await System.Threading.Tasks.Task.Delay(100 * attempt); continue; }
            throw new InvalidOperationException($"PATCH Task to {code} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }
}
