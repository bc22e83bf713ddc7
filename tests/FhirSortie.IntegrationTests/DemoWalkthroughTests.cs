using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// The demo through the real server process in demo mode, loaded at start with FhirSortie:Demo:Seed=true: the README's
/// walkthrough script (docs/walkthrough.sh) runs green against it, and a telemedicine app launched by the USMP for a
/// patient (POST /auth/launch → authorization code with PKCE → token with patient) opens $patient-context.
/// </summary>
public sealed partial class DemoWalkthroughTests
{
    private const string PlannedExitIns = "186037505612307";

    private static Dictionary<string, string> DemoSettings() => new()
    {
        ["ASPNETCORE_ENVIRONMENT"] = "Development",
        // Default demo mode is Development on SQLite only; PostgreSQL needs it said.
        ["FhirSortie__DemoMode"] = "true",
        ["FhirSortie__Demo__Seed"] = "true",
    };

    internal static async Task<ServerProcess> SeededServerAsync(Storage storage)
    {
        var server = await ServerProcess.StartAsync(storage, DemoSettings());
        await server.WaitForOutputAsync(lines => lines.Any(l => l.Contains("consent withdrawal(s) applied", StringComparison.Ordinal)), TimeSpan.FromMinutes(3));
        return server;
    }

    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task Readme_walkthrough_runs_against_seeded_demo_data(string dialect)
    {
        using var storage = Storage.Create(dialect);
        await using var server = await SeededServerAsync(storage);
        var script = Path.Combine(RepositoryRoot(), "docs", "walkthrough.sh");
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(script);
        info.ArgumentList.Add(new Uri(server.BaseUrl, "/").ToString().TrimEnd('/'));
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        var output = await stdout + await stderr;

        Assert.True(process.ExitCode == 0, output);
        Assert.Contains("ok: CSAPA B sees none (0)", output, StringComparison.Ordinal);
        Assert.Contains("ok: SPIP reads the liaison letter (404)", output, StringComparison.Ordinal);
        Assert.Contains("ok: CSAPA A, CSAPA B and SPIP are in the audit trail (listed)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Telemedicine_app_launched_for_a_patient_opens_its_context_with_a_real_token()
    {
        using var storage = Storage.Create("Sqlite");
        await using var server = await SeededServerAsync(storage);
        var origin = new Uri(server.BaseUrl, "/");
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true }) { BaseAddress = origin };

        var usmp = await ClientTokenAsync(http, "usmp-demo", "system/*.cruds");
        var patient = await PatientIdAsync(http, usmp);

        // The USMP's record opens the app on the patient: a launch value for telemed-demo.
        using var mint = new HttpRequestMessage(HttpMethod.Post, "/auth/launch")
        {
            Content = JsonContent.Create(new Dictionary<string, string> { ["patient"] = "Patient/" + patient, ["client_id"] = "telemed-demo" }),
        };
        mint.Headers.Authorization = new AuthenticationHeaderValue("Bearer", usmp);
        using var minted = await http.SendAsync(mint);
        Assert.Equal(HttpStatusCode.OK, minted.StatusCode);
        var launch = (await minted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("launch").GetString()!;

        // Authorization code with PKCE S256; the practitioner signs in on the gateway's login page.
        var verifier = Base64Url(RandomNumberGenerator.GetBytes(32));
        var challenge = Base64Url(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        const string redirect = "http://127.0.0.1:8765/callback";
        var authorize = "/auth/authorize?" + string.Join('&', new Dictionary<string, string>
        {
            ["response_type"] = "code",
            ["client_id"] = "telemed-demo",
            ["redirect_uri"] = redirect,
            ["scope"] = "launch openid fhirUser patient/*.rs user/Practitioner.rs user/PractitionerRole.rs user/Organization.rs user/Location.rs",
            ["state"] = "demo-state",
            ["aud"] = server.BaseUrl.ToString().TrimEnd('/'),
            ["launch"] = launch,
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
        }.Select(p => $"{p.Key}={Uri.EscapeDataString(p.Value)}"));
        var callback = await FollowToAppAsync(http, authorize);
        Assert.StartsWith(redirect, callback.ToString(), StringComparison.Ordinal);
        var code = callback.Query.TrimStart('?').Split('&').Select(p => p.Split('=', 2)).Single(p => p[0] == "code")[1];
        code = Uri.UnescapeDataString(code);

        using var redeem = new HttpRequestMessage(HttpMethod.Post, "/auth/token")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "authorization_code", ["code"] = code, ["redirect_uri"] = redirect, ["code_verifier"] = verifier,
            }),
        };
        redeem.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("telemed-demo:telemed-demo-secret")));
        using var redeemed = await http.SendAsync(redeem);
        var tokenBody = await redeemed.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(redeemed.StatusCode == HttpStatusCode.OK, tokenBody.ToString());
        Assert.Equal(patient, tokenBody.GetProperty("patient").GetString());
        var token = tokenBody.GetProperty("access_token").GetString()!;

        using var context = new HttpRequestMessage(HttpMethod.Get, $"/fhir/Patient/{patient}/$patient-context");
        context.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var opened = await http.SendAsync(context);
        var bundle = await opened.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(opened.StatusCode == HttpStatusCode.OK, bundle.ToString());
        var types = bundle.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("resource").GetProperty("resourceType").GetString()).ToList();
        Assert.Equal(4, types.Count(t => t == "MedicationRequest"));
        Assert.Contains("DocumentReference", types);
        Assert.Contains("Practitioner", types);

        // Outside its patient: refused.
        using var other = new HttpRequestMessage(HttpMethod.Get, "/fhir/Patient?name=Modèle");
        other.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var confined = await http.SendAsync(other);
        Assert.Equal(0, (await confined.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("total").GetInt32());
    }

    /// <summary>Follows the browser's redirects (signing in as the demo practitioner when asked) until the app's redirect URI.</summary>
    private static async Task<Uri> FollowToAppAsync(HttpClient http, string url)
    {
        for (var hops = 0; hops < 10; hops++)
        {
            using var response = await http.GetAsync(url);
            Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"{url}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            var location = response.Headers.Location!;
            if (location.IsAbsoluteUri && location.Port == 8765) return location;
            var target = location.IsAbsoluteUri ? location.PathAndQuery : location.OriginalString;
            if (target.StartsWith("/auth/login", StringComparison.Ordinal))
            {
                var html = await http.GetStringAsync(target);
                var form = FormPattern().Matches(html).Select(m => m.Value).First(f => f.Contains("action=\"/auth/login\"", StringComparison.Ordinal));
                var fields = HiddenPattern().Matches(form).ToDictionary(m => WebUtility.HtmlDecode(m.Groups["name"].Value), m => WebUtility.HtmlDecode(m.Groups["value"].Value));
                fields["username"] = "dr-demo";
                fields["password"] = "dr-demo-password";
                using var signedIn = await http.PostAsync("/auth/login", new FormUrlEncodedContent(fields));
                Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
                var next = signedIn.Headers.Location!;
                url = next.IsAbsoluteUri ? next.PathAndQuery : next.OriginalString;
            }
            else
            {
                url = target;
            }
        }
        throw new InvalidOperationException("too many redirects");
    }

    internal static async Task<string> ClientTokenAsync(HttpClient http, string client, string scope)
    {
        using var response = await http.PostAsync("/auth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = client, ["client_secret"] = client + "-secret", ["scope"] = scope,
        }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    internal static async Task<string> PatientIdAsync(HttpClient http, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/fhir/Patient?identifier=" + Uri.EscapeDataString("urn:oid:1.2.250.1.213.1.4.11|" + PlannedExitIns));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        var bundle = await response.Content.ReadFromJsonAsync<JsonElement>();
        return bundle.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "FhirSortie.sln"))) directory = directory.Parent;
        return directory?.FullName ?? throw new InvalidOperationException("FhirSortie.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex("<form .*?</form>", RegexOptions.Singleline)]
    private static partial Regex FormPattern();

    [GeneratedRegex("<input type=\"hidden\" name=\"(?<name>[^\"]*)\" value=\"(?<value>[^\"]*)\">")]
    private static partial Regex HiddenPattern();
}
