using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using FhirSortie.Server.Demo;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Bench;

/// <summary>
/// Issue 22's page timings: loads a crowd through the API (<see cref="DemoPackages.Crowd"/>: every person leaving the
/// demo USMP within 14 days, the first ones with a hand-off to CSAPA A), signs in to the portal as a browser does
/// (cookies, the gateway's login form, code + PKCE inside the portal) and times the inbox (csapa-referent) and the
/// Sorties board (usmp-medecin). Server time is the gateway's own request log line of each page ("responded 200 in
/// X ms (request id)", matched by the answer's X-Request-Id); the API calls a page made are the /fhir lines logged
/// between it and the page before (requests are sequential).
/// </summary>
public static partial class PortalTimings
{
    private static readonly BaseFhirJsonSerializer Serializer = new(ModelInfo.ModelInspector);

    public static async Task<int> RunAsync(string baseUrl, string serverLog, int handoffs, int exits, int requests, int warmup)
    {
        baseUrl = baseUrl.TrimEnd('/');
        var clock = Stopwatch.StartNew();
        await LoadAsync(baseUrl, handoffs, exits);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loaded {exits} people leaving ({handoffs} with a hand-off to CSAPA A) in {clock.Elapsed.TotalSeconds:0.0} s"));

        var pages = new (string User, string Path, Regex Row, int Expected)[]
        {
            ("csapa-referent", "/portal/prises-en-charge", HandoffRow(), handoffs),
            ("usmp-medecin", "/portal/sorties", ExitRow(), exits),
        };
        var measured = new List<(string Path, List<(string RequestId, double ClientMs)> Samples, double CpuMs)>();
        // The gateway's CPU time per page (user + system, /proc): it moves far less than elapsed time on a shared machine.
        var gateway = Environment.GetEnvironmentVariable("GATEWAY_PID");
        foreach (var (user, path, row, expected) in pages)
        {
            using var browser = await SignInAsync(baseUrl, user);
            var samples = new List<(string, double)>();
            double cpuStart = 0;
            for (var i = 0; i < warmup + requests; i++)
            {
                if (i == warmup) cpuStart = CpuMs(gateway);
                var started = Stopwatch.GetTimestamp();
                using var response = await browser.GetAsync(baseUrl + path);
                var html = await response.Content.ReadAsStringAsync();
                var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                var rows = row.Count(html);
                if (response.StatusCode != HttpStatusCode.OK || rows < expected)
                    throw new InvalidOperationException($"{path} as {user}: {(int)response.StatusCode} with {rows} rows, {expected} expected");
                if (i >= warmup) samples.Add((response.Headers.GetValues("X-Request-Id").Single(), ms));
            }
            measured.Add((path, samples, (CpuMs(gateway) - cpuStart) / requests));
        }

        // Serilog writes the console asynchronously: give the last lines a moment.
        await System.Threading.Tasks.Task.Delay(1500);
        var log = await ReadSharedAsync(serverLog);
        var table = new StringBuilder("| page | requests | server p50 ms | server p95 ms | server max ms | client p50 ms | API calls per page | their server time p50 ms | gateway CPU ms per page |\n|---|---|---|---|---|---|---|---|---|\n");
        foreach (var (path, samples, cpu) in measured)
        {
            var server = new List<double>();
            var calls = new List<int>();
            var apiMs = new List<double>();
            foreach (var (id, _) in samples)
            {
                var at = log.FindIndex(l => l.Id == id);
                if (at < 0) throw new InvalidOperationException($"request {id} of {path} is not in {serverLog}");
                server.Add(log[at].Ms);
                var before = log.FindLastIndex(at - 1, l => l.Route.StartsWith("/portal", StringComparison.Ordinal));
                var api = log.Skip(before + 1).Take(at - before - 1).Where(l => l.Route.StartsWith("/fhir", StringComparison.Ordinal)).ToList();
                calls.Add(api.Count);
                apiMs.Add(api.Sum(l => l.Ms));
            }
            table.Append(string.Create(CultureInfo.InvariantCulture,
                $"| `GET {path}` | {samples.Count} | {Percentile(server, 50):0.0} | {Percentile(server, 95):0.0} | {server.Max():0.0} | {Percentile([.. samples.Select(s => s.ClientMs)], 50):0.0} | {calls.Min()}–{calls.Max()} | {Percentile(apiMs, 50):0.0} | {(gateway is null ? "—" : cpu.ToString("0", CultureInfo.InvariantCulture))} |\n"));
        }
        Console.Write(table);
        return 0;
    }

    private static async System.Threading.Tasks.Task LoadAsync(string baseUrl, int handoffs, int exits)
    {
        using var http = new HttpClient(new BenchToken(baseUrl + "/fhir", new SocketsHttpHandler { MaxConnectionsPerServer = 4 })) { Timeout = TimeSpan.FromSeconds(120) };
        var now = DateTimeOffset.UtcNow;
        async System.Threading.Tasks.Task PostAsync(int n)
        {
            var package = DemoPackages.Crowd(n, now, handoff: n < handoffs);
            using var content = new StringContent(Serializer.SerializeToString(package.Transaction), Encoding.UTF8, "application/fhir+json");
            using var response = await http.PostAsync(baseUrl + "/fhir", content);
            if (!response.IsSuccessStatusCode)
                throw new InvalidOperationException($"package {n}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
        // The first alone: it creates the shared Organizations and Practitioner the others then match.
        await PostAsync(0);
        if (handoffs > 0 && handoffs < exits) await PostAsync(exits - 1);
        await Parallel.ForEachAsync(Enumerable.Range(1, Math.Max(0, exits - 2)), new ParallelOptions { MaxDegreeOfParallelism = 4 },
            async (n, _) => await PostAsync(n));
    }

    /// <summary>A browser of its own: cookies, redirects followed, the login form posted with its hidden fields.</summary>
    public static async Task<HttpClient> SignInAsync(string baseUrl, string user)
    {
        var browser = new HttpClient(new SocketsHttpHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = true, UseProxy = false }) { Timeout = TimeSpan.FromSeconds(120) };
        using var login = await browser.GetAsync(baseUrl + "/portal/connexion");
        var form = await login.Content.ReadAsStringAsync();
        if (login.RequestMessage?.RequestUri?.AbsolutePath != "/auth/login") throw new InvalidOperationException($"no login page for {user}: {login.RequestMessage?.RequestUri}");
        var fields = HiddenField().Matches(form).Select(m => new KeyValuePair<string, string>(WebUtility.HtmlDecode(m.Groups[1].Value), WebUtility.HtmlDecode(m.Groups[2].Value)))
            .Append(new("username", user)).Append(new("password", user + "-password"));
        using var signedIn = await browser.PostAsync(baseUrl + "/auth/login", new FormUrlEncodedContent(fields));
        if (signedIn.RequestMessage?.RequestUri?.AbsolutePath.StartsWith("/portal/", StringComparison.Ordinal) != true || !signedIn.IsSuccessStatusCode)
            throw new InvalidOperationException($"{user} not signed in: {(int)signedIn.StatusCode} at {signedIn.RequestMessage?.RequestUri?.AbsolutePath}");
        return browser;
    }

    /// <summary>utime + stime of the process, in ms (fields 14 and 15 of /proc/PID/stat, at 100 ticks a second); 0 without a PID.</summary>
    private static double CpuMs(string? pid)
    {
        if (pid is null) return 0;
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) * 10.0;
    }

    private sealed record LogLine(string Route, double Ms, string Id);

    /// <summary>The gateway's request log lines (Program.cs: "HTTP {Method} {RouteTemplate} responded {Status} in {Elapsed} ms (request {Id})").</summary>
    private static async Task<List<LogLine>> ReadSharedAsync(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var lines = new List<LogLine>();
        while (await reader.ReadLineAsync() is { } line)
            if (RequestLine().Match(line) is { Success: true } m)
                lines.Add(new LogLine(m.Groups[1].Value, double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), m.Groups[3].Value));
        return lines;
    }

    public static double Percentile(IReadOnlyList<double> values, int percent)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Clamp((int)Math.Ceiling(percent / 100.0 * sorted.Count) - 1, 0, sorted.Count - 1)];
    }

    [GeneratedRegex("<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\">")]
    private static partial Regex HiddenField();

    [GeneratedRegex(@"HTTP \w+ (\S+) responded \d+ in ([0-9.]+) ms \(request ([^)]+)\)")]
    private static partial Regex RequestLine();

    // One row per listed hand-off (its link), and per person on the board (the "né(e) le" line).
    [GeneratedRegex("Voir la demande<span")]
    private static partial Regex HandoffRow();

    [GeneratedRegex("né\\(e\\) le")]
    private static partial Regex ExitRow();
}
