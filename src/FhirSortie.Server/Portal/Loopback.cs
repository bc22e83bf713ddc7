using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The portal calls this very node's /auth and /fhir over HTTP, like any SMART app, but without leaving the machine:
/// the connection goes to the node's own listening address, and the request keeps the Host the browser used so that
/// the issuer and the audience of the tokens are the ones the browser's origin gets (behind a load balancer,
/// FhirSortie:PublicBaseUrl fixes both). FhirSortie:Portal:LoopbackUrl overrides the address.
/// </summary>
public sealed class Loopback(IServer server, IConfiguration configuration)
{
    public const string HttpClientName = "FhirSortie.Portal";

    public Uri BaseFor(HttpContext browserRequest)
    {
        if (configuration["FhirSortie:Portal:LoopbackUrl"] is { Length: > 0 } configured) return new Uri(configured.TrimEnd('/') + "/");
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var parsed = addresses.Select(a => Uri.TryCreate(a.Replace("://+", "://0.0.0.0", StringComparison.Ordinal).Replace("://*", "://0.0.0.0", StringComparison.Ordinal)
            .Replace("://[::]", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var u) ? u : null).OfType<Uri>().ToList();
        // Plain HTTP first (TLS ends at the load balancer); the browser's scheme when the node serves both.
        var pick = parsed.FirstOrDefault(u => u.Scheme == browserRequest.Request.Scheme) ?? parsed.FirstOrDefault(u => u.Scheme == Uri.UriSchemeHttp) ?? parsed.FirstOrDefault()
            ?? throw new InvalidOperationException("The portal cannot find this node's listening address; set FhirSortie:Portal:LoopbackUrl.");
        var host = pick.Host is "0.0.0.0" or "localhost" ? "127.0.0.1" : pick.Host;
        return new Uri($"{pick.Scheme}://{host}:{pick.Port}/");
    }
}
