extern alias server;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Bench;

/// <summary>
/// The exit-package transaction through the whole gateway, in-process: the real Program (authentication with a real
/// client_credentials token, access point, consent write hook, Provenance and audit row, subscriptions, the audit
/// materialiser in the background) on an in-memory TestServer, so no socket and no wrk compete for the CPU, and the
/// warm-up can be long enough for tiered JIT to settle (bench/run.sh's 3 s warm-up is not: its CPU per transaction
/// carries JIT compilation). SQLite only (a data folder).
/// Prints CPU µs per package (whole process, materialiser included), allocations, bytes written, and the rows each
/// table gained per package (index rows by table, resources, versions, audit), then the same with concurrent workers.
/// </summary>
public static class MicroTxHttp
{
    private const string ClientId = "bench-usmp";
    private const string Secret = "bench-usmp-secret-local-only";

    public static async Task<int> RunAsync(string dataDirectory, int packages, int workers)
    {
        Directory.CreateDirectory(dataDirectory);
        await using var gateway = new BenchGateway(dataDirectory);
        Environment.SetEnvironmentVariable("FHIRSORTIE_BENCH_CLIENT", $"{ClientId}:{Secret}");
        using var http = new HttpClient(new BenchToken("http://localhost/fhir", gateway.Server.CreateHandler())) { BaseAddress = new Uri("http://localhost/fhir/") };
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        // As bench/lua/post.lua sends it (MICRO_TX_PREFER=return=representation: the entries carry the resources).
        http.DefaultRequestHeaders.Add("Prefer", Environment.GetEnvironmentVariable("MICRO_TX_PREFER") ?? "return=minimal");

        var template = ExitPackage.Serialize(ExitPackage.Build(DateTimeOffset.UtcNow));
        long next = Random.Shared.Next(1, 90) * 1_000_000L;
        string Body() => ExitPackage.Instantiate(template, Interlocked.Increment(ref next));

        var warmUp = int.TryParse(Environment.GetEnvironmentVariable("WARMUP_PACKAGES"), out var w) ? w : 600;
        for (var i = 0; i < warmUp; i++) await PostAsync(http, Body());
        await SettleAsync();
        Console.WriteLine($"warmed up ({warmUp} packages)");

        var database = Path.Combine(dataDirectory, "fhirsortie.db");
        // The trace costs CPU of its own (a callback per statement): only on request.
        var trace = Environment.GetEnvironmentVariable("MICRO_TX_STATEMENTS") is { Length: > 0 } ? StatementTrace.Attach(gateway.Services) : null;
        Console.WriteLine($"measuring (pid {Environment.ProcessId})");
        var rows0 = await CountsAsync(database);
        var process = Process.GetCurrentProcess();
        var (user0, system0, allocated0, written0, read0) = (process.UserProcessorTime, process.PrivilegedProcessorTime, GC.GetTotalAllocatedBytes(), Io("wchar"), Io("rchar"));
        var cpu0 = Cpu();
        var wall = Stopwatch.StartNew();
        for (var i = 0; i < packages; i++) await PostAsync(http, Body());
        var wallOne = wall.Elapsed;
        await SettleAsync();
        var cpu = Cpu() - cpu0;
        process.Refresh();
        var rows1 = await CountsAsync(database);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"one at a time, {packages} packages: {cpu / packages:0} µs CPU per package (whole process, audit materialisation included; user " +
            $"{(process.UserProcessorTime - user0).TotalMicroseconds / packages:0}, kernel {(process.PrivilegedProcessorTime - system0).TotalMicroseconds / packages:0}), " +
            $"{wallOne.TotalMicroseconds / packages:0} µs wall, allocated {(GC.GetTotalAllocatedBytes() - allocated0) / packages / 1024:0} KB, " +
            $"written {(Io("wchar") - written0) / packages / 1024:0} KB, read {(Io("rchar") - read0) / packages / 1024:0} KB per package"));
        Console.WriteLine("rows added per package:");
        foreach (var (table, count) in rows1)
        {
            var added = (count - rows0.GetValueOrDefault(table)) / (double)packages;
            if (added != 0) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {table,-24} {added,8:0.0}"));
        }
        trace?.Print(packages);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"index rows (search_* + compartment)",-24} " +
            $"{rows1.Where(r => r.Key.StartsWith("search_", StringComparison.Ordinal) && r.Key is not ("search_sets" or "search_set_entries") || r.Key == "resource_compartment").Sum(r => r.Value - rows0.GetValueOrDefault(r.Key)) / (double)packages,8:0.0}"));

        if (workers > 1)
        {
            // MICRO_TX_CONCURRENT: packages of this phase (default twice the one-at-a-time count), e.g. long enough to profile.
            var total = int.TryParse(Environment.GetEnvironmentVariable("MICRO_TX_CONCURRENT"), out var c) ? c : packages * 2;
            long done = 0;
            var written1 = Io("wchar");
            Console.WriteLine($"concurrent phase ({workers} workers, {total} packages)");
            cpu0 = Cpu();
            wall.Restart();
            await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(async () =>
            {
                while (Interlocked.Increment(ref done) <= total) await PostAsync(http, Body());
            })));
            var elapsed = wall.Elapsed;
            await SettleAsync();
            cpu = Cpu() - cpu0;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{workers} concurrent workers, {total} packages: {total / elapsed.TotalSeconds:0} tx/s, {cpu / total:0} µs CPU per package, " +
                $"written {(Io("wchar") - written1) / total / 1024} KB per package"));
        }
        return 0;
    }

    /// <summary>
    /// Counts the SQL statements run on the SQLite writer connection (sqlite3_trace), i.e. by every write session, the
    /// searches inside them and the audit materialiser; reads on other connections are not counted. Needs the kept
    /// writer connection of SqliteGroupCommit (reached by reflection: a bench-only look inside).
    /// </summary>
    private sealed class StatementTrace
    {
        private readonly Dictionary<string, int> _counts = new(StringComparer.Ordinal);
        private bool _on;

        public static StatementTrace? Attach(IServiceProvider services)
        {
            if (services.GetService(typeof(server::FhirSortie.Server.Storage.StorageDialect)) is not server::FhirSortie.Server.Storage.Sqlite.SqliteDialect sqlite) return null;
            var field = sqlite.GroupCommit.GetType().GetField("_connection", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance);
            if (field?.GetValue(sqlite.GroupCommit) is not SqliteConnection { Handle: { } handle })
            {
                Console.WriteLine("(statement count: no kept writer connection in this build)");
                return null;
            }
            var trace = new StatementTrace { _on = true };
            SQLitePCL.raw.sqlite3_trace(handle, (_, sql) =>
            {
                if (!trace._on) return;
                // Grouped by their start (values are inlined in the traced text).
                var key = sql.Length > 60 ? sql[..60] : sql;
                lock (trace._counts) trace._counts[key] = trace._counts.GetValueOrDefault(key) + 1;
            }, null);
            return trace;
        }

        public void Print(int packages)
        {
            _on = false;
            lock (_counts)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"SQL statements (writer)",-24} {_counts.Values.Sum() / (double)packages,8:0.0}"));
                foreach (var (sql, n) in _counts.OrderByDescending(c => c.Value).Take(int.TryParse(Environment.GetEnvironmentVariable("MICRO_TX_STATEMENTS"), out var top) ? top : 20))
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"      {n / (double)packages,6:0.0}  {sql.ReplaceLineEndings(" ")}"));
            }
        }
    }

    private static async Task PostAsync(HttpClient http, string body)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/fhir+json");
        using var response = await http.PostAsync("", content);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"transaction answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>Lets the audit materialiser catch up, so that its work is counted in the measured phase.</summary>
    private static Task SettleAsync() => Task.Delay(TimeSpan.FromSeconds(3));

    private static async Task<Dictionary<string, long>> CountsAsync(string database)
    {
        await using var connection = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = connection.CreateCommand())
        {
            list.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name";
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync()) tables.Add(reader.GetString(0));
        }
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var table in tables)
        {
            await using var count = connection.CreateCommand();
            count.CommandText = $"SELECT count(*) FROM \"{table}\"";
            counts[table] = Convert.ToInt64(await count.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }
        return counts;
    }

    private sealed class BenchGateway(string dataDirectory) : WebApplicationFactory<server::Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Production");
            builder.UseContentRoot(Path.Combine(Repository.Root(), "src", "FhirSortie.Server"));
            builder.UseSetting("FhirSortie:Storage:Provider", "Sqlite");
            builder.UseSetting("FhirSortie:DataDirectory", dataDirectory);
            builder.UseSetting("FhirSortie:Clients:0:ClientId", ClientId);
            builder.UseSetting("FhirSortie:Clients:0:Secret", Secret);
            builder.UseSetting("FhirSortie:Clients:0:ActorKind", "Usmp");
            builder.UseSetting("FhirSortie:Clients:0:OrganizationFiness", "750000010");
            builder.UseSetting("FhirSortie:Clients:0:AllowedScopes", "system/*.cruds");
            // Request logging as in production would print one line per package; the bench's own output matters here.
            builder.UseSetting("Serilog:MinimumLevel:Default", Environment.GetEnvironmentVariable("MICRO_TX_LOG_LEVEL") ?? "Warning");
        }
    }

    private static long Io(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/io"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal)) return long.Parse(line[(field.Length + 1)..].Trim(), CultureInfo.InvariantCulture);
        return 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds; public long Nanoseconds; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    /// <summary>Process CPU time (CLOCK_PROCESS_CPUTIME_ID) in µs.</summary>
    private static double Cpu()
    {
        ClockGetTime(2, out var t);
        return t.Seconds * 1e6 + t.Nanoseconds / 1e3;
    }
}
