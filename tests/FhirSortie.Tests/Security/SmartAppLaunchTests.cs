using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Audit;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Tests.Security;

/// <summary>A gateway with real token handling, in demo mode, with two public SMART apps registered.</summary>
public abstract class SmartAppFixture<TGateway> : IDisposable where TGateway : Gateway, new()
{
    public const string App = "smart-app";
    public const string OtherApp = "other-app";
    public const string Redirect = "http://127.0.0.1:9/app/index.html";
    public const string OtherRedirect = "http://127.0.0.1:9/other/index.html";
    /// <summary>A confidential SMART app (client_secret_basic/post), say a CSAPA's record launched for a patient.</summary>
    public const string ConfidentialApp = "confidential-app";
    public const string ConfidentialSecret = "confidential-app-secret-local-only";
    public const string ConfidentialRedirect = "http://127.0.0.1:9/confidential/index.html";

    /// <summary>A test names its browser's address (X-Test-Peer) to find its own AuditEvents with <c>address</c>.</summary>
    public TGateway Gateway { get; } = new()
    {
        UseRealAuthentication = true,
        TestServices = services => services.AddSingleton<Microsoft.AspNetCore.Hosting.IStartupFilter, PeerFromHeader>(),
    };

    protected SmartAppFixture()
    {
        Gateway.Settings["FhirSortie:DemoMode"] = "true";
        AddApp(0, App, Redirect);
        AddApp(1, OtherApp, OtherRedirect);
        AddApp(2, ConfidentialApp, ConfidentialRedirect);
        Gateway.Settings["FhirSortie:Clients:2:Secret"] = ConfidentialSecret;
    }

    private void AddApp(int index, string id, string redirect)
    {
        var prefix = $"FhirSortie:Clients:{index}:";
        Gateway.Settings[prefix + "ClientId"] = id;
        Gateway.Settings[prefix + "ActorKind"] = "Telemedicine";
        Gateway.Settings[prefix + "OrganizationFiness"] = "750000051";
        Gateway.Settings[prefix + "AllowedScopes"] = "launch launch/patient openid fhirUser offline_access patient/*.rs";
        Gateway.Settings[prefix + "RedirectUris:0"] = redirect;
    }

    public void Dispose()
    {
        Gateway.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class SqliteSmartAppFixture : SmartAppFixture<SqliteGateway>;

public sealed class PostgresSmartAppFixture : SmartAppFixture<PostgresGateway>;

/// <summary>
/// SMART App Launch over HTTP, the browser's redirects followed by hand: authorization code with PKCE through the
/// login page, standalone launch with the patient picker, EHR launch with a minted launch value, and the refusals.
/// </summary>
public abstract class SmartAppLaunchTests(Gateway gateway)
{
    private const string App = SqliteSmartAppFixture.App;
    private const string Redirect = SqliteSmartAppFixture.Redirect;
    private const string FhirBase = "http://localhost/fhir";
    private const string StandaloneScopes = "launch/patient openid fhirUser patient/*.rs";

    private sealed record Pkce(string Verifier, string Challenge)
    {
        public static Pkce New()
        {
            var verifier = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
            return new Pkce(verifier, Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))));
        }
    }

    private static string AuthorizeUrl(Pkce? pkce, string scope = StandaloneScopes, string clientId = App, string redirect = Redirect,
        string state = "st-123", string? launch = null, string method = "S256")
    {
        var query = new Dictionary<string, string?>
        {
            ["response_type"] = "code",
            ["client_id"] = clientId,
            ["redirect_uri"] = redirect,
            ["scope"] = scope,
            ["state"] = state,
            ["aud"] = FhirBase,
        };
        if (pkce is not null)
        {
            query["code_challenge"] = method == "plain" ? pkce.Verifier : pkce.Challenge;
            query["code_challenge_method"] = method;
        }
        if (launch is not null) query["launch"] = launch;
        return QueryHelpers.AddQueryString("/auth/authorize", query);
    }

    private async Task<string> UsmpTokenAsync()
    {
        using var http = gateway.CreateClient();
        using var response = await http.PostAsync("/auth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = "usmp-demo",
            ["client_secret"] = "usmp-demo-secret",
            ["scope"] = "system/*.cruds",
        }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    private async Task<(string Id, string Family)> CreatePatientAsync(string? family = null, bool withConsent = true)
    {
        family ??= "Smart" + Guid.NewGuid().ToString("N")[..10];
        using var http = gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/fhir/Patient")
        {
            Content = FhirHttp.Json(new Patient { Name = [new HumanName { Family = family, Given = ["Lea"] }], BirthDate = "1991-04-05" }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await UsmpTokenAsync());
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var id = (await response.ReadAs<Patient>()).Id!;
        if (!withConsent) return (id, family);
        // The telemedicine apps are another organisation: the patient's consent lets them read the Patient (issue 5).
        using var consent = new HttpRequestMessage(HttpMethod.Post, "/fhir/Consent") { Content = FhirHttp.Json(TelemedicineConsent(id)) };
        consent.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await UsmpTokenAsync());
        using var consented = await http.SendAsync(consent);
        Assert.True(consented.StatusCode == HttpStatusCode.Created, await consented.Content.ReadAsStringAsync());
        return (id, family);
    }

    private static Hl7.Fhir.Model.Consent TelemedicineConsent(string patientId) =>
        FhirSortie.Tests.Consents.TestConsents.Permit(patientId, "750000051", "Patient");

    private async Task<string> MintLaunchAsync(string patientId, string forClient)
    {
        using var http = gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/auth/launch")
        {
            Content = JsonContent.Create(new Dictionary<string, string> { ["patient"] = "Patient/" + patientId, ["client_id"] = forClient }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await UsmpTokenAsync());
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("launch").GetString()!;
    }

    private static async Task<Uri> RedirectOf(HttpResponseMessage response)
    {
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return response.Headers.Location!;
    }

    private static Dictionary<string, string> QueryOf(Uri uri) =>
        QueryHelpers.ParseQuery(uri.Query).ToDictionary(p => p.Key, p => p.Value.ToString());

    /// <summary>Follows the browser from the authorize URL to the app's redirect, signing in and picking a patient when asked.</summary>
    private static async Task<Uri> AuthorizeAsync(BrowserSession browser, string authorizeUrl, (string Id, string Family)? pick = null)
    {
        var url = authorizeUrl;
        for (var hops = 0; hops < 10; hops++)
        {
            using var response = await browser.Http.GetAsync(url);
            var location = await RedirectOf(response);
            if (location.IsAbsoluteUri) return location;
            var target = location.OriginalString;
            if (target.StartsWith("/auth/login?", StringComparison.Ordinal))
            {
                url = (await browser.SignInAsync(target)).OriginalString;
            }
            else if (target.StartsWith("/auth/pick-patient?", StringComparison.Ordinal))
            {
                Assert.NotNull(pick);
                var (status, html) = await browser.GetPageAsync(target + "&q=" + Uri.EscapeDataString(pick.Value.Family));
                Assert.Equal(HttpStatusCode.OK, status);
                var forms = BrowserSession.FormsPosting(html, "/auth/pick-patient").ToList();
                var index = forms.FindIndex(f => f.Contains($"value=\"{pick.Value.Id}\"", StringComparison.Ordinal));
                Assert.True(index >= 0, "the picker lists the patient");
                using var picked = await browser.PostFormAsync(html, "/auth/pick-patient", [], index);
                url = (await RedirectOf(picked)).OriginalString;
            }
            else
            {
                url = target;
            }
        }
        throw new InvalidOperationException("too many redirects");
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> RedeemAsync(string code, Pkce pkce, string redirect = Redirect, string clientId = App, string? secret = null)
    {
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code",
            ["code"] = code,
            ["redirect_uri"] = redirect,
            ["client_id"] = clientId,
            ["code_verifier"] = pkce.Verifier,
        };
        return await PostAsync("/auth/token", form, secret);
    }

    private Task<(HttpStatusCode Status, JsonElement Body)> RefreshAsync(string refreshToken, string clientId = App, string? secret = null) =>
        PostAsync("/auth/token", new Dictionary<string, string> { ["grant_type"] = "refresh_token", ["refresh_token"] = refreshToken, ["client_id"] = clientId }, secret);

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(string path, Dictionary<string, string> form, string? secret)
    {
        if (secret is not null) form["client_secret"] = secret;
        using var http = gateway.CreateClient();
        using var response = await http.PostAsync(path, new FormUrlEncodedContent(form));
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    /// <summary>A standalone launch with offline_access, up to the first token answer.</summary>
    private async Task<((string Id, string Family) Patient, JsonElement Token)> OfflineLaunchAsync(string clientId = App, string redirect = Redirect, string? secret = null)
    {
        var patient = await CreatePatientAsync();
        var pkce = Pkce.New();
        using var browser = new BrowserSession(gateway);
        var code = QueryOf(await AuthorizeAsync(browser, AuthorizeUrl(pkce, scope: StandaloneScopes + " offline_access", clientId: clientId, redirect: redirect), patient))["code"];
        var (status, token) = await RedeemAsync(code, pkce, redirect, clientId, secret);
        Assert.True(status == HttpStatusCode.OK, token.ToString());
        return (patient, token);
    }

    private async Task<HttpStatusCode> ReadPatientAsync(string token, string id)
    {
        using var http = gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/fhir/Patient/" + id);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task Standalone_launch_signs_in_picks_the_patient_and_the_token_reads_that_patient()
    {
        var patient = await CreatePatientAsync();
        var pkce = Pkce.New();
        using var browser = new BrowserSession(gateway);

        var back = await AuthorizeAsync(browser, AuthorizeUrl(pkce), patient);
        Assert.StartsWith(Redirect + "?", back.AbsoluteUri);
        var query = QueryOf(back);
        Assert.Equal("st-123", query["state"]);

        var (status, token) = await RedeemAsync(query["code"], pkce);
        Assert.True(status == HttpStatusCode.OK, token.ToString());
        Assert.Equal(patient.Id, token.GetProperty("patient").GetString());
        var accessToken = token.GetProperty("access_token").GetString()!;
        var jwt = new JsonWebToken(accessToken);
        Assert.Equal(patient.Id, jwt.GetClaim(Caller.Claims.Patient).Value);
        Assert.Equal("Practitioner/dr-demo", jwt.GetClaim(Caller.Claims.FhirUser).Value);
        Assert.Equal(App, jwt.GetClaim(Caller.Claims.ClientId).Value);
        Assert.Equal("Telemedicine", jwt.GetClaim(Caller.Claims.ActorKind).Value);
        Assert.True(token.TryGetProperty("id_token", out _), "openid was asked: an id_token comes along");
        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(accessToken, patient.Id));
    }

    [Fact]
    public async Task An_app_may_ask_for_less_than_it_is_registered_for_and_refresh_to_less_again_but_never_more()
    {
        // The app is registered patient/*.rs: it asks for the Patient alone, in v2, then v1 letters at refresh.
        var patient = await CreatePatientAsync();
        var pkce = Pkce.New();
        using var browser = new BrowserSession(gateway);
        const string narrow = "launch/patient openid fhirUser offline_access patient/Patient.rs";
        var code = QueryOf(await AuthorizeAsync(browser, AuthorizeUrl(pkce, scope: narrow), patient))["code"];
        var (status, token) = await RedeemAsync(code, pkce);
        Assert.True(status == HttpStatusCode.OK, token.ToString());
        Assert.Equal(narrow.Split(' ').Order(), token.GetProperty("scope").GetString()!.Split(' ').Order());
        var access = token.GetProperty("access_token").GetString()!;
        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(access, patient.Id));
        // What was granted is what /fhir enforces: patient/*.rs would read the Observations, patient/Patient.rs does not.
        using var http = gateway.CreateClient();
        using var search = new HttpRequestMessage(HttpMethod.Get, "/fhir/Observation?patient=" + patient.Id);
        search.Headers.Authorization = new AuthenticationHeaderValue("Bearer", access);
        Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(search)).StatusCode);

        // Wider than the grant (though within the registration): refused, naming the scope, and the refresh token is not spent.
        var refresh = token.GetProperty("refresh_token").GetString()!;
        var (wider, widerBody) = await PostAsync("/auth/token", new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["refresh_token"] = refresh, ["client_id"] = App, ["scope"] = "patient/*.rs",
        }, secret: null);
        Assert.True(wider == HttpStatusCode.BadRequest && widerBody.GetProperty("error").GetString() == "invalid_scope", widerBody.ToString());
        Assert.Contains("'patient/*.rs'", widerBody.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        var (narrower, narrowerBody) = await PostAsync("/auth/token", new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["refresh_token"] = refresh, ["client_id"] = App, ["scope"] = "patient/Patient.read offline_access",
        }, secret: null);
        Assert.True(narrower == HttpStatusCode.OK, narrowerBody.ToString());
        Assert.Equal("patient/Patient.read offline_access", narrowerBody.GetProperty("scope").GetString());
        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(narrowerBody.GetProperty("access_token").GetString()!, patient.Id));
    }

    [Fact]
    public async Task An_authorization_asking_for_more_than_the_registration_is_invalid_scope_naming_it()
    {
        // Refused while the request is validated, before the login page: OpenIddict answers it there.
        using var browser = new BrowserSession(gateway);
        var (status, page) = await browser.GetPageAsync(AuthorizeUrl(Pkce.New(), scope: "launch/patient openid patient/Observation.rs patient/*.cruds"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("invalid_scope", page, StringComparison.Ordinal);
        Assert.Contains("'patient/*.cruds'", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_signed_in_practitioner_is_not_asked_to_sign_in_again()
    {
        var patient = await CreatePatientAsync();
        using var browser = new BrowserSession(gateway);
        await AuthorizeAsync(browser, AuthorizeUrl(Pkce.New()), patient);

        using var second = await browser.Http.GetAsync(AuthorizeUrl(Pkce.New()));
        Assert.StartsWith("/auth/pick-patient?", (await RedirectOf(second)).OriginalString);
    }

    [Fact]
    public async Task Ehr_launch_with_a_minted_launch_gives_the_host_patient_without_the_picker()
    {
        var patient = await CreatePatientAsync();
        var launch = await MintLaunchAsync(patient.Id, App);
        var pkce = Pkce.New();
        using var browser = new BrowserSession(gateway);

        var back = await AuthorizeAsync(browser, AuthorizeUrl(pkce, scope: "launch openid fhirUser patient/*.rs", launch: launch), pick: null);
        var query = QueryOf(back);
        Assert.Equal("st-123", query["state"]);
        var (status, token) = await RedeemAsync(query["code"], pkce);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(patient.Id, token.GetProperty("patient").GetString());
        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(token.GetProperty("access_token").GetString()!, patient.Id));

        // Single use: the same launch value again is refused.
        var again = await AuthorizeAsync(browser, AuthorizeUrl(Pkce.New(), scope: "launch openid fhirUser patient/*.rs", launch: launch));
        Assert.Equal("invalid_request", QueryOf(again)["error"]);
    }

    [Fact]
    public async Task Unknown_launch_is_refused_back_to_the_app_with_its_state()
    {
        using var browser = BrowserAt("10.1.0.3");
        var back = await AuthorizeAsync(browser, AuthorizeUrl(Pkce.New(), scope: "launch patient/*.rs", launch: "no-such-launch", state: "keep-me"));
        Assert.StartsWith(Redirect + "?", back.AbsoluteUri);
        var query = QueryOf(back);
        Assert.Equal("invalid_request", query["error"]);
        Assert.Equal("keep-me", query["state"]);
        Assert.False(query.ContainsKey("code"));
        // The refusal sent back by redirect is a refused Login of the app.
        var refusal = Assert.Single(await gateway.AuditEventsAsync("address:exact=10.1.0.3"));
        Assert.Equal("110122 4 denied: invalid_request: Unknown launch: it does not exist, has expired, was already used, or was issued for another client.",
            AuditedSearch.Summary(refusal));
        Assert.Equal(App, refusal.Agent[0].Who!.Identifier!.Value);
    }

    private BrowserSession BrowserAt(string peer) => BrowserSession.At(gateway, peer);

    private static string HumanUser(AuditEvent record) => record.Agent.Single(a => a.Type?.Coding[0].Code == "humanuser").Who!.Reference!;

    private static IEnumerable<string?> PatientsOf(AuditEvent record) => record.Entity.Where(e => e.Role?.Code == "1").Select(e => e.What!.Reference);

    [Fact]
    public async Task The_picker_lists_and_lets_pick_only_the_patients_the_apps_organisation_may_see_and_audits_what_it_showed()
    {
        var family = "Consent" + Guid.NewGuid().ToString("N")[..8];
        var seen = await CreatePatientAsync(family);
        var hidden = await CreatePatientAsync(family, withConsent: false);
        using var browser = BrowserAt("10.1.0.1");
        await browser.SignInAsync("/auth/login");

        var (status, html) = await browser.GetPageAsync(PatientPicker.UrlFor(AuthorizeUrl(Pkce.New())) + "&q=" + family);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains($"data-patient=\"{seen.Id}\"", html);
        Assert.DoesNotContain(hidden.Id, html);
        // A form naming the hidden patient gets what an unknown patient gets.
        using var refused = await browser.PostFormAsync(html, "/auth/pick-patient", [new("patient", hidden.Id)]);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);

        var records = await gateway.AuditEventsAsync("address:exact=10.1.0.1&_sort=date");
        Assert.Equal(3, records.Count);
        Assert.Equal("110122 0 permitted: practitioner signed in (dr-demo)", AuditedSearch.Summary(records[0]));
        var shown = records[1];
        Assert.Equal("search-type 0 permitted: patient picker of a SMART launch: the patients its organisation may see", AuditedSearch.Summary(shown));
        Assert.Equal(App, shown.Agent[0].Who!.Identifier!.Value);
        Assert.Equal("Practitioner/dr-demo", HumanUser(shown));
        Assert.Equal(["Patient/" + seen.Id], PatientsOf(shown));
        Assert.Equal("q=" + family, Encoding.UTF8.GetString(shown.Entity.Single(e => e.Query is not null).Query!));
        var attempt = records[2];
        Assert.StartsWith("read 4 denied: patient picker of a SMART launch: ", AuditedSearch.Summary(attempt), StringComparison.Ordinal);
        Assert.Equal(["Patient/" + hidden.Id], PatientsOf(attempt));
        // The patient's access report shows who looked them up in the picker.
        Assert.Single(await gateway.AuditEventsAsync($"patient={seen.Id}&subtype=search-type"));
    }

    [Fact]
    public async Task Sign_ins_and_sign_outs_are_Login_and_Logout_AuditEvents_of_the_practitioner_never_naming_an_unknown_user()
    {
        using var browser = BrowserAt("10.1.0.2");
        var login = "/auth/login?returnUrl=" + Uri.EscapeDataString(AuthorizeUrl(Pkce.New()));
        var (_, html) = await browser.GetPageAsync(login);
        using (var wrong = await browser.PostFormAsync(html, "/auth/login", [new("username", "dr-demo"), new("password", "not-the-password")]))
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        // A password typed in the user name field.
        using (var unknown = await browser.PostFormAsync(html, "/auth/login", [new("username", "Sesame-2026!"), new("password", "x")]))
            Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        await browser.SignInAsync(login);
        var (_, signedIn) = await browser.GetPageAsync("/auth/login");
        using (var logout = await browser.Http.PostAsync("/auth/logout",
            new FormUrlEncodedContent(BrowserSession.HiddenFields(BrowserSession.FormsPosting(signedIn, "/auth/login").Single()))))
            Assert.Equal(HttpStatusCode.Redirect, logout.StatusCode);

        var records = await gateway.AuditEventsAsync("address:exact=10.1.0.2&_sort=date");
        Assert.Equal(
        [
            "110122 4 denied: sign-in refused: wrong password (dr-demo)",
            "110122 4 denied: sign-in refused: unknown user name",
            "110122 0 permitted: practitioner signed in (dr-demo)",
            "110123 0 permitted: practitioner signed out (dr-demo)",
        ], records.Select(AuditedSearch.Summary));
        Assert.All(records, r => Assert.Equal(("110114", "User Authentication"), (r.Type!.Code, r.Type.Display)));
        // Signing in for the app, as its authorization request says; signing out, for no app.
        Assert.Equal([App, App, App, "anonymous"], records.Select(r => r.Agent[0].Who!.Identifier!.Value));
        Assert.Equal("Practitioner/dr-demo", HumanUser(records[0]));
        Assert.DoesNotContain(records[1].Agent, a => a.Type?.Coding[0].Code == "humanuser");
        Assert.All(records, r => Assert.DoesNotContain("Sesame", AuditedSearch.JsonOf(r), StringComparison.Ordinal));
        Assert.Equal("Practitioner/dr-demo", HumanUser(records[3]));
    }

    [Fact]
    public async Task A_launch_minted_for_another_app_is_refused()
    {
        var patient = await CreatePatientAsync();
        var launch = await MintLaunchAsync(patient.Id, SqliteSmartAppFixture.OtherApp);
        using var browser = new BrowserSession(gateway);
        var back = await AuthorizeAsync(browser, AuthorizeUrl(Pkce.New(), scope: "launch patient/*.rs", launch: launch));
        Assert.Equal("invalid_request", QueryOf(back)["error"]);
        Assert.False(QueryOf(back).ContainsKey("code"));
    }

    [Fact]
    public async Task Wrong_code_verifier_is_refused()
    {
        var patient = await CreatePatientAsync();
        var pkce = Pkce.New();
        using var browser = new BrowserSession(gateway);
        var back = await AuthorizeAsync(browser, AuthorizeUrl(pkce), patient);
        var (status, body) = await RedeemAsync(QueryOf(back)["code"], Pkce.New());
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_code_is_redeemed_once()
    {
        var patient = await CreatePatientAsync();
        var pkce = Pkce.New();
        using var browser = new BrowserSession(gateway);
        var code = QueryOf(await AuthorizeAsync(browser, AuthorizeUrl(pkce), patient))["code"];
        Assert.Equal(HttpStatusCode.OK, (await RedeemAsync(code, pkce)).Status);
        var (status, body) = await RedeemAsync(code, pkce);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_refresh_token_gives_a_new_access_token_for_the_same_patient_and_a_new_refresh_token()
    {
        var (patient, first) = await OfflineLaunchAsync();
        var refresh = first.GetProperty("refresh_token").GetString()!;

        var (status, next) = await RefreshAsync(refresh);

        Assert.True(status == HttpStatusCode.OK, next.ToString());
        var accessToken = next.GetProperty("access_token").GetString()!;
        Assert.Equal(patient.Id, new JsonWebToken(accessToken).GetClaim(Caller.Claims.Patient).Value);
        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(accessToken, patient.Id));
        var rotated = next.GetProperty("refresh_token").GetString()!;
        Assert.NotEqual(refresh, rotated);
        // The refresh token's own id stays in it; the access token carries the grant it belongs to (to die with it).
        Assert.False(new JsonWebToken(accessToken).TryGetClaim("refresh_id", out _));
        Assert.True(new JsonWebToken(accessToken).TryGetClaim("grant_id", out _));
        Assert.Equal(HttpStatusCode.OK, (await RefreshAsync(rotated)).Status);
    }

    [Fact]
    public async Task A_refresh_token_used_twice_revokes_its_grant_but_not_another()
    {
        var (patient, first) = await OfflineLaunchAsync();
        var (otherPatient, other) = await OfflineLaunchAsync();
        var stolen = first.GetProperty("refresh_token").GetString()!;
        var (status, next) = await RefreshAsync(stolen);
        Assert.Equal(HttpStatusCode.OK, status);
        // Both access tokens of the grant work until it is revoked (read twice: the second read is a validated-token hit).
        var grantTokens = new[] { first.GetProperty("access_token").GetString()!, next.GetProperty("access_token").GetString()! };
        foreach (var token in grantTokens)
        {
            Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(token, patient.Id));
            Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(token, patient.Id));
        }

        var (again, refused) = await RefreshAsync(stolen);

        Assert.Equal(HttpStatusCode.BadRequest, again);
        Assert.Equal("invalid_grant", refused.GetProperty("error").GetString());
        // The token the first use gave is revoked with its grant: whoever holds it must authorize again.
        var (successor, revoked) = await RefreshAsync(next.GetProperty("refresh_token").GetString()!);
        Assert.Equal(HttpStatusCode.BadRequest, successor);
        Assert.Contains("revoked", revoked.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        // Its access tokens die with it: before they expire, whoever holds them (the thief too) must authorize again.
        foreach (var token in grantTokens) Assert.Equal(HttpStatusCode.Unauthorized, await ReadPatientAsync(token, patient.Id));
        // Another authorization of the same app and user is a grant of its own.
        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(other.GetProperty("access_token").GetString()!, otherPatient.Id));
        Assert.Equal(HttpStatusCode.OK, (await RefreshAsync(other.GetProperty("refresh_token").GetString()!)).Status);
    }

    [Fact]
    public async Task A_launchs_tokens_its_refused_refresh_and_its_revocation_are_Login_and_Logout_AuditEvents_of_its_patient()
    {
        var (patient, first) = await OfflineLaunchAsync();
        var (otherPatient, _) = await OfflineLaunchAsync();
        var reused = first.GetProperty("refresh_token").GetString()!;
        var (refreshed, next) = await RefreshAsync(reused);
        Assert.Equal(HttpStatusCode.OK, refreshed);
        Assert.Equal(HttpStatusCode.BadRequest, (await RefreshAsync(reused)).Status);
        Assert.Equal(HttpStatusCode.OK, (await RevokeAsync(next.GetProperty("refresh_token").GetString()!)).Status);

        var records = await gateway.AuditEventsAsync($"patient={patient.Id}&type={AuditedSearch.Dicom}|110114&_sort=date");

        Assert.Equal(
        [
            "110122 0 permitted: authorization code issued",
            "110122 0 permitted: token issued (authorization_code)",
            "110122 0 permitted: token issued (refresh_token)",
            "110122 4 denied: invalid_grant: The refresh token was already used: its grant is revoked, authorize again.",
            "110123 0 permitted: grant revoked",
        ], records.Select(AuditedSearch.Summary));
        foreach (var record in records)
        {
            Assert.Equal(("110114", "User Authentication"), (record.Type!.Code, record.Type.Display));
            Assert.Equal(App, record.Agent[0].Who!.Identifier!.Value);
            // The practitioner signed in at the launch acts through the app.
            Assert.StartsWith("Practitioner/", record.Agent.Single(a => a.Type?.Coding[0].Code == "humanuser").Who!.Reference, StringComparison.Ordinal);
            Assert.Equal("Patient/" + patient.Id, record.Entity.Single().What!.Reference);
        }
        // The patient's access report lists the refused refresh as a refused Login by the app.
        var report = await gateway.AsAuditorAsync<Parameters>($"Patient/{patient.Id}/$access-report");
        Assert.Contains(report.Parameter, access =>
            access.Part.Any(p => p.Name == "interaction" && p.Value is Code { Value: "Login" }) &&
            access.Part.Any(p => p.Name == "outcome" && p.Value is Code { Value: "refused" }) &&
            access.Part.Any(p => p.Name == "client" && p.Value is FhirString { Value: App }) &&
            access.Part.Any(p => p.Name == "reason" && p.Value is FhirString { Value: var reason } && reason?.StartsWith("invalid_grant", StringComparison.Ordinal) == true));
        // The other launch's records are its own patient's.
        Assert.Equal(["110122 0 permitted: authorization code issued", "110122 0 permitted: token issued (authorization_code)"],
            (await gateway.AuditEventsAsync($"patient={otherPatient.Id}&type={AuditedSearch.Dicom}|110114")).Select(AuditedSearch.Summary));
    }

    private async Task<(HttpStatusCode Status, string Body)> RevokeAsync(string token, string clientId = App, string? secret = null, string? hint = null)
    {
        using var http = gateway.CreateClient();
        var form = new Dictionary<string, string> { ["token"] = token, ["client_id"] = clientId };
        if (secret is not null) form["client_secret"] = secret;
        if (hint is not null) form["token_type_hint"] = hint;
        using var response = await http.PostAsync(AuthorizationServer.RevokePath, new FormUrlEncodedContent(form));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("refresh_token")]
    [InlineData("access_token")]
    public async Task Revoking_a_token_ends_its_grant_and_not_another(string which)
    {
        var (patient, first) = await OfflineLaunchAsync();
        var (otherPatient, other) = await OfflineLaunchAsync();
        var access = first.GetProperty("access_token").GetString()!;
        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(access, patient.Id));

        var (status, body) = await RevokeAsync(first.GetProperty(which).GetString()!, hint: which);

        Assert.True(status == HttpStatusCode.OK, body);
        // The access token (also a validated-token cache hit: it was read above) and the refresh token die together.
        Assert.Equal(HttpStatusCode.Unauthorized, await ReadPatientAsync(access, patient.Id));
        var (refreshed, refused) = await RefreshAsync(first.GetProperty("refresh_token").GetString()!);
        Assert.Equal(HttpStatusCode.BadRequest, refreshed);
        Assert.Equal("invalid_grant", refused.GetProperty("error").GetString());
        // Another authorization of the same app goes on.
        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(other.GetProperty("access_token").GetString()!, otherPatient.Id));
        Assert.Equal(HttpStatusCode.OK, (await RefreshAsync(other.GetProperty("refresh_token").GetString()!)).Status);
    }

    [Fact]
    public async Task Another_app_cannot_revoke_a_token_it_was_not_given()
    {
        var (patient, first) = await OfflineLaunchAsync();

        var (status, _) = await RevokeAsync(first.GetProperty("refresh_token").GetString()!, clientId: SqliteSmartAppFixture.OtherApp);

        // As for an invalid token (RFC 7009 2.2): the other app learns nothing, and nothing is revoked.
        Assert.Equal(HttpStatusCode.OK, status);

        Assert.Equal(HttpStatusCode.OK, await ReadPatientAsync(first.GetProperty("access_token").GetString()!, patient.Id));
        Assert.Equal(HttpStatusCode.OK, (await RefreshAsync(first.GetProperty("refresh_token").GetString()!)).Status);
    }

    [Fact]
    public async Task Revocation_answers_200_to_an_unknown_token_and_refuses_unknown_clients_and_bad_secrets()
    {
        // RFC 7009 2.2: an invalid token is not an error (the client's goal, that it be unusable, is met).
        Assert.Equal(HttpStatusCode.OK, (await RevokeAsync("not-a-token")).Status);
        // Refused before the token is looked at (otherwise the answer would tell a valid token from an invalid one).
        var (unknown, unknownBody) = await RevokeAsync("not-a-token", clientId: "nobody");
        Assert.Equal(HttpStatusCode.Unauthorized, unknown);
        Assert.Contains("invalid_client", unknownBody, StringComparison.Ordinal);
        var (badSecret, badSecretBody) = await RevokeAsync("not-a-token", clientId: "usmp-demo", secret: "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, badSecret);
        Assert.Contains("invalid_client", badSecretBody, StringComparison.Ordinal);
        var (missing, _) = await RevokeAsync("");
        Assert.Equal(HttpStatusCode.BadRequest, missing);
    }

    [Fact]
    public async Task A_client_credentials_token_is_unsupported_for_revocation_and_stays_valid()
    {
        var token = await UsmpTokenAsync();

        var (status, body) = await RevokeAsync(token, clientId: "usmp-demo", secret: "usmp-demo-secret");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("unsupported_token_type", body, StringComparison.Ordinal);
        using var http = gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/fhir/Organization?_count=1");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private Task<(HttpStatusCode Status, JsonElement Body)> IntrospectAsync(string token, string clientId = SqliteSmartAppFixture.ConfidentialApp,
        string? secret = SqliteSmartAppFixture.ConfidentialSecret) =>
        PostAsync(AuthorizationServer.IntrospectPath, new Dictionary<string, string> { ["token"] = token, ["client_id"] = clientId }, secret);

    [Fact]
    public async Task Introspection_follows_a_confidential_apps_tokens_through_refresh_and_revocation()
    {
        const string app = SqliteSmartAppFixture.ConfidentialApp, secret = SqliteSmartAppFixture.ConfidentialSecret;
        var (patient, first) = await OfflineLaunchAsync(app, SqliteSmartAppFixture.ConfidentialRedirect, secret);
        var access = first.GetProperty("access_token").GetString()!;
        var refresh = first.GetProperty("refresh_token").GetString()!;

        var (status, active) = await IntrospectAsync(access);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(active.GetProperty("active").GetBoolean(), active.ToString());
        Assert.Equal(app, active.GetProperty("client_id").GetString());
        Assert.Equal(patient.Id, active.GetProperty("patient").GetString());
        Assert.True(active.TryGetProperty("scope", out var scope), active.ToString());
        Assert.Contains("patient/*.rs", scope.GetString()!.Split(" "));
        Assert.True(active.GetProperty("exp").GetInt64() > DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        Assert.True((await IntrospectAsync(refresh)).Body.GetProperty("active").GetBoolean());

        // A redeemed refresh token is spent; its successor and the new access token are active.
        var (refreshed, next) = await RefreshAsync(refresh, app, secret);
        Assert.Equal(HttpStatusCode.OK, refreshed);
        Assert.False((await IntrospectAsync(refresh)).Body.GetProperty("active").GetBoolean());
        Assert.True((await IntrospectAsync(next.GetProperty("refresh_token").GetString()!)).Body.GetProperty("active").GetBoolean());

        // Revoked: every token of the grant is inactive.
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(AuthorizationServer.RevokePath,
            new Dictionary<string, string> { ["token"] = next.GetProperty("refresh_token").GetString()!, ["client_id"] = app }, secret)).Status);
        foreach (var token in new[] { access, next.GetProperty("access_token").GetString()!, next.GetProperty("refresh_token").GetString()! })
        {
            var (_, body) = await IntrospectAsync(token);
            Assert.False(body.GetProperty("active").GetBoolean(), body.ToString());
            Assert.False(body.TryGetProperty("patient", out _));
        }
    }

    [Fact]
    public async Task Introspection_is_for_confidential_clients_and_their_own_tokens()
    {
        var (_, mine) = await OfflineLaunchAsync(SqliteSmartAppFixture.ConfidentialApp, SqliteSmartAppFixture.ConfidentialRedirect, SqliteSmartAppFixture.ConfidentialSecret);
        var (_, publicApps) = await OfflineLaunchAsync();

        // Another client's token (here a public app's) is not active for this one: nothing about it leaks.
        var (status, other) = await IntrospectAsync(publicApps.GetProperty("access_token").GetString()!);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.False(other.GetProperty("active").GetBoolean());
        Assert.False((await IntrospectAsync("not-a-token")).Body.GetProperty("active").GetBoolean());
        // A public app holds no credential: refused, even for its own token; so is a wrong secret, whatever the token.
        var (publicStatus, publicBody) = await IntrospectAsync(publicApps.GetProperty("access_token").GetString()!, App, secret: null);
        Assert.Equal(HttpStatusCode.BadRequest, publicStatus);
        Assert.Equal("unauthorized_client", publicBody.GetProperty("error").GetString());
        var (badStatus, badBody) = await IntrospectAsync(mine.GetProperty("access_token").GetString()!, secret: "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, badStatus);
        Assert.Equal("invalid_client", badBody.GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_registered_apps_origin_may_read_the_answers_headers_and_another_origin_may_not()
    {
        using var http = gateway.CreateClient();
        foreach (var (origin, allowed) in new[] { ("http://127.0.0.1:9", true), ("https://evil.example", false) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/fhir/metadata");
            request.Headers.Add("Origin", origin);
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(allowed, response.Headers.TryGetValues("Access-Control-Allow-Origin", out var allowOrigin));
            if (!allowed) continue;
            Assert.Equal(origin, Assert.Single(allowOrigin!));
            var exposed = response.Headers.GetValues("Access-Control-Expose-Headers").SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries)).ToList();
            Assert.Subset(exposed.ToHashSet(StringComparer.OrdinalIgnoreCase), new HashSet<string>(["ETag", "Location", "X-Request-Id", "Retry-After"], StringComparer.OrdinalIgnoreCase));
        }
    }

    [Fact]
    public async Task Another_app_cannot_use_the_refresh_token()
    {
        var (_, first) = await OfflineLaunchAsync();
        var (status, _) = await RefreshAsync(first.GetProperty("refresh_token").GetString()!, clientId: SqliteSmartAppFixture.OtherApp);
        Assert.Equal(HttpStatusCode.BadRequest, status);
    }

    [Fact]
    public async Task A_code_redeemed_with_another_redirect_uri_is_refused()
    {
        var patient = await CreatePatientAsync();
        var pkce = Pkce.New();
        using var browser = new BrowserSession(gateway);
        var code = QueryOf(await AuthorizeAsync(browser, AuthorizeUrl(pkce), patient))["code"];
        var (status, body) = await RedeemAsync(code, pkce, redirect: "http://127.0.0.1:9/app/other.html");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Unregistered_redirect_uri_is_refused_without_redirecting()
    {
        using var browser = BrowserAt("10.1.0.4");
        using var response = await browser.Http.GetAsync(AuthorizeUrl(Pkce.New(), redirect: "https://evil.example/callback"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(response.Headers.Location);
        // OpenIddict refused it before our handler ran: still a refused Login, under the client it claims.
        var refusal = Assert.Single(await gateway.AuditEventsAsync("address:exact=10.1.0.4"));
        Assert.StartsWith("110122 4 denied: invalid_request: ", AuditedSearch.Summary(refusal), StringComparison.Ordinal);
        Assert.Equal(App, refusal.Agent[0].Who!.Identifier!.Value);
    }

    // OpenIddict checks PKCE before the redirect_uri, so these refusals are answered to the browser, not the app.
    [Fact]
    public async Task Plain_pkce_is_refused()
    {
        using var browser = new BrowserSession(gateway);
        using var response = await browser.Http.GetAsync(AuthorizeUrl(Pkce.New(), method: "plain"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(response.Headers.Location);
        Assert.Contains("invalid_request", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Missing_code_challenge_is_refused()
    {
        using var browser = new BrowserSession(gateway);
        using var response = await browser.Http.GetAsync(AuthorizeUrl(pkce: null));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(response.Headers.Location);
        Assert.Contains("code_challenge", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Another_app_cannot_redeem_the_code()
    {
        var patient = await CreatePatientAsync();
        var pkce = Pkce.New();
        using var browser = new BrowserSession(gateway);
        var code = QueryOf(await AuthorizeAsync(browser, AuthorizeUrl(pkce), patient))["code"];
        var (status, _) = await RedeemAsync(code, pkce, redirect: SqliteSmartAppFixture.OtherRedirect, clientId: SqliteSmartAppFixture.OtherApp);
        Assert.Equal(HttpStatusCode.BadRequest, status);
    }

    [Fact]
    public async Task A_pick_made_by_one_practitioner_session_cannot_be_replayed_by_the_app()
    {
        // The app cannot skip the picker by adding a patient id: only a pick id minted in the picker counts.
        var patient = await CreatePatientAsync();
        using var browser = new BrowserSession(gateway);
        await browser.SignInAsync("/auth/login");
        using var response = await browser.Http.GetAsync(AuthorizeUrl(Pkce.New()) + "&fhirsortie_pick=" + patient.Id);
        Assert.StartsWith("/auth/pick-patient?", (await RedirectOf(response)).OriginalString);
    }
}

public sealed class SqliteSmartAppLaunchTests(SqliteSmartAppFixture fixture) : SmartAppLaunchTests(fixture.Gateway), IClassFixture<SqliteSmartAppFixture>;

public sealed class PostgresSmartAppLaunchTests(PostgresSmartAppFixture fixture) : SmartAppLaunchTests(fixture.Gateway), IClassFixture<PostgresSmartAppFixture>;
