using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using FhirSortie.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Tests.Security;

/// <summary>
/// A gateway with its real token handling (no test scheme), demo mode on, and backend clients whose keys the tests
/// hold: an RSA key (RS384 and RS256), a P-384 key (ES384), a P-256 key (ES256), all registered inline, and one RSA
/// key registered by JWKS URL, served by a small web server on 127.0.0.1.
/// </summary>
public abstract class AuthFixture : IAsyncLifetime
{
    public const string TokenUrl = "http://localhost/auth/token";
    public const string Issuer = "http://localhost/";
    public const string FhirBaseUrl = "http://localhost/fhir";
    public const string ExternalIssuer = "https://idp.example.fr/realms/sante";

    public RsaSecurityKey Rsa { get; private set; } = new(RSA.Create(2048)) { KeyId = "rsa-1" };
    public ECDsaSecurityKey Ec384 { get; private set; } = new(ECDsa.Create(ECCurve.NamedCurves.nistP384)) { KeyId = "ec384-1" };
    public ECDsaSecurityKey Ec256 { get; private set; } = new(ECDsa.Create(ECCurve.NamedCurves.nistP256)) { KeyId = "ec256-1" };
    public RsaSecurityKey UrlKey { get; private set; } = new(RSA.Create(2048)) { KeyId = "url-1" };

    public Gateway Gateway { get; }
    private WebApplication? _jwksServer;

    protected AuthFixture(Gateway gateway) => Gateway = gateway;

    public Task InitializeAsync() => InitializeAsync(keysOf: null);

    /// <summary>Starts the gateway; with <paramref name="keysOf"/>, its clients have that fixture's keys (a second node).</summary>
    public async Task InitializeAsync(AuthFixture? keysOf)
    {
        if (keysOf is not null) (Rsa, Ec384, Ec256, UrlKey) = (keysOf.Rsa, keysOf.Ec384, keysOf.Ec256, keysOf.UrlKey);
        _jwksServer = await StartJwksServerAsync(Jwks(UrlKey));
        var jwksUrl = _jwksServer.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/jwks";
        Configure(Gateway.Settings, jwksUrl);
        // Build the host now so that every test sees a started gateway.
        Gateway.CreateClient().Dispose();
    }

    public void Configure(Dictionary<string, string?> settings, string jwksUrl)
    {
        settings["FhirSortie:DemoMode"] = "true";
        AddClient(settings, 0, "backend-rsa", ActorKind.Csapa, "750000028", "system/*.rs system/Patient.cruds", jwks: Jwks(Rsa));
        AddClient(settings, 1, "backend-ec384", ActorKind.Act, "750000044", "system/*.rs", jwks: Jwks(Ec384));
        AddClient(settings, 2, "backend-ec256", ActorKind.Act, "750000044", "system/*.rs", jwks: Jwks(Ec256));
        AddClient(settings, 3, "backend-url", ActorKind.Care, "750000051", "system/*.rs", jwksUri: jwksUrl);
        // An external OpenID provider whose signing key is UrlKey (same JWKS server).
        settings["FhirSortie:Auth:External:Issuer"] = ExternalIssuer;
        settings["FhirSortie:Auth:External:JwksUri"] = jwksUrl;
    }

    private static void AddClient(Dictionary<string, string?> settings, int index, string id, ActorKind kind, string finess, string scopes, string? jwks = null, string? jwksUri = null)
    {
        var prefix = $"FhirSortie:Clients:{index}:";
        settings[prefix + "ClientId"] = id;
        settings[prefix + "ActorKind"] = kind.ToString();
        settings[prefix + "OrganizationFiness"] = finess;
        settings[prefix + "AllowedScopes"] = scopes;
        if (jwks is not null) settings[prefix + "Jwks"] = jwks;
        if (jwksUri is not null) settings[prefix + "JwksUri"] = jwksUri;
    }

    public static string Jwks(AsymmetricSecurityKey key)
    {
        var jwk = key switch
        {
            RsaSecurityKey rsa => JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(rsa.Rsa.ExportParameters(false)) { KeyId = rsa.KeyId }),
            ECDsaSecurityKey ec => JsonWebKeyConverter.ConvertFromECDsaSecurityKey(new ECDsaSecurityKey(ECDsa.Create(ec.ECDsa.ExportParameters(false))) { KeyId = ec.KeyId }),
            _ => throw new ArgumentException("unsupported key"),
        };
        var entry = new Dictionary<string, string?> { ["kty"] = jwk.Kty, ["kid"] = jwk.Kid, ["n"] = jwk.N, ["e"] = jwk.E, ["crv"] = jwk.Crv, ["x"] = jwk.X, ["y"] = jwk.Y }
            .Where(p => p.Value is not null).ToDictionary(p => p.Key, p => p.Value);
        return JsonSerializer.Serialize(new { keys = new[] { entry } });
    }

    private static async Task<WebApplication> StartJwksServerAsync(string jwks)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapGet("/jwks", () => Results.Text(jwks, "application/json"));
        await app.StartAsync();
        return app;
    }

    /// <summary>A client assertion as a SMART backend client builds it, with each part overridable to break it.</summary>
    public static string Assertion(SecurityKey key, string algorithm, string clientId, string? audience = TokenUrl,
        TimeSpan? expiresIn = null, string? jti = null, string? issuer = null, string? subject = null, string tokenType = "JWT", DateTime? notBefore = null)
    {
        var now = DateTime.UtcNow;
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer ?? clientId,
            Audience = audience,
            IssuedAt = notBefore ?? now,
            NotBefore = notBefore ?? now,
            Expires = now + (expiresIn ?? TimeSpan.FromMinutes(4)),
            Claims = new Dictionary<string, object> { ["sub"] = subject ?? clientId, ["jti"] = jti ?? Guid.NewGuid().ToString("N") },
            SigningCredentials = new SigningCredentials(key, algorithm),
            TokenType = tokenType,
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    public static FormUrlEncodedContent AssertionForm(string assertion, string scope) => new(new Dictionary<string, string>
    {
        ["grant_type"] = "client_credentials",
        ["scope"] = scope,
        ["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ["client_assertion"] = assertion,
    });

    public async Task<(HttpStatusCode Status, JsonElement Body)> TokenAsync(HttpContent form, AuthenticationHeaderValue? authorization = null)
    {
        using var http = Gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/auth/token") { Content = form };
        request.Headers.Authorization = authorization;
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>A client_credentials token for a demo client (client_secret_post).</summary>
    public async Task<string> DemoTokenAsync(string clientId, string scope)
    {
        var (status, body) = await TokenAsync(new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = clientId + "-secret", ["scope"] = scope,
        }));
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        return body.GetProperty("access_token").GetString()!;
    }

    public HttpClient FhirWith(string? accessToken)
    {
        var client = Gateway.Fhir();
        if (accessToken is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        return client;
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        if (_jwksServer is not null) await _jwksServer.DisposeAsync();
    }
}

public sealed class SqliteAuthFixture() : AuthFixture(new SqliteGateway { UseRealAuthentication = true });

public sealed class PostgresAuthFixture() : AuthFixture(new PostgresGateway { UseRealAuthentication = true });
