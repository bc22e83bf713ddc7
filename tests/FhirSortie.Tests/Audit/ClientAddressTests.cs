using System.Net;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// A gateway behind a load balancer: the proxy 10.0.0.5 and the network 10.1.0.0/16 are trusted. The in-process test
/// server has no sockets, so the connection's peer address is set from the X-Test-Peer header before the gateway's
/// own middleware runs.
/// </summary>
public abstract class ProxiedGateway<TGateway> : IDisposable where TGateway : Gateway, new()
{
    public TGateway Gateway { get; } = new() { TestServices = services => services.AddSingleton<IStartupFilter, PeerFromHeader>() };

    protected ProxiedGateway()
    {
        Gateway.Settings["FhirSortie:ForwardedHeaders:KnownProxies"] = "10.0.0.5";
        Gateway.Settings["FhirSortie:ForwardedHeaders:KnownNetworks:0"] = "10.1.0.0/16";
    }

    public void Dispose()
    {
        Gateway.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Sets the connection's peer address from the X-Test-Peer header (the in-process test server has no sockets), before the gateway's middleware.</summary>
public sealed class PeerFromHeader : IStartupFilter
{
    public const string Header = "X-Test-Peer";

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (context, following) =>
        {
            if (context.Request.Headers[Header].ToString() is { Length: > 0 } peer) context.Connection.RemoteIpAddress = IPAddress.Parse(peer);
            await following(context);
        });
        next(app);
    };
}

public sealed class SqliteProxiedGateway : ProxiedGateway<SqliteGateway>;

public sealed class PostgresProxiedGateway : ProxiedGateway<PostgresGateway>;

/// <summary>Every AuditEvent records the client's address (agent.network.address), searchable with <c>address</c>.</summary>
public abstract class ClientAddressTests(Gateway gateway)
{
    private static string Caller(string clientId) => TestAuthenticationHandler.Describe(clientId, ActorKind.Usmp, "750000010", "system/*.cruds");

    private async Task<string> AsAsync(string peer, string? forwardedFor, Func<HttpClient, Task<HttpResponseMessage>> send)
    {
        var client = "addr-" + Guid.NewGuid().ToString("N");
        using var http = gateway.Fhir(Caller(client));
        http.DefaultRequestHeaders.Add(PeerFromHeader.Header, peer);
        if (forwardedFor is not null) http.DefaultRequestHeaders.Add("X-Forwarded-For", forwardedFor);
        using var response = await send(http);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return client;
    }

    private async Task<List<AuditEvent>> AuditsAsync(string query)
    {
        using var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        using var response = await auditor.GetAsync("AuditEvent?" + query + "&_count=100");
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return (await response.ReadAs<Bundle>()).Entry.Select(e => (AuditEvent)e.Resource!).ToList();
    }

    private async Task<string?> AddressOfAsync(string client) =>
        Assert.Single(await AuditsAsync("agent:identifier=" + client)).Agent[0].Network?.Address;

    private static Task<HttpResponseMessage> Search(HttpClient http) => http.GetAsync("Organization?_count=1");

    [Fact]
    public async Task The_record_names_the_client_a_trusted_proxy_forwards_and_the_peer_otherwise()
    {
        var viaProxy = await AsAsync("10.0.0.5", "203.0.113.7", Search);
        var viaNetwork = await AsAsync("10.1.4.4", "198.51.100.1, 203.0.113.8", Search);
        var posing = await AsAsync("198.51.100.9", "203.0.113.66", Search);
        var mapped = await AsAsync("::ffff:192.0.2.10", null, Search);
        var v6 = await AsAsync("2001:DB8::5", null, Search);
        var writer = await AsAsync("10.0.0.5", "203.0.113.9", http => http.PostAsync("Organization", FhirHttp.Json(new Organization { Name = "Adresse" })));

        Assert.Equal("203.0.113.7", await AddressOfAsync(viaProxy));
        // Only the last hop: the address the trusted proxy saw.
        Assert.Equal("203.0.113.8", await AddressOfAsync(viaNetwork));
        // A client sending the header itself is not believed.
        Assert.Equal("198.51.100.9", await AddressOfAsync(posing));
        Assert.Equal("192.0.2.10", await AddressOfAsync(mapped));
        Assert.Equal("2001:db8::5", await AddressOfAsync(v6));
        // A write's record (written in its own transaction) has it too.
        Assert.Equal("203.0.113.9", await AddressOfAsync(writer));
        var network = (await AuditsAsync("agent:identifier=" + viaProxy))[0].Agent[0].Network!;
        Assert.Equal(AuditEvent.AuditEventAgentNetworkType.N2, network.Type);
    }

    [Fact]
    public async Task Address_searches_as_a_string_starts_with_and_exact()
    {
        var first = await AsAsync("10.0.0.5", "192.0.2.201", Search);
        var second = await AsAsync("10.0.0.5", "192.0.2.202", Search);
        var other = await AsAsync("10.0.0.5", "192.0.20.1", Search);
        var v6 = await AsAsync("2001:db8:ab::7", null, Search);

        string[] Clients(List<AuditEvent> audits) => audits.Select(a => a.Agent[0].Who!.Identifier!.Value).Where(c => c is not null).Select(c => c!)
            .Where(c => c == first || c == second || c == other || c == v6).Order(StringComparer.Ordinal).ToArray();

        Assert.Equal(new[] { first, second }.Order(StringComparer.Ordinal), Clients(await AuditsAsync("address=192.0.2.20")));
        Assert.Equal([first], Clients(await AuditsAsync("address=192.0.2.201")));
        Assert.Equal([first], Clients(await AuditsAsync("address:exact=192.0.2.201")));
        Assert.Empty(Clients(await AuditsAsync("address:exact=192.0.2.20")));
        Assert.Equal(new[] { first, other }.Order(StringComparer.Ordinal), Clients(await AuditsAsync("address=192.0.2.201,192.0.20")));
        Assert.Equal([v6], Clients(await AuditsAsync("address=2001:DB8:AB:")));
        // Combined with the client, as a security officer narrows a search.
        Assert.Single(await AuditsAsync($"address=192.0.2&agent:identifier={second}"));

        using var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        using var strict = new HttpRequestMessage(HttpMethod.Get, "AuditEvent?address:contains=0.2");
        strict.Headers.Add("Prefer", "handling=strict");
        using var refused = await auditor.SendAsync(strict);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
    }
}

public sealed class SqliteClientAddressTests(SqliteProxiedGateway proxied) : ClientAddressTests(proxied.Gateway), IClassFixture<SqliteProxiedGateway>;

public sealed class PostgresClientAddressTests(PostgresProxiedGateway proxied) : ClientAddressTests(proxied.Gateway), IClassFixture<PostgresProxiedGateway>;

/// <summary>A proxy list that does not parse stops the start, naming the setting (a typo must not silently trust nobody, or everybody).</summary>
public sealed class TrustedProxiesConfigurationTests
{
    [Theory]
    [InlineData("KnownProxies", "10.0.0.300", "is not an IP address")]
    [InlineData("KnownProxies", "10.0.0.5, lb.example", "is not an IP address")]
    [InlineData("KnownNetworks:0", "10.1.0.0", "CIDR")]
    [InlineData("KnownNetworks", "10.1.0.0/16,10.2.0.0/99", "CIDR")]
    public void A_bad_address_or_network_is_refused_at_start(string key, string value, string message)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [Server.Rest.TrustedProxies.Section + ":" + key] = value }).Build();
        var app = new Microsoft.AspNetCore.Builder.ApplicationBuilder(new ServiceCollection().BuildServiceProvider());

        var refused = Assert.Throws<InvalidOperationException>(() => { Server.Rest.TrustedProxies.UseTrustedProxies(app, configuration); });

        Assert.Contains(message, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_comma_separated_value_and_a_list_are_both_read()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                [Server.Rest.TrustedProxies.Section + ":KnownProxies"] = "10.0.0.5, 10.0.0.6",
                [Server.Rest.TrustedProxies.Section + ":KnownNetworks:0"] = "10.1.0.0/16",
                [Server.Rest.TrustedProxies.Section + ":KnownNetworks:1"] = "fd00::/8",
            }).Build();
        var app = new Microsoft.AspNetCore.Builder.ApplicationBuilder(new ServiceCollection().BuildServiceProvider());
        Server.Rest.TrustedProxies.UseTrustedProxies(app, configuration);
    }
}
