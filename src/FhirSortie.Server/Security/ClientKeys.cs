using System.Collections.Concurrent;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Server.Security;

/// <summary>
/// The public keys a client signs its assertions with: inline (Jwks) or fetched from its JwksUri with a short cache
/// (FhirSortie:Auth:JwksCacheSeconds). An unknown kid triggers one refetch, at most every 10 seconds, so a client that
/// rotates its key is served without waiting for the cache to expire.
/// </summary>
public sealed class ClientKeys(IHttpClientFactory httpClients, TimeProvider clock, Microsoft.Extensions.Options.IOptions<AuthOptions> options, ILogger<ClientKeys> logger)
{
    public const string HttpClientName = "client-jwks";

    private sealed record Cached(IReadOnlyList<SecurityKey> Keys, DateTimeOffset FetchedAt);

    private readonly ConcurrentDictionary<Uri, Cached> _cache = new();

    public async Task<IReadOnlyList<SecurityKey>> ForAsync(Client client, string? kid, CancellationToken ct)
    {
        if (client.Jwks is not null) return [.. client.Jwks.GetSigningKeys()];
        if (client.JwksUri is null) return [];
        var now = clock.GetUtcNow();
        if (_cache.TryGetValue(client.JwksUri, out var cached))
        {
            var fresh = now - cached.FetchedAt < TimeSpan.FromSeconds(options.Value.JwksCacheSeconds);
            var knowsKid = kid is null || cached.Keys.Any(k => k.KeyId == kid);
            if (fresh && (knowsKid || now - cached.FetchedAt < TimeSpan.FromSeconds(10))) return cached.Keys;
        }
        try
        {
            using var http = httpClients.CreateClient(HttpClientName);
            using var response = await http.GetAsync(client.JwksUri, ct);
            response.EnsureSuccessStatusCode();
            IReadOnlyList<SecurityKey> keys = [.. new JsonWebKeySet(await response.Content.ReadAsStringAsync(ct)).GetSigningKeys()];
            _cache[client.JwksUri] = new Cached(keys, now);
            return keys;
        }
        catch (Exception e) when (e is HttpRequestException or ArgumentException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            logger.LogWarning("Could not fetch the JWKS of client {ClientId}: {Error}", client.ClientId, e.Message);
            return cached?.Keys ?? [];
        }
    }
}
