using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// End to end with a client nobody here wrote: SMART's JavaScript library (npm fhirclient) in headless Chromium,
/// driven by tests/browser/run.mjs (Playwright), does a standalone launch against the real gateway process: login
/// page, patient picker, code exchange with PKCE, then reads the patient and prints it.
/// </summary>
public sealed class SmartBrowserTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task Fhirclient_in_chromium_does_a_standalone_launch_and_reads_the_picked_patient()
    {
        var browserFolder = FindBrowserFolder();
        var missing = new List<string>();
        if (!File.Exists(Chromium)) missing.Add(Chromium);
        if (browserFolder is null || !Directory.Exists(Path.Combine(browserFolder, "node_modules", "fhirclient"))) missing.Add("tests/browser/node_modules (npm ci)");
        if (!CanRun("node", "--version")) missing.Add("node");
        if (missing.Count > 0)
        {
            // test.sh installs all of it; under CI a missing piece is a failure, not a silent pass.
            var message = "SKIPPED: browser end-to-end test needs " + string.Join(", ", missing) + " (./test.sh installs them).";
            Assert.False(Environment.GetEnvironmentVariable("CI") == "true", message);
            output.WriteLine(message);
            return;
        }

        var appPort = FreePort();
        using var storage = Storage.Create("Sqlite");
        await using var server = await ServerProcess.StartAsync(storage, new Dictionary<string, string>
        {
            // Demo mode for the demo practitioner and the usmp-demo client (a Development-like start).
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["FhirSortie__DemoMode"] = "true",
            ["FhirSortie__Clients__0__ClientId"] = "browser-app",
            ["FhirSortie__Clients__0__ActorKind"] = "Telemedicine",
            ["FhirSortie__Clients__0__OrganizationFiness"] = "750000051",
            ["FhirSortie__Clients__0__AllowedScopes"] = "launch launch/patient openid fhirUser patient/*.rs",
            ["FhirSortie__Clients__0__RedirectUris__0"] = $"http://127.0.0.1:{appPort}/index.html",
        });
        var iss = server.BaseUrl.AbsoluteUri.TrimEnd('/');
        var family = "Browser" + Guid.NewGuid().ToString("N")[..8];
        var patientId = await CreatePatientAsync(server, family);

        var run = new ProcessStartInfo("node")
        {
            WorkingDirectory = browserFolder!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "run.mjs", "--app-port", appPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--iss", iss,
                     "--client-id", "browser-app", "--user", "dr-demo", "--password", "dr-demo-password", "--search", family, "--patient", patientId })
            run.ArgumentList.Add(arg);
        using var node = Process.Start(run)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await node.WaitForExitAsync(timeout.Token);
        var text = await stdout;
        output.WriteLine(text);
        output.WriteLine(await stderr);

        var result = text.Split('\n').LastOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
        Assert.True(result is not null, "the app did not show a patient:\n" + text + "\n" + string.Join('\n', server.Output.TakeLast(30)));
        Assert.Equal(0, node.ExitCode);
        var shown = JsonDocument.Parse(result["RESULT ".Length..]).RootElement;
        Assert.Equal(patientId, shown.GetProperty("tokenPatient").GetString());
        Assert.Equal("Patient", shown.GetProperty("patient").GetProperty("resourceType").GetString());
        Assert.Equal(patientId, shown.GetProperty("patient").GetProperty("id").GetString());
        Assert.Equal(family, shown.GetProperty("patient").GetProperty("name")[0].GetProperty("family").GetString());
        Assert.Equal("Practitioner/dr-demo", shown.GetProperty("fhirUser").GetString());
    }

    private static async Task<string> CreatePatientAsync(ServerProcess server, string family)
    {
        using var http = new HttpClient();
        using var tokenResponse = await http.PostAsync(new Uri(server.BaseUrl, "/auth/token"), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = "usmp-demo",
            ["client_secret"] = "usmp-demo-secret",
            ["scope"] = "system/*.cruds",
        }));
        Assert.Equal(HttpStatusCode.OK, tokenResponse.StatusCode);
        var token = (await tokenResponse.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.BaseUrl, "Patient"))
        {
            Content = new StringContent($$"""{ "resourceType": "Patient", "name": [ { "family": "{{family}}", "given": [ "Ana" ] } ], "birthDate": "1985-06-07" }""",
                Encoding.UTF8, "application/fhir+json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        // The app is another organisation (FINESS 750000051): the patient's consent lets it read the Patient (issue 5).
        using var consent = new HttpRequestMessage(HttpMethod.Post, new Uri(server.BaseUrl, "Consent"))
        {
            Content = new StringContent($$"""
                { "resourceType": "Consent", "status": "active",
                  "scope": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy" } ] },
                  "category": [ { "coding": [ { "system": "http://loinc.org", "code": "59284-0" } ] } ],
                  "patient": { "reference": "Patient/{{id}}" }, "dateTime": "{{DateTime.UtcNow:yyyy-MM-dd}}",
                  "policy": [ { "uri": "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031927568" } ],
                  "provision": { "type": "deny", "provision": [ { "type": "permit",
                    "actor": [ { "role": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" } ] },
                                 "reference": { "identifier": { "system": "https://finess.esante.gouv.fr", "value": "750000051" } } } ],
                    "class": [ { "system": "http://hl7.org/fhir/resource-types", "code": "Patient" } ] } ] } }
                """, Encoding.UTF8, "application/fhir+json"),
        };
        consent.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var consented = await http.SendAsync(consent);
        Assert.True(consented.StatusCode == HttpStatusCode.Created, await consented.Content.ReadAsStringAsync());
        return id;
    }

    internal static string? FindBrowserFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "browser", "run.mjs");
            if (File.Exists(candidate)) return Path.GetDirectoryName(candidate);
        }
        return null;
    }

    internal static bool CanRun(string file, string args)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, UseShellExecute = false });
            process?.WaitForExit(10_000);
            return process?.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
