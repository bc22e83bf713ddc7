using System.Buffers.Text;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// Bulk export end to end with a client nobody here wrote the HTTP of: tests/browser/bulk-export.mjs drives the npm
/// package fhir-kit-client (discovery, CapabilityStatement, kick-off, status polling) against the real gateway process,
/// authenticated as a SMART backend service with private_key_jwt (RS384), and downloads the NDJSON files with its token.
/// The test checks what it got against what the caller may see (a CSAPA, a Group of two patients only one of whom lets
/// it see prescriptions), that another client's token cannot fetch the files, and that a node killed mid-export leaves a
/// job another node finishes whole (no half file, nothing twice).
/// </summary>
public abstract class BulkClientTests(string dialect, ITestOutputHelper output)
{
    private const string BulkClient = "bulk-csapa";
    private const string BulkFiness = "750000028";
    private const string OtherClient = "other-csapa";
    private const string OtherSecret = "other-csapa-secret-not-for-production";

    private static Dictionary<string, string> Clients(string jwks) => new(TestClient.Settings)
    {
        ["FhirSortie__Clients__1__ClientId"] = BulkClient,
        ["FhirSortie__Clients__1__ActorKind"] = "Csapa",
        ["FhirSortie__Clients__1__OrganizationFiness"] = BulkFiness,
        ["FhirSortie__Clients__1__AllowedScopes"] = "system/*.rs",
        ["FhirSortie__Clients__1__Jwks"] = jwks,
        ["FhirSortie__Clients__2__ClientId"] = OtherClient,
        ["FhirSortie__Clients__2__ActorKind"] = "Csapa",
        ["FhirSortie__Clients__2__OrganizationFiness"] = "750000036",
        ["FhirSortie__Clients__2__AllowedScopes"] = "system/*.rs",
        ["FhirSortie__Clients__2__Secret"] = OtherSecret,
        ["FhirSortie__Export__RetryAfterSeconds"] = "1",
    };

    [Fact]
    public async Task Fhir_kit_client_as_a_backend_service_exports_a_group_and_gets_only_what_the_csapa_may_see()
    {
        var browserFolder = SmartBrowserTests.FindBrowserFolder();
        if (!Runnable(browserFolder)) return;
        using var key = RSA.Create(2048);
        var keyFile = Path.Combine(Path.GetTempPath(), $"bulk-client-{Guid.NewGuid():N}.pem");
        await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());
        try
        {
            using var storage = Storage.Create(dialect);
            await using var server = await ServerProcess.StartAsync(storage, Clients(Jwks(key, "bulk-key-1")));
            using var usmp = Usmp(server);
            var seen = await CreateAsync(usmp, "Patient", """{ "resourceType": "Patient", "name": [ { "family": "Vue", "given": [ "Ana" ] } ] }""");
            var hidden = await CreateAsync(usmp, "Patient", """{ "resourceType": "Patient", "name": [ { "family": "Cache", "given": [ "Ben" ] } ] }""");
            var outsider = await CreateAsync(usmp, "Patient", """{ "resourceType": "Patient", "name": [ { "family": "Dehors", "given": [ "Cy" ] } ] }""");
            var seenRequest = await CreateAsync(usmp, "MedicationRequest", Prescription(seen));
            var hiddenRequest = await CreateAsync(usmp, "MedicationRequest", Prescription(hidden));
            var outsiderRequest = await CreateAsync(usmp, "MedicationRequest", Prescription(outsider));
            await CreateAsync(usmp, "Consent", Consent(seen, "Patient", "MedicationRequest"));
            await CreateAsync(usmp, "Consent", Consent(outsider, "Patient", "MedicationRequest"));
            var group = await CreateAsync(usmp, "Group", $$"""
                { "resourceType": "Group", "type": "person", "actual": true,
                  "member": [ { "entity": { "reference": "Patient/{{seen}}" } }, { "entity": { "reference": "Patient/{{hidden}}" } } ] }
                """);

            var result = await RunClientAsync(browserFolder!, server, keyFile, "bulk-key-1", $"Group/{group}/$export?_type=Patient,MedicationRequest");

            // Discovery gave a backend service all it needs.
            var smart = result.GetProperty("smart");
            Assert.Contains("client_credentials", Strings(smart, "grant_types_supported"));
            Assert.Contains("private_key_jwt", Strings(smart, "token_endpoint_auth_methods_supported"));
            Assert.Contains("RS384", Strings(smart, "token_endpoint_auth_signing_alg_values_supported"));
            Assert.Contains("client-confidential-asymmetric", Strings(smart, "capabilities"));
            Assert.Contains("permission-v2", Strings(smart, "capabilities"));
            Assert.Contains("system/*.rs", Strings(smart, "scopes_supported"));
            Assert.Equal("system/*.rs", result.GetProperty("scope").GetString());
            Assert.Contains("http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data", Strings(result, "instantiates"));

            var manifest = result.GetProperty("manifest");
            Assert.True(manifest.GetProperty("requiresAccessToken").GetBoolean());
            Assert.EndsWith($"/fhir/Group/{group}/$export?_type=Patient,MedicationRequest", manifest.GetProperty("request").GetString());
            Assert.Equal(HttpStatusCode.Unauthorized, (HttpStatusCode)result.GetProperty("withoutToken").GetInt32());
            var lines = new List<(string Type, string Id)>();
            foreach (var file in result.GetProperty("files").EnumerateArray())
            {
                Assert.StartsWith("application/fhir+ndjson", file.GetProperty("contentType").GetString());
                var resources = file.GetProperty("resources").EnumerateArray().Select(r => (r.GetProperty("resourceType").GetString()!, r.GetProperty("id").GetString()!)).ToList();
                Assert.All(resources, r => Assert.Equal(file.GetProperty("type").GetString(), r.Item1));
                Assert.Equal(file.GetProperty("count").GetInt32(), resources.Count);
                lines.AddRange(resources);
            }
            // Exactly the member's data the CSAPA may see: not the hidden member's, not the outsider's.
            Assert.Equal([("MedicationRequest", seenRequest), ("Patient", seen)], lines.Order().ToList());
            Assert.DoesNotContain(lines, l => l.Id == hidden || l.Id == hiddenRequest || l.Id == outsider || l.Id == outsiderRequest);

            // requiresAccessToken: another client's valid token gets nothing.
            using var other = new HttpClient();
            other.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await SecretTokenAsync(server, OtherClient, OtherSecret, "system/*.rs"));
            foreach (var file in result.GetProperty("files").EnumerateArray())
            {
                using var refused = await other.GetAsync(file.GetProperty("url").GetString());
                Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
            }
            using var status = await other.GetAsync(result.GetProperty("statusUrl").GetString());
            Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        }
        finally
        {
            File.Delete(keyFile);
        }
    }

    [Fact]
    public async Task A_node_killed_mid_export_leaves_the_job_to_the_next_node_which_serves_it_whole()
    {
        using var storage = Storage.Create(dialect);
        // Small pages and a short lease: the export takes long enough to be killed in, and is taken over soon after.
        var settings = new Dictionary<string, string>(TestClient.Settings)
        {
            ["FhirSortie__Export__BatchSize"] = "2",
            ["FhirSortie__Export__LeaseMilliseconds"] = "3000",
            ["FhirSortie__Export__PollMilliseconds"] = "300",
            ["FhirSortie__Export__RetryAfterSeconds"] = "1",
        };
        var created = new HashSet<string>(StringComparer.Ordinal);
        string status;
        await using (var first = await ServerProcess.StartAsync(storage, settings))
        {
            using var usmp = Usmp(first);
            var patient = await CreateAsync(usmp, "Patient", """{ "resourceType": "Patient", "name": [ { "family": "Tue", "given": [ "Noeud" ] } ] }""");
            for (var t = 0; t < 4; t++)
            {
                var entries = string.Join(",", Enumerable.Range(0, 100).Select(_ => $$"""{ "resource": {{Prescription(patient)}}, "request": { "method": "POST", "url": "MedicationRequest" } }"""));
                using var bundle = await usmp.PostAsync("", Json($$"""{ "resourceType": "Bundle", "type": "transaction", "entry": [ {{entries}} ] }"""));
                var body = await bundle.Content.ReadAsStringAsync();
                Assert.True(bundle.StatusCode == HttpStatusCode.OK, body);
                foreach (var entry in JsonDocument.Parse(body).RootElement.GetProperty("entry").EnumerateArray())
                {
                    // "[base/]MedicationRequest/{id}/_history/1"
                    var location = entry.GetProperty("response").GetProperty("location").GetString()!;
                    created.Add(location[(location.IndexOf("MedicationRequest/", StringComparison.Ordinal) + "MedicationRequest/".Length)..].Split('/')[0]);
                }
            }
            Assert.Equal(400, created.Count);

            using var kickoff = new HttpRequestMessage(HttpMethod.Get, "$export?_type=MedicationRequest");
            kickoff.Headers.Add("Prefer", "respond-async");
            using var accepted = await usmp.SendAsync(kickoff);
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
            status = accepted.Content.Headers.ContentLocation!.AbsolutePath["/fhir/".Length..];
            // Killed once it has written part of the file.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                using var poll = await usmp.GetAsync(status);
                Assert.Equal(HttpStatusCode.Accepted, poll.StatusCode); // completed before the kill: the test proves nothing
                var progress = poll.Headers.TryGetValues("X-Progress", out var values) ? values.Single() : "";
                output.WriteLine("before the kill: " + progress);
                if (progress.Contains("MedicationRequest: ", StringComparison.Ordinal) && !progress.StartsWith("MedicationRequest: 0 ", StringComparison.Ordinal)) break;
                Assert.True(DateTime.UtcNow < deadline, "the export never started");
                await Task.Delay(50);
            }
            await first.CrashAsync();
        }

        await using var second = await ServerProcess.StartAsync(storage, settings);
        using var client = Usmp(second);
        var manifestDeadline = DateTime.UtcNow.AddSeconds(120);
        JsonElement manifest;
        while (true)
        {
            using var poll = await client.GetAsync(status);
            if (poll.StatusCode == HttpStatusCode.OK)
            {
                manifest = JsonDocument.Parse(await poll.Content.ReadAsStringAsync()).RootElement;
                break;
            }
            Assert.Equal(HttpStatusCode.Accepted, poll.StatusCode);
            Assert.True(DateTime.UtcNow < manifestDeadline, "the second node did not finish the export");
            await Task.Delay(300);
        }
        var ids = new List<string>();
        foreach (var file in manifest.GetProperty("output").EnumerateArray())
        {
            var text = await client.GetStringAsync(file.GetProperty("url").GetString());
            foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries)) ids.Add(JsonDocument.Parse(line).RootElement.GetProperty("id").GetString()!);
            Assert.Equal(file.GetProperty("count").GetInt32(), text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        }
        Assert.Equal(created.Order(StringComparer.Ordinal), ids.Order(StringComparer.Ordinal)); // each once, none missing
    }

    private bool Runnable(string? browserFolder)
    {
        var missing = new List<string>();
        if (browserFolder is null || !Directory.Exists(Path.Combine(browserFolder, "node_modules", "fhir-kit-client"))) missing.Add("tests/browser/node_modules/fhir-kit-client (npm ci)");
        if (!SmartBrowserTests.CanRun("node", "--version")) missing.Add("node");
        if (missing.Count == 0) return true;
        var message = "SKIPPED: the bulk client test needs " + string.Join(", ", missing) + " (./test.sh installs them).";
        Assert.False(Environment.GetEnvironmentVariable("CI") == "true", message);
        output.WriteLine(message);
        return false;
    }

    private async Task<JsonElement> RunClientAsync(string folder, ServerProcess server, string keyFile, string kid, string kickoff)
    {
        var run = new ProcessStartInfo("node") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "bulk-export.mjs", "--iss", server.BaseUrl.AbsoluteUri.TrimEnd('/'), "--client-id", BulkClient, "--key", keyFile, "--kid", kid,
                     "--scope", "system/*.rs", "--kickoff", kickoff })
            run.ArgumentList.Add(arg);
        using var node = Process.Start(run)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        await node.WaitForExitAsync(timeout.Token);
        var text = await stdout;
        output.WriteLine(text);
        output.WriteLine(await stderr);
        var result = text.Split('\n').LastOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
        Assert.True(result is not null, "the bulk client failed:\n" + text + "\n" + await stderr + "\n" + string.Join('\n', server.Output.TakeLast(30)));
        Assert.Equal(0, node.ExitCode);
        return JsonDocument.Parse(result["RESULT ".Length..]).RootElement;
    }

    private static string[] Strings(JsonElement e, string name) => e.GetProperty(name).EnumerateArray().Select(x => x.GetString()!).ToArray();

    /// <summary>The public half of <paramref name="key"/> as the JWK Set a client registers (FhirSortie:Clients:n:Jwks).</summary>
    private static string Jwks(RSA key, string kid)
    {
        var p = key.ExportParameters(false);
        return JsonSerializer.Serialize(new { keys = new[] { new { kty = "RSA", kid, alg = "RS384", use = "sig", n = Base64Url.EncodeToString(p.Modulus), e = Base64Url.EncodeToString(p.Exponent) } } });
    }

    private static HttpClient Usmp(ServerProcess server)
    {
        var http = new HttpClient(server.Authenticated()) { BaseAddress = server.BaseUrl, Timeout = TimeSpan.FromSeconds(120) };
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        return http;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/fhir+json");

    private static async Task<string> CreateAsync(HttpClient http, string type, string json)
    {
        using var response = await http.PostAsync(type, Json(json));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"POST {type}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
    }

    private static string Prescription(string patient) => $$"""
        { "resourceType": "MedicationRequest", "status": "active", "intent": "order", "medicationCodeableConcept": { "text": "amoxicilline 500 mg" },
          "subject": { "reference": "Patient/{{patient}}" } }
        """;

    /// <summary>The patient's consent: the bulk client's CSAPA may see these types (deny by default, one permit).</summary>
    private static string Consent(string patient, params string[] types) => $$"""
        { "resourceType": "Consent", "status": "active",
          "scope": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy" } ] },
          "category": [ { "coding": [ { "system": "http://loinc.org", "code": "59284-0" } ] } ],
          "patient": { "reference": "Patient/{{patient}}" }, "dateTime": "{{DateTime.UtcNow.AddDays(-1):yyyy-MM-dd}}",
          "policy": [ { "uri": "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031927568" } ],
          "provision": { "type": "deny", "provision": [ { "type": "permit",
            "actor": [ { "role": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" } ] },
                         "reference": { "identifier": { "system": "https://finess.esante.gouv.fr", "value": "{{BulkFiness}}" } } } ],
            "class": [ {{string.Join(", ", types.Select(t => $$"""{ "system": "http://hl7.org/fhir/resource-types", "code": "{{t}}" }"""))}} ] } ] } }
        """;

    private static async Task<string> SecretTokenAsync(ServerProcess server, string client, string secret, string scope)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.BaseUrl, "/auth/token"))
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["scope"] = scope }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{client}:{secret}")));
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }
}

public sealed class SqliteBulkClientTests(ITestOutputHelper output) : BulkClientTests("Sqlite", output);

public sealed class PostgresBulkClientTests(ITestOutputHelper output) : BulkClientTests("Postgres", output);
