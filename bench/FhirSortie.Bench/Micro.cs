using System.Diagnostics;
using System.Globalization;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;
using FhirSortie.Server.Storage.Sqlite;

namespace FhirSortie.Bench;

/// <summary>
/// In-process timing of <see cref="ResourceStore.ReadAsync(string, string, CancellationToken)"/> without HTTP:
/// wall time and process CPU time per read. CPU time per read is what to compare on a busy machine.
/// </summary>
public static class Micro
{
    public static async Task<int> ReadAsync(string storage, string idsFile, int seconds, int workers)
    {
        StorageDialect dialect = storage.StartsWith("Host=", StringComparison.Ordinal) ? new PostgresDialect(storage) : new SqliteDialect(storage);
        var conformance = Path.Combine(AppContext.BaseDirectory, "conformance");
        var store = new ResourceStore(dialect, new ResourceIndexer(new SearchParameters([]), Compartments.Load(conformance)), TimeProvider.System);
        var ids = File.ReadAllLines(idsFile).Where(l => l.Length > 0).ToArray();
        for (var i = 0; i < 2000; i++) await Read(store, ids[i % ids.Length]); // warm-up (JIT tiers, pool)

        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        var until = TimeSpan.FromSeconds(seconds);
        long total = 0;
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var random = new Random(w);
            long n = 0;
            while (wall.Elapsed < until)
            {
                await Read(store, ids[random.Next(ids.Length)]);
                n++;
            }
            Interlocked.Add(ref total, n);
        })));
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpu0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{dialect.Name} ReadAsync x{total} with {workers} workers: {total / wall.Elapsed.TotalSeconds:0} reads/s, {cpu.TotalMicroseconds / total:0.0} µs CPU per read"));
        return 0;
    }

    private static async Task Read(ResourceStore store, string id)
    {
        _ = await store.ReadAsync("Patient", id, CancellationToken.None) ?? throw new InvalidOperationException($"Patient/{id} not found");
    }
}
