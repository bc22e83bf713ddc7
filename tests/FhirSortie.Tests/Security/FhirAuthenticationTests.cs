using System.Net;
using System.Text;
using System.Text.Json;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Tests.Security;

/// <summary>Bearer tokens on /fhir: what is accepted, what gets 401 (with WWW-Authenticate and an OperationOutcome).</summary>
public abstract class FhirAuthenticationTests(AuthFixture auth)
{
    private static async Task AssertUnauthorizedAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.StartsWith("Bearer", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Equal(OperationOutcome.IssueType.Login, Assert.Single(outcome.Issue).Code);
    }

    /// <summary>An access token signed with the gateway's own current key, claims chosen by the test.</summary>
    private string OwnToken(Action<SecurityTokenDescriptor>? change = null)
    {
        var keys = auth.Gateway.Services.GetRequiredService<SigningKeyStore>().Current;
        var now = DateTime.UtcNow;
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = AuthFixture.Issuer,
            Audience = AuthFixture.FhirBaseUrl,
            IssuedAt = now, NotBefore = now, Expires = now.AddMinutes(5),
            TokenType = "at+jwt",
            Claims = new Dictionary<string, object>
            {
                ["sub"] = "usmp-demo", ["client_id"] = "usmp-demo", ["actor_kind"] = "Usmp", ["finess"] = "750000010", ["scope"] = "system/*.cruds",
            },
            SigningCredentials = keys.SigningCredentials,
        };
        change?.Invoke(descriptor);
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    [Fact]
    public async Task Valid_token_reads_the_demo_organisation_seeded_with_its_finess()
    {
        using var fhir = auth.FhirWith(await auth.DemoTokenAsync("csapa-demo", "system/*.rs"));
        using var response = await fhir.GetAsync($"Organization?identifier={Finess.System}|750000028");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var bundle = await response.ReadAs<Bundle>();
        var organization = Assert.IsType<Organization>(Assert.Single(bundle.Entry).Resource);
        Assert.Equal("CSAPA Les Tilleuls (demo)", organization.Name);
    }

    [Fact]
    public async Task Own_test_token_is_accepted_so_the_refusals_below_are_about_their_defect()
    {
        using var fhir = auth.FhirWith(OwnToken());
        using var response = await fhir.GetAsync("Patient");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task No_token_gets_401()
    {
        using var fhir = auth.FhirWith(null);
        await AssertUnauthorizedAsync(await fhir.GetAsync("Patient"));
    }

    public static TheoryData<string> Defects => ["expired", "wrong audience", "wrong issuer", "alg none", "tampered signature", "not at+jwt", "foreign key", "no caller claims", "garbage"];

    [Theory]
    [MemberData(nameof(Defects))]
    public async Task Bad_token_gets_401(string defect)
    {
        var token = defect switch
        {
            "expired" => OwnToken(d => { d.IssuedAt = d.NotBefore = DateTime.UtcNow.AddMinutes(-10); d.Expires = DateTime.UtcNow.AddMinutes(-5); }),
            "wrong audience" => OwnToken(d => d.Audience = "https://other.example.fr/fhir"),
            "wrong issuer" => OwnToken(d => d.Issuer = "https://evil.example.fr/"),
            "alg none" => Unsigned(),
            "tampered signature" => Tampered(await auth.DemoTokenAsync("csapa-demo", "system/*.rs")),
            "not at+jwt" => OwnToken(d => d.TokenType = "JWT"),
            "foreign key" => OwnToken(d => d.SigningCredentials = new SigningCredentials(new RsaSecurityKey(System.Security.Cryptography.RSA.Create(2048)) { KeyId = "x" }, SecurityAlgorithms.RsaSha256)),
            "no caller claims" => OwnToken(d => d.Claims = new Dictionary<string, object> { ["sub"] = "someone", ["scope"] = "system/*.cruds" }),
            "garbage" => "not-a-token",
            _ => throw new ArgumentException(defect),
        };
        using var fhir = auth.FhirWith(token);
        await AssertUnauthorizedAsync(await fhir.GetAsync("Patient"));
    }

    private static string B64(string json) => Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(json));

    private static string Unsigned()
    {
        var exp = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
        return B64("""{"alg":"none","typ":"at+jwt"}""") + "." + B64($$"""
            {"iss":"{{AuthFixture.Issuer}}","aud":"{{AuthFixture.FhirBaseUrl}}","exp":{{exp}},"sub":"x","client_id":"usmp-demo","actor_kind":"Usmp","scope":"system/*.cruds"}
            """) + ".";
    }

    /// <summary>The payload rewritten to ask for more scopes, the signature left as it was.</summary>
    private static string Tampered(string token)
    {
        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("system/*.rs", "system/*.cruds", StringComparison.Ordinal);
        return parts[0] + "." + B64(payload) + "." + parts[2];
    }

    private string ExternalToken(string audience = AuthFixture.FhirBaseUrl, string issuer = AuthFixture.ExternalIssuer)
    {
        var now = DateTime.UtcNow;
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer, Audience = audience, IssuedAt = now, NotBefore = now, Expires = now.AddMinutes(5), TokenType = "JWT",
            // Keycloak style: the client in azp, scopes space-separated; system/*.cruds is more than backend-url may have.
            Claims = new Dictionary<string, object> { ["sub"] = "svc-1", ["azp"] = "backend-url", ["scope"] = "system/*.rs system/*.cruds" },
            SigningCredentials = new SigningCredentials(auth.UrlKey, SecurityAlgorithms.RsaSha256),
        });
    }

    [Fact]
    public async Task External_provider_token_is_accepted_and_mapped_to_the_configured_client()
    {
        using var fhir = auth.FhirWith(ExternalToken());
        using var response = await fhir.GetAsync("Patient");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task External_provider_token_for_another_audience_gets_401()
    {
        using var fhir = auth.FhirWith(ExternalToken(audience: "https://other.example.fr/fhir"));
        await AssertUnauthorizedAsync(await fhir.GetAsync("Patient"));
    }

    [Fact]
    public async Task Token_in_the_query_string_gets_401()
    {
        var token = await auth.DemoTokenAsync("csapa-demo", "system/*.rs");
        using var fhir = auth.FhirWith(null);
        await AssertUnauthorizedAsync(await fhir.GetAsync("Patient?access_token=" + token));
    }

    [Fact]
    public async Task Metadata_needs_no_token_and_declares_smart_security()
    {
        using var fhir = auth.FhirWith(null);
        using var response = await fhir.GetAsync("metadata");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var statement = await response.ReadAs<CapabilityStatement>();
        var security = statement.Rest[0].Security;
        Assert.Contains(security!.Service, s => s.Coding.Any(c => c.Code == "SMART-on-FHIR" && c.System == "http://terminology.hl7.org/CodeSystem/restful-security-service"));
        var uris = Assert.IsType<Extension>(security.GetExtension(SmartConfiguration.OAuthUrisExtension));
        Assert.Equal(AuthFixture.TokenUrl, uris.GetExtensionValue<FhirUri>("token").Value);
        Assert.Equal("http://localhost/auth/authorize", uris.GetExtensionValue<FhirUri>("authorize").Value);
        Assert.Equal("http://localhost/auth/revoke", uris.GetExtensionValue<FhirUri>("revoke").Value);
        Assert.Equal("http://localhost/auth/introspect", uris.GetExtensionValue<FhirUri>("introspect").Value);
    }

    [Fact]
    public async Task Smart_configuration_needs_no_token_and_is_json_whatever_the_accept_header()
    {
        using var http = auth.Gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/fhir/.well-known/smart-configuration");
        request.Headers.Accept.ParseAdd("application/fhir+xml");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = document.RootElement;
        Assert.Equal(AuthFixture.TokenUrl, root.GetProperty("token_endpoint").GetString());
        Assert.Equal("http://localhost/auth/authorize", root.GetProperty("authorization_endpoint").GetString());
        Assert.Equal("http://localhost/auth/jwks", root.GetProperty("jwks_uri").GetString());
        Assert.Equal("http://localhost/auth/revoke", root.GetProperty("revocation_endpoint").GetString());
        Assert.Equal("http://localhost/auth/introspect", root.GetProperty("introspection_endpoint").GetString());
        Assert.Equal(AuthFixture.Issuer, root.GetProperty("issuer").GetString());
        Assert.Equal(["S256"], root.GetProperty("code_challenge_methods_supported").EnumerateArray().Select(e => e.GetString()));
        var capabilities = root.GetProperty("capabilities").EnumerateArray().Select(e => e.GetString()).ToHashSet();
        Assert.Subset(capabilities, new HashSet<string?> { "permission-v2", "client-confidential-asymmetric", "launch-standalone" });
        Assert.Contains("private_key_jwt", root.GetProperty("token_endpoint_auth_methods_supported").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("RS384", root.GetProperty("token_endpoint_auth_signing_alg_values_supported").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("system/*.rs", root.GetProperty("scopes_supported").EnumerateArray().Select(e => e.GetString()));
    }
}

public sealed class SqliteFhirAuthenticationTests(SqliteAuthFixture auth) : FhirAuthenticationTests(auth), IClassFixture<SqliteAuthFixture>;

public sealed class PostgresFhirAuthenticationTests(PostgresAuthFixture auth) : FhirAuthenticationTests(auth), IClassFixture<PostgresAuthFixture>;
