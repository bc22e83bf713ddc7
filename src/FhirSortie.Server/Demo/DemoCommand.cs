using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using FhirSortie.Server.Security;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace FhirSortie.Server.Demo;

/// <summary>
/// Loads the demo packages (<see cref="DemoPackages"/>) in demo mode only: the `seed-demo` command (start on a
/// loopback port, seed, exit) and `--seed-demo` / `FhirSortie:Demo:Seed=true` (seed once the server listens, then
/// serve). Both post over HTTP as the usmp-demo client with a real token, so audit, Provenance, labels and consent
/// grants are exactly those of a USMP posting its packages. Demo mode is never on in Production (DemoClients.IsOn),
/// so fictitious patients cannot land in a production database by accident.
/// </summary>
public static class DemoCommand
{
    public const string Command = "seed-demo";
    public const string SeedKey = "FhirSortie:Demo:Seed";
    private const string Client = "usmp-demo";

    /// <summary>`--seed-demo` (a flag) as a configuration value: the command-line provider would otherwise take the next argument as its value.</summary>
    public static string[] RewriteArguments(string[] args) =>
        [.. args.Select(a => a == "--" + Command ? $"--{SeedKey}=true" : a)];

    public static bool SeedAtStart(WebApplication app) => app.Configuration.GetValue<bool>(SeedKey);

    /// <summary>The seed-demo command: 0 when seeded, 2 when demo mode is off.</summary>
    public static async Task<int> RunAsync(WebApplication app, CancellationToken ct)
    {
        if (!DemoClients.IsOn(app.Configuration, app.Environment))
        {
            await Console.Error.WriteLineAsync("seed-demo needs DEMO MODE (ASPNETCORE_ENVIRONMENT=Development on the embedded SQLite store, or FhirSortie:DemoMode=true outside Production).");
            return 2;
        }
        // Its own loopback port, whatever --urls says: the command serves nobody but itself.
        app.Urls.Clear();
        app.Urls.Add("http://127.0.0.1:0");
        await app.StartAsync(ct);
        try
        {
            await SeedAsync(app, ct);
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
        }
        return 0;
    }

    /// <summary>--seed-demo at start: serve, seed once listening, keep serving. Outside demo mode: a warning, no data.</summary>
    public static async Task RunWithSeedAsync(WebApplication app)
    {
        await app.StartAsync();
        if (DemoClients.IsOn(app.Configuration, app.Environment)) await SeedAsync(app, app.Lifetime.ApplicationStopping);
        else app.Logger.LogWarning("{Setting} is ignored: demo mode is off.", SeedKey);
        await app.WaitForShutdownAsync();
    }

    private static async Task SeedAsync(WebApplication app, CancellationToken ct)
    {
        var origin = LoopbackOrigin(app) ?? throw new InvalidOperationException("seed-demo needs an http:// listening address.");
        using var http = new HttpClient { BaseAddress = new Uri(origin + "/fhir/"), Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(http, origin, ct));
        var report = await new DemoSeeder(http).SeedAsync(app.Services.GetRequiredService<TimeProvider>().GetUtcNow(), ct);
        // Package names and counts only: no patient data in the output.
        foreach (var (package, created, existing) in report.Packages)
            Console.WriteLine($"seed-demo: {package,-24} {created,3} created, {existing,3} already there");
        Console.WriteLine($"seed-demo: {report.Withdrawn} consent withdrawal(s) applied");
    }

    private static async Task<string> TokenAsync(HttpClient http, string origin, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, origin + "/auth/token")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["scope"] = "system/*.cruds" }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Client}:{Client}-secret")));
        using var response = await http.SendAsync(request, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"seed-demo could not get a token for {Client}: {(int)response.StatusCode} {body}");
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("access_token").GetString()!;
    }

    /// <summary>The first http:// address the server listens on, with a wildcard host replaced by 127.0.0.1.</summary>
    private static string? LoopbackOrigin(WebApplication app)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        foreach (var address in addresses)
        {
            if (!address.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) continue;
            var rest = address["http://".Length..];
            var colon = rest.LastIndexOf(':');
            var host = colon < 0 ? rest : rest[..colon];
            var port = colon < 0 ? "80" : rest[(colon + 1)..].TrimEnd('/');
            if (host is "0.0.0.0" or "[::]" or "+" or "*" or "localhost") host = "127.0.0.1";
            return $"http://{host}:{port}";
        }
        return null;
    }
}
