using System.Net;
using Microsoft.AspNetCore.HttpOverrides;

namespace FhirSortie.Server.Rest;

/// <summary>
/// The load balancer in front of the nodes (FhirSortie:ForwardedHeaders:KnownProxies, KnownNetworks): the client
/// address it names in X-Forwarded-For becomes the request's remote address, which every AuditEvent records
/// (agent.network.address) and the CSAPA's security officer searches by (AuditEvent?address=); the scheme it names in
/// X-Forwarded-Proto becomes the request's (TLS ends at the balancer). ASP.NET Core's forwarded-headers middleware
/// does the work; only the last hop is taken (ForwardLimit 1), and only from a listed proxy, so a client cannot pose
/// as another address by sending the header itself. With nothing configured only a proxy on the same host (loopback)
/// is trusted, as ASP.NET Core does by default. X-Forwarded-Host is not honoured: FhirSortie:PublicBaseUrl says the
/// public address.
/// </summary>
public static class TrustedProxies
{
    public const string Section = "FhirSortie:ForwardedHeaders";

    /// <summary>Place it first: the request logging and every later middleware see the client's address and scheme.</summary>
    public static IApplicationBuilder UseTrustedProxies(this IApplicationBuilder app, IConfiguration configuration)
    {
        var section = configuration.GetSection(Section);
        var options = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto };
        foreach (var proxy in List(section, "KnownProxies"))
        {
            if (!IPAddress.TryParse(proxy, out var address))
                throw new InvalidOperationException($"{Section}:KnownProxies: '{proxy}' is not an IP address.");
            options.KnownProxies.Add(address);
        }
        foreach (var network in List(section, "KnownNetworks"))
        {
            if (!System.Net.IPNetwork.TryParse(network, out var parsed))
                throw new InvalidOperationException($"{Section}:KnownNetworks: '{network}' is not a network in CIDR notation (10.0.0.0/24).");
            options.KnownIPNetworks.Add(parsed);
        }
        return app.UseForwardedHeaders(options);
    }

    /// <summary>
    /// KnownProxies (IP addresses) or KnownNetworks (CIDR, 10.0.0.0/24): a list (KnownProxies:0, KnownProxies:1... or
    /// FhirSortie__ForwardedHeaders__KnownProxies__0) or one comma-separated value (FhirSortie__ForwardedHeaders__KnownProxies=10.0.0.5,10.0.0.6).
    /// </summary>
    private static IEnumerable<string> List(IConfigurationSection section, string key)
    {
        var setting = section.GetSection(key);
        var values = setting.Value is { Length: > 0 } single ? [single] : setting.GetChildren().Select(c => c.Value ?? "");
        return values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}
