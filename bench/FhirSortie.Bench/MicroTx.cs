using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using FhirSortie.Server;
using FhirSortie.Server.Profiles;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;
using FhirSortie.Server.Storage.Sqlite;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Bench;

/// <summary>
/// In-process cost of the exit-package transaction, without HTTP: where the CPU goes, stage by stage.
/// <list type="number">
/// <item>End to end, one package at a time: strict parse of the posted JSON, <see cref="Transaction.RunTransactionAsync"/>
/// (everything the database transaction does), response serialisation. CPU time (CLOCK_PROCESS_CPUTIME_ID, so
/// GC and pool threads count) and wall time per stage.</item>
/// <item>Pieces of the write path measured alone on the same packages (nothing written): deep copy, profile checks,
/// serialising each resource, indexing each resource, the conditional look-ups; what remains of the transaction is
/// SQL, the SQLite library and our glue.</item>
/// <item>Throughput with concurrent workers (like wrk -c10), where group commit matters.</item>
/// </list>
/// CPU time per package is what to compare on the shared machine; wall figures move with the neighbours.
/// </summary>
public static class MicroTx
{
    public static async Task<int> RunAsync(string storage, int packages, int workers)
    {
        var root = Repository.Root();
        StorageDialect dialect = storage.StartsWith("Host=", StringComparison.Ordinal) ? new PostgresDialect(storage) : new SqliteDialect(storage);
        await Migrator.MigrateAsync(dialect, NullLogger.Instance, CancellationToken.None);
        var services = new ServiceCollection();
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(dialect);
        services.AddSingleton(_ => new SearchParameters(SearchParameters.LoadCustom(Path.Combine(root, "conformance", "searchparameters"))));
        services.AddSingleton(_ => Compartments.Load(Path.Combine(root, "conformance")));
        services.AddSingleton<ResourceIndexer>();
        services.AddSingleton(_ => ProfileRegistry.Load(Path.Combine(root, "profiles")));
        services.AddSingleton<ProfileValidator>();
        services.AddSingleton(sp => ProfileEnforcement.FromConfiguration(sp.GetRequiredService<ProfileValidator>(), new ConfigurationBuilder().Build()));
        services.AddSingleton<ResourceStore>();
        services.AddSingleton<SearchEngine>();
        await using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<ResourceStore>();
        var search = provider.GetRequiredService<SearchEngine>();
        var context = new Transaction.Services(store, search, new FhirSortieOptions(), "http://localhost/fhir", PreferReturn.Minimal, provider, AccessFilter.None);

        var template = ExitPackage.Serialize(ExitPackage.Build(DateTimeOffset.UtcNow));
        var seed = Random.Shared.Next(1, 90) * 1_000_000L;
        long next = seed;
        byte[] Body() => System.Text.Encoding.UTF8.GetBytes(ExitPackage.Instantiate(template, Interlocked.Increment(ref next)));

        // Warm-up: JIT tiers, caches, the reference data (Organizations, Practitioner) created by the first package.
        // Tiered JIT keeps recompiling hot methods for a while: without a long warm-up, the JIT itself was half the CPU.
        var warmUp = int.TryParse(Environment.GetEnvironmentVariable("WARMUP_PACKAGES"), out var w) ? w : 400;
        for (var i = 0; i < warmUp; i++) await OneAsync(context, Body(), null);
        Console.WriteLine($"warmed up ({warmUp} packages)");

        // 1. End to end, one at a time, per stage.
        var stages = new Stages();
        var process = Process.GetCurrentProcess();
        var (user0, system0, allocated0, gcs0, written0) = (process.UserProcessorTime, process.PrivilegedProcessorTime, GC.GetTotalAllocatedBytes(), GC.CollectionCount(0), BytesWritten());
        for (var i = 0; i < packages; i++) await OneAsync(context, Body(), stages);
        process.Refresh();
        Console.WriteLine($"{dialect.Name}: {packages} exit packages, one at a time (CPU = whole process, µs per package)");
        stages.Print(packages);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  user {(process.UserProcessorTime - user0).TotalMicroseconds / packages:0} µs, kernel {(process.PrivilegedProcessorTime - system0).TotalMicroseconds / packages:0} µs, " +
            $"allocated {(GC.GetTotalAllocatedBytes() - allocated0) / packages / 1024:0} KB, written {(BytesWritten() - written0) / packages / 1024:0} KB per package, gen0 GCs {GC.CollectionCount(0) - gcs0} in all"));

        // 2. Pieces alone, on parsed packages (nothing written).
        var parsed = Enumerable.Range(0, Math.Min(packages, 200)).Select(_ => (Bundle)FhirFormat.Parse(Body(), WireFormat.Json)).ToList();
        var resources = parsed.Select(b => b.Entry.Select(e => e.Resource!).ToList()).ToList();
        var indexer = provider.GetRequiredService<ResourceIndexer>();
        var profiles = provider.GetRequiredService<ProfileEnforcement>();
        var pieces = new Stages();
        foreach (var package in resources)
        {
            List<Resource> copies = [];
            pieces.Time("deep copy x15", () => copies = package.Select(r => (Resource)r.DeepCopy()).ToList());
            pieces.Time("profile check x15", () => { foreach (var r in copies) profiles.Check(r); });
            pieces.Time("serialise x15", () => { foreach (var r in copies) FhirFormat.Serialize(r, WireFormat.Json, pretty: false); });
            pieces.Time("index x15", () => { foreach (var r in copies) indexer.Index(r); });
        }
        foreach (var bundle in parsed)
        {
            await pieces.TimeAsync("conditional matches x4 (search engine)", async () =>
            {
                await using var session = await store.BeginWriteAsync(CancellationToken.None);
                foreach (var request in bundle.Entry.Select(e => e.Request!).Where(r => r.IfNoneExist is not null))
                    await Conditional.MatchAsync(session, search, request.Url!, request.IfNoneExist!, CancellationToken.None);
            });
            await pieces.TimeAsync("empty write transaction (begin+commit)", async () =>
            {
                await using var session = await store.BeginWriteAsync(CancellationToken.None);
                await session.CommitAsync(CancellationToken.None);
            });
        }
        Console.WriteLine($"pieces alone ({parsed.Count} packages, µs per package)");
        pieces.Print(parsed.Count);

        // 3. Concurrent workers.
        if (workers > 1)
        {
            var total = packages * 2;
            var written0Concurrent = BytesWritten();
            long done = 0;
            var cpu0 = Clock.Cpu();
            var wall = Stopwatch.StartNew();
            await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, workers).Select(_ => System.Threading.Tasks.Task.Run(async () =>
            {
                while (Interlocked.Increment(ref done) <= total) await OneAsync(context, Body(), null);
            })));
            var cpu = Clock.Cpu() - cpu0;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{workers} concurrent workers, {total} packages: {total / wall.Elapsed.TotalSeconds:0} tx/s, {cpu / total:0} µs CPU per package"));
            Console.WriteLine($"  written {(BytesWritten() - written0Concurrent) / total / 1024} KB per package");
            if (dialect is SqliteDialect sqlite)
                Console.WriteLine($"  group commit: {sqlite.GroupCommit.Units} units in {sqlite.GroupCommit.Commits} commits since start");
        }
        return 0;
    }

    private static async System.Threading.Tasks.Task OneAsync(Transaction.Services context, byte[] body, Stages? stages)
    {
        stages ??= Stages.Discard;
        Bundle bundle = null!;
        stages.Time("parse (strict)", () => bundle = (Bundle)FhirFormat.Parse(body, WireFormat.Json));
        Bundle response = null!;
        await stages.TimeAsync("transaction (store)", async () => response = await Transaction.RunTransactionAsync(context, bundle, CancellationToken.None));
        stages.Time("serialise response", () => FhirFormat.Serialize(response, WireFormat.Json, pretty: false));
        if (response.Entry.Count != 15 || response.Entry.Any(e => e.Response?.Status?.StartsWith("20", StringComparison.Ordinal) != true))
            throw new InvalidOperationException("unexpected transaction response");
    }

    private sealed class Stages
    {
        public static readonly Stages Discard = new();
        private readonly Dictionary<string, (double Cpu, double Wall)> _totals = [];
        private readonly List<string> _order = [];

        public void Time(string name, Action step)
        {
            var cpu = Clock.Cpu();
            var wall = Stopwatch.GetTimestamp();
            step();
            Add(name, Clock.Cpu() - cpu, Stopwatch.GetElapsedTime(wall).TotalMicroseconds);
        }

        public async System.Threading.Tasks.Task TimeAsync(string name, Func<System.Threading.Tasks.Task> step)
        {
            var cpu = Clock.Cpu();
            var wall = Stopwatch.GetTimestamp();
            await step();
            Add(name, Clock.Cpu() - cpu, Stopwatch.GetElapsedTime(wall).TotalMicroseconds);
        }

        private void Add(string name, double cpu, double wall)
        {
            if (ReferenceEquals(this, Discard)) return;
            if (!_totals.TryGetValue(name, out var t)) _order.Add(name);
            _totals[name] = (t.Cpu + cpu, t.Wall + wall);
        }

        public void Print(int n)
        {
            double cpuSum = 0, wallSum = 0;
            foreach (var name in _order)
            {
                var (cpu, wall) = _totals[name];
                cpuSum += cpu;
                wallSum += wall;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name,-42} {cpu / n,9:0} CPU {wall / n,9:0} wall"));
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"total",-42} {cpuSum / n,9:0} CPU {wallSum / n,9:0} wall"));
        }
    }

    /// <summary>Process CPU time in µs with nanosecond resolution (Process.TotalProcessorTime counts 10 ms ticks).</summary>
    private static class Clock
    {
        [StructLayout(LayoutKind.Sequential)]
        private struct TimeSpec { public long Seconds; public long Nanoseconds; }

        [DllImport("libc", EntryPoint = "clock_gettime")]
        private static extern int ClockGetTime(int clock, out TimeSpec time);

        private const int ProcessCpuTime = 2; // CLOCK_PROCESS_CPUTIME_ID

        public static double Cpu()
        {
            ClockGetTime(ProcessCpuTime, out var t);
            return t.Seconds * 1e6 + t.Nanoseconds / 1e3;
        }
    }

    /// <summary>Bytes this process passed to write(2)/pwrite(2) (WAL frames, checkpoints): the I/O behind the kernel time.</summary>
    private static long BytesWritten()
    {
        foreach (var line in File.ReadLines("/proc/self/io"))
            if (line.StartsWith("wchar:", StringComparison.Ordinal)) return long.Parse(line[6..].Trim(), CultureInfo.InvariantCulture);
        return 0;
    }
}
