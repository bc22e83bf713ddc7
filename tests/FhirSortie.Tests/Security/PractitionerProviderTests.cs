using System.Collections.Concurrent;
using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Audit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Tests.Security;

/// <summary>
/// A small OpenID Connect provider on 127.0.0.1 (discovery, JWKS, authorization and token endpoints, RS256 ID tokens):
/// it signs in <see cref="NextSubject"/> at once, as Pro Santé Connect would after the practitioner's e-CPS.
/// </summary>
public sealed class FakeOidcProvider : IAsyncDisposable
{
    public const string ClientId = "fhirsortie-gateway";
    public const string ClientSecret = "provider-secret-local-only";

    private readonly RsaSecurityKey _key = new(RSA.Create(2048)) { KeyId = "provider-1" };
    private readonly ConcurrentDictionary<string, (string Subject, string? Nonce, string ClientId)> _codes = new();
    private WebApplication? _app;

    public string Issuer { get; private set; } = "";

    /// <summary>Who the provider signs in next; null: the user cancels (access_denied).</summary>
    public string? NextSubject { get; set; }

    public async Task StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        _app = builder.Build();
        _app.MapGet("/.well-known/openid-configuration", () => Results.Json(new Dictionary<string, object>
        {
            ["issuer"] = Issuer,
            ["authorization_endpoint"] = Issuer + "/authorize",
            ["token_endpoint"] = Issuer + "/token",
            ["jwks_uri"] = Issuer + "/jwks",
            ["response_types_supported"] = new[] { "code" },
            ["subject_types_supported"] = new[] { "public" },
            ["id_token_signing_alg_values_supported"] = new[] { "RS256" },
        }));
        _app.MapGet("/jwks", () => Results.Content(AuthFixture.Jwks(_key), "application/json"));
        _app.MapGet("/authorize", (HttpRequest request) =>
        {
            var query = request.Query;
            var back = query["redirect_uri"].ToString();
            if (NextSubject is not { } subject)
                return Results.Redirect(QueryHelpers.AddQueryString(back, new Dictionary<string, string?> { ["error"] = "access_denied", ["state"] = query["state"] }));
            var code = Guid.NewGuid().ToString("N");
            _codes[code] = (subject, query["nonce"], query["client_id"].ToString());
            return Results.Redirect(QueryHelpers.AddQueryString(back, new Dictionary<string, string?> { ["code"] = code, ["state"] = query["state"] }));
        });
        _app.MapPost("/token", async (HttpRequest request) =>
        {
            var form = await request.ReadFormAsync();
            if (form["client_secret"] != ClientSecret || !_codes.TryRemove(form["code"].ToString(), out var grant))
                return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            var claims = new Dictionary<string, object> { ["sub"] = grant.Subject };
            if (grant.Nonce is { } nonce) claims["nonce"] = nonce;
            var idToken = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
            {
                Issuer = Issuer,
                Audience = grant.ClientId,
                Claims = claims,
                Expires = DateTime.UtcNow.AddMinutes(5),
                SigningCredentials = new SigningCredentials(_key, SecurityAlgorithms.RsaSha256),
            });
            return Results.Json(new { access_token = Guid.NewGuid().ToString("N"), token_type = "Bearer", expires_in = 300, id_token = idToken });
        });
        await _app.StartAsync();
        Issuer = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }
}

/// <summary>A gateway whose practitioners sign in through <see cref="FakeOidcProvider"/> (and, in demo mode, with passwords).</summary>
public sealed class ProviderGateway : IAsyncLifetime
{
    public FakeOidcProvider Provider { get; } = new();

    public SqliteGateway Gateway { get; } = new() { UseRealAuthentication = true, TestServices = services => services.AddSingleton<IStartupFilter, PeerFromHeader>() };

    public async Task InitializeAsync()
    {
        await Provider.StartAsync();
        Configure(Gateway.Settings, Provider.Issuer);
        Gateway.CreateClient().Dispose();
    }

    public static void Configure(Dictionary<string, string?> settings, string issuer)
    {
        settings["FhirSortie:DemoMode"] = "true";
        settings["FhirSortie:Auth:PractitionerProvider:Authority"] = issuer;
        settings["FhirSortie:Auth:PractitionerProvider:ClientId"] = FakeOidcProvider.ClientId;
        settings["FhirSortie:Auth:PractitionerProvider:ClientSecret"] = FakeOidcProvider.ClientSecret;
        settings["FhirSortie:Auth:PractitionerProvider:DisplayName"] = "Test PSC";
        settings["FhirSortie:Auth:PractitionerProvider:RequireHttpsMetadata"] = "false";
        settings["FhirSortie:Users:0:UserName"] = "dr-psc";
        settings["FhirSortie:Users:0:ExternalSubject"] = "899700000001";
        settings["FhirSortie:Users:0:FhirUser"] = "Practitioner/dr-psc";
    }

    public async Task DisposeAsync()
    {
        Gateway.Dispose();
        await Provider.DisposeAsync();
    }
}

/// <summary>Practitioners signing in through an OpenID Connect provider (FhirSortie:Auth:PractitionerProvider).</summary>
public sealed class PractitionerProviderTests(ProviderGateway fixture) : IClassFixture<ProviderGateway>
{
    private static readonly string Authorize = QueryHelpers.AddQueryString("/auth/authorize", new Dictionary<string, string?>
    {
        ["response_type"] = "code",
        ["client_id"] = "telemed-demo",
        ["redirect_uri"] = DemoClients.TelemedicineRedirectUri,
        ["scope"] = "launch/patient openid fhirUser patient/*.rs",
    });

    private BrowserSession BrowserAt(string peer) => BrowserSession.At(fixture.Gateway, peer);

    /// <summary>From the login page's provider button to the gateway's answer to the provider's redirect back.</summary>
    private async Task<HttpResponseMessage> SignInThroughProviderAsync(BrowserSession browser, string? subject)
    {
        var (status, page) = await browser.GetPageAsync("/auth/login?returnUrl=" + Uri.EscapeDataString(Authorize));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("Se connecter avec Test PSC", page, StringComparison.Ordinal);
        using var challenge = await browser.Http.GetAsync(PractitionerLogin.Path + "?returnUrl=" + Uri.EscapeDataString(Authorize));
        Assert.Equal(HttpStatusCode.Redirect, challenge.StatusCode);
        var toProvider = challenge.Headers.Location!;
        Assert.StartsWith(fixture.Provider.Issuer + "/authorize?", toProvider.AbsoluteUri, StringComparison.Ordinal);
        var query = QueryHelpers.ParseQuery(toProvider.Query);
        Assert.Equal("S256", query["code_challenge_method"].ToString());

        // The practitioner's browser at the provider (another site: its own client, no gateway cookies).
        fixture.Provider.NextSubject = subject;
        using var provider = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        using var atProvider = await provider.GetAsync(toProvider);
        Assert.Equal(HttpStatusCode.Redirect, atProvider.StatusCode);
        var back = atProvider.Headers.Location!;
        Assert.Equal(PractitionerLogin.CallbackPath, back.AbsolutePath);
        return await browser.Http.GetAsync(back.PathAndQuery);
    }

    [Fact]
    public async Task A_registered_practitioner_signs_in_through_the_provider_and_goes_on_with_the_authorization_request()
    {
        using var browser = BrowserAt("10.2.0.1");
        using var signedIn = await SignInThroughProviderAsync(browser, "899700000001");

        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.Equal(Authorize, signedIn.Headers.Location!.OriginalString);
        // The session is the practitioner's: the picker opens without asking to sign in.
        var (picker, _) = await browser.GetPageAsync(PatientPicker.UrlFor(Authorize));
        Assert.Equal(HttpStatusCode.OK, picker);
        var record = Assert.Single(await fixture.Gateway.AuditEventsAsync("address:exact=10.2.0.1&subtype=110122"));
        Assert.Equal("110122 0 permitted: practitioner signed in through Test PSC (dr-psc)", AuditedSearch.Summary(record));
        Assert.Equal("telemed-demo", record.Agent[0].Who!.Identifier!.Value);
        Assert.Equal("Practitioner/dr-psc", record.Agent.Single(a => a.Type?.Coding[0].Code == "humanuser").Who!.Reference);
    }

    [Fact]
    public async Task A_professional_the_gateway_does_not_list_or_a_cancelled_sign_in_gets_no_session_and_is_audited()
    {
        using var browser = BrowserAt("10.2.0.2");
        using var stranger = await SignInThroughProviderAsync(browser, "899700009999");
        using var cancelled = await SignInThroughProviderAsync(browser, subject: null);

        Assert.Equal(HttpStatusCode.Forbidden, stranger.StatusCode);
        Assert.Contains("Votre compte Test PSC n&#x27;est pas enregistré sur cette passerelle", await stranger.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, cancelled.StatusCode);
        using var picker = await browser.Http.GetAsync(PatientPicker.UrlFor(Authorize));
        Assert.StartsWith(AuthPages.LoginPath, picker.Headers.Location?.OriginalString ?? "", StringComparison.Ordinal);
        var records = await fixture.Gateway.AuditEventsAsync("address:exact=10.2.0.2&_sort=date");
        Assert.Equal("110122 4 denied: sign-in refused: 899700009999 is not a practitioner of this gateway (Test PSC)", AuditedSearch.Summary(records[0]));
        Assert.StartsWith("110122 4 denied: sign-in refused: Test PSC answer not accepted: ", AuditedSearch.Summary(records[1]), StringComparison.Ordinal);
        Assert.Equal(2, records.Count);
    }

    [Fact]
    public async Task A_forged_callback_without_the_challenges_state_is_refused()
    {
        using var browser = BrowserAt("10.2.0.3");
        using var forged = await browser.Http.GetAsync(PractitionerLogin.CallbackPath + "?code=anything&state=forged");
        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        Assert.StartsWith("110122 4 denied: sign-in refused: Test PSC answer not accepted", AuditedSearch.Summary(
            Assert.Single(await fixture.Gateway.AuditEventsAsync("address:exact=10.2.0.3"))), StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_passwords_off_the_login_page_offers_the_provider_only_and_a_posted_password_is_refused()
    {
        using var gateway = new SqliteGateway { UseRealAuthentication = true };
        ProviderGateway.Configure(gateway.Settings, fixture.Provider.Issuer);
        gateway.Settings["FhirSortie:Auth:PractitionerProvider:AllowPasswords"] = "false";
        using var browser = new BrowserSession(gateway);
        var (_, page) = await browser.GetPageAsync("/auth/login");
        Assert.Contains("Se connecter avec Test PSC", page, StringComparison.Ordinal);
        Assert.DoesNotContain("type=\"password\"", page, StringComparison.Ordinal);
        Assert.Empty(BrowserSession.FormsPosting(page, AuthPages.LoginPath));

        using var posted = await browser.Http.PostAsync(AuthPages.LoginPath, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["username"] = Practitioners.DemoUserName,
            ["password"] = Practitioners.DemoPassword,
        }));
        Assert.Equal(HttpStatusCode.Forbidden, posted.StatusCode);
        Assert.Contains("Les mots de passe ne sont pas acceptés sur cette passerelle", await posted.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var picker = await browser.Http.GetAsync(PatientPicker.UrlFor("/auth/authorize?client_id=telemed-demo"));
        Assert.StartsWith(AuthPages.LoginPath, picker.Headers.Location?.OriginalString ?? "", StringComparison.Ordinal);
        Assert.Equal("110122 4 denied: sign-in refused: passwords are not accepted on this gateway",
            AuditedSearch.Summary(Assert.Single(await gateway.AuditEventsAsync("subtype=110122&outcome=4"))));
    }

    [Fact]
    public async Task A_provider_that_cannot_be_reached_is_a_503_page_not_a_server_error()
    {
        using var gateway = new SqliteGateway { UseRealAuthentication = true };
        // Nothing listens on port 1 of 127.0.0.1: the discovery document cannot be fetched.
        ProviderGateway.Configure(gateway.Settings, "http://127.0.0.1:1");
        using var browser = new BrowserSession(gateway);
        using var challenge = await browser.Http.GetAsync(PractitionerLogin.Path);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, challenge.StatusCode);
        Assert.Contains("Test PSC est injoignable", await challenge.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not a url", "fhirsortie-gateway", "Authority")]
    [InlineData("https://psc.example/auth", "", "ClientId")]
    public void A_half_configured_provider_stops_the_start(string authority, string clientId, string named)
    {
        using var gateway = new SqliteGateway { UseRealAuthentication = true };
        gateway.Settings["FhirSortie:Auth:PractitionerProvider:Authority"] = authority;
        gateway.Settings["FhirSortie:Auth:PractitionerProvider:ClientId"] = clientId;
        var refused = Assert.ThrowsAny<Exception>(() => gateway.CreateClient().Dispose());
        Assert.Contains("PractitionerProvider:" + named, refused.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_user_needs_a_password_hash_or_a_provider_subject_and_subjects_are_unique()
    {
        Assert.Throws<InvalidOperationException>(() => new Practitioners([new PractitionerUser { UserName = "nobody" }], demoMode: false));
        Assert.Throws<InvalidOperationException>(() => new Practitioners(
            [new PractitionerUser { UserName = "a", ExternalSubject = "s1" }, new PractitionerUser { UserName = "b", ExternalSubject = "s1" }], demoMode: false));
        var practitioners = new Practitioners([new PractitionerUser { UserName = "psc-only", ExternalSubject = "s2" }], demoMode: false);
        Assert.Equal("psc-only", practitioners.FindExternal("s2")?.UserName);
        // No password to match: a password sign-in of this user is refused like a wrong password.
        Assert.Null(practitioners.Verify("psc-only", ""));
        Assert.Null(practitioners.Verify("psc-only", "anything"));
    }
}
