using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// Logs never carry patient data. The real server writes every log event with all its properties (compact JSON
/// file, as an operator would configure it through Serilog settings) and its console; after a create, a search,
/// a read and a refused body of a distinctive patient, neither holds the name, INS, birth date or query string.
/// ASP.NET Core's own logs are turned up to Information, as an operator chasing a problem would.
/// </summary>
public abstract class LoggingTests(string dialect) : IDisposable
{
    private const string Family = "Quasimodo-Brindille";
    private const string Given = "Zéphyrine";
    private const string Ins = "279035121518989";
    private const string BirthDate = "1957-03-21";

    private readonly string _folder = Directory.CreateTempSubdirectory("fhirsortie-logs").FullName;

    [Fact]
    public async Task Logs_name_route_and_status_but_no_patient_data()
    {
        var logFile = Path.Combine(_folder, "log.json");
        using var storage = Storage.Create(dialect);
        var settings = new Dictionary<string, string>
        {
            ["Serilog__Using__0"] = "Serilog.Sinks.File",
            ["Serilog__WriteTo__0__Name"] = "File",
            ["Serilog__WriteTo__0__Args__path"] = logFile,
            ["Serilog__WriteTo__0__Args__formatter"] = "Serilog.Formatting.Compact.CompactJsonFormatter, Serilog.Formatting.Compact",
            ["Serilog__MinimumLevel__Default"] = "Information",
            ["Serilog__MinimumLevel__Override__Microsoft.AspNetCore"] = "Information",
        };
        await using var server = await ServerProcess.StartAsync(storage, settings);
        using var http = new HttpClient(server.Authenticated()) { BaseAddress = server.BaseUrl };
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));

        var patient = $$"""
            {"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"{{Ins}}"}],
             "name":[{"family":"{{Family}}","given":["{{Given}}"]}],"birthDate":"{{BirthDate}}"}
            """;
        using var created = await http.PostAsync("Patient", Json(patient));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var id = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString();

        using var search = await http.GetAsync($"Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|{Ins}&family={Uri.EscapeDataString(Family)}&given={Uri.EscapeDataString(Given)}");
        Assert.True(search.StatusCode == HttpStatusCode.OK, await search.Content.ReadAsStringAsync());
        using var read = await http.GetAsync($"Patient/{id}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        // Refused by the strict parser: an unknown element and a bad date, both holding patient data.
        var bad = $$"""
            {"resourceType":"Patient","name":[{"family":"{{Family}}"}],"birthDate":"{{BirthDate}}X","nir":"{{Ins}}"}
            """;
        using var refused = await http.PostAsync("Patient", Json(bad));
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using var conditional = new HttpRequestMessage(HttpMethod.Post, "Patient") { Content = Json(patient) };
        conditional.Headers.Add("If-None-Exist", $"identifier=urn:oid:1.2.250.1.213.1.4.8|{Ins}");
        using var existing = await http.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.OK, existing.StatusCode);

        // Request log events are written when each response completes: wait for all five.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        string[] lines = [];
        while (DateTime.UtcNow < deadline)
        {
            lines = ReadShared(logFile);
            if (lines.Count(l => l.Contains("\"RouteTemplate\":\"/fhir", StringComparison.Ordinal)) >= 5) break;
            await Task.Delay(100);
        }
        var requestEvents = lines.Where(l => l.Contains("\"RouteTemplate\":\"/fhir", StringComparison.Ordinal)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(5, requestEvents.Count);
        Assert.Contains(requestEvents, e => Is(e, "POST", "/fhir/{type}", 201));
        Assert.Contains(requestEvents, e => Is(e, "GET", "/fhir/{type}", 200));
        Assert.Contains(requestEvents, e => Is(e, "GET", "/fhir/{type}/{id}", 200));
        Assert.Contains(requestEvents, e => Is(e, "POST", "/fhir/{type}", 400));
        // The client is named (from its access token); the token itself never is ("eyJ" starts every JWT).
        Assert.All(requestEvents, e => Assert.Equal(TestClient.ClientId, e.GetProperty("ClientId").GetString()));

        var everything = lines.Concat(server.Output).ToList();
        // The read's X-Request-Id finds its log line.
        var requestId = Assert.Single(read.Headers.GetValues("X-Request-Id"));
        Assert.Contains(server.Output, l => l.Contains("HTTP GET /fhir/{type}/{id} responded 200", StringComparison.Ordinal) && l.Contains($"(request {requestId})", StringComparison.Ordinal));
        // Nor the resource id (a path): structured sinks write every property of an event, not only the message's.
        Assert.All(requestEvents, e => Assert.False(e.TryGetProperty("RequestPath", out _), "no RequestPath property"));
        foreach (var secret in new[] { Family, Given, "Quasimodo", Ins, BirthDate, "1957-03", "identifier=", "family=", "given=", "eyJ", TestClient.Secret, id! })
        {
            var leaks = everything.Where(l => l.Contains(secret, StringComparison.OrdinalIgnoreCase)).ToList();
            Assert.True(leaks.Count == 0, $"'{secret}' appears in the logs:\n{string.Join('\n', leaks)}");
        }
    }

    private static bool Is(JsonElement e, string method, string template, int status) =>
        e.GetProperty("RequestMethod").GetString() == method
        && e.GetProperty("RouteTemplate").GetString() == template
        && e.GetProperty("StatusCode").GetInt32() == status;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/fhir+json");

    /// <summary>The server still has the file open for writing.</summary>
    private static string[] ReadShared(string path)
    {
        if (!File.Exists(path)) return [];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }
}

public sealed class SqliteLoggingTests() : LoggingTests("Sqlite");

public sealed class PostgresLoggingTests() : LoggingTests("Postgres");
