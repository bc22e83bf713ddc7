using System.Security.Claims;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Server.Security;

/// <summary>
/// Trust in an external OpenID provider (FhirSortie:Auth:External): its access tokens are checked for issuer,
/// audience, lifetime, signature (its JWKS, fetched and cached; refetched on an unknown kid at most every 10 s) and
/// algorithm, then mapped onto the <see cref="Caller"/> contract. The client the token was issued to must be one of
/// our configured clients: that is where the actor kind and FINESS come from when the token does not carry them,
/// and it bounds the scopes to those the client's AllowedScopes cover (ScopeNegotiation).
/// </summary>
public sealed class ExternalProvider(IOptions<AuthOptions> options, ClientRegistry registry, IHttpClientFactory httpClients, TimeProvider clock, ILogger<ExternalProvider> logger)
{
    private static readonly string[] Algorithms =
        [SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512, SecurityAlgorithms.EcdsaSha256,
         SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512, SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384];

    private IReadOnlyList<SecurityKey> _keys = [];
    private DateTimeOffset _fetchedAt = DateTimeOffset.MinValue;
    private readonly SemaphoreSlim _fetch = new(1, 1);

    private ExternalProviderOptions? Settings => options.Value.External is { Issuer.Length: > 0 } e ? e : null;

    public bool Handles(string? issuer) =>
        Settings is { } e && issuer is not null && string.Equals(issuer.TrimEnd('/'), e.Issuer.TrimEnd('/'), StringComparison.Ordinal);

    public async Task<(ClaimsIdentity?, string?)> ValidateAsync(string token, JsonWebToken unverified, string fhirBase, CancellationToken ct)
    {
        var e = Settings!;
        var keys = await KeysAsync(e, unverified.Kid, ct);
        var parameters = new TokenValidationParameters
        {
            ValidIssuers = [e.Issuer, e.Issuer.TrimEnd('/')],
            ValidAudience = e.Audience ?? fhirBase,
            IssuerSigningKeys = keys,
            ValidAlgorithms = Algorithms,
            ValidTypes = e.TokenTypes,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = FhirBearerHandler.ClockSkew,
        };
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, parameters);
        if (!result.IsValid) return (null, FhirBearerHandler.Describe(result.Exception));
        var claims = result.ClaimsIdentity;

        var clientId = claims.FindFirst(e.ClientIdClaim)?.Value ?? claims.FindFirst(Caller.Claims.ClientId)?.Value;
        var client = registry.Find(clientId);
        if (client is null) return (null, "The access token was issued to a client this gateway does not know.");
        var scopes = claims.FindAll(e.ScopeClaim).SelectMany(c => ScopeValues(c.Value))
            .Where(s => ScopeNegotiation.Covers(client.AllowedScopes, s)).Distinct(StringComparer.Ordinal).ToArray();

        var identity = new ClaimsIdentity(FhirBearerHandler.SchemeName);
        identity.AddClaim(new Claim(Caller.Claims.ClientId, client.ClientId));
        identity.AddClaim(new Claim(Caller.Claims.ActorKind, claims.FindFirst(e.ActorKindClaim)?.Value ?? client.Kind.ToString()));
        if ((claims.FindFirst(e.FinessClaim)?.Value ?? client.OrganizationFiness) is { } finess) identity.AddClaim(new Claim(Caller.Claims.OrganizationFiness, finess));
        identity.AddClaim(new Claim(Caller.Claims.Scope, string.Join(' ', scopes)));
        if (claims.FindFirst(e.PatientClaim)?.Value is { } patient) identity.AddClaim(new Claim(Caller.Claims.Patient, patient));
        if (claims.FindFirst(e.FhirUserClaim)?.Value is { } fhirUser) identity.AddClaim(new Claim(Caller.Claims.FhirUser, fhirUser));
        if (claims.FindFirst("sub")?.Value is { } sub) identity.AddClaim(new Claim("sub", sub));
        return (identity, null);
    }

    /// <summary>A scope claim may be a space-separated string or a JSON array (as Keycloak and others differ).</summary>
    private static IEnumerable<string> ScopeValues(string value)
    {
        if (value.StartsWith('['))
        {
            try
            {
                return JsonSerializer.Deserialize<string[]>(value) ?? [];
            }
            catch (JsonException)
            {
                return [];
            }
        }
        return value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    private async Task<IReadOnlyList<SecurityKey>> KeysAsync(ExternalProviderOptions e, string? kid, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var known = kid is null || _keys.Any(k => k.KeyId == kid);
        if (now - _fetchedAt < TimeSpan.FromMinutes(10) && (known || now - _fetchedAt < TimeSpan.FromSeconds(10))) return _keys;
        await _fetch.WaitAsync(ct);
        try
        {
            using var http = httpClients.CreateClient(ClientKeys.HttpClientName);
            var jwksUri = e.JwksUri;
            if (string.IsNullOrEmpty(jwksUri))
            {
                using var discovery = JsonDocument.Parse(await http.GetStringAsync(e.Issuer.TrimEnd('/') + "/.well-known/openid-configuration", ct));
                jwksUri = discovery.RootElement.GetProperty("jwks_uri").GetString();
            }
            _keys = [.. new JsonWebKeySet(await http.GetStringAsync(jwksUri, ct)).GetSigningKeys()];
            _fetchedAt = now;
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException or KeyNotFoundException or ArgumentException)
        {
            logger.LogWarning("Could not fetch the external provider's keys: {Error}", ex.Message);
        }
        finally
        {
            _fetch.Release();
        }
        return _keys;
    }
}
