using System.Net;
using FhirSortie.Server.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Tests.Security;

/// <summary>Two gateway nodes on one PostgreSQL database: keys and used jtis are shared through the database.</summary>
public sealed class PostgresClusterTests : IAsyncLifetime
{
    private sealed class Node(string connectionString) : Gateway
    {
        protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
        {
            ["FhirSortie:Storage:Provider"] = "Postgres",
            ["FhirSortie:Storage:ConnectionString"] = connectionString,
        };
    }

    private sealed class NodeFixture(string connectionString) : AuthFixture(new Node(connectionString) { UseRealAuthentication = true });

    private NodeFixture? _a;
    private NodeFixture? _b;
    private NodeFixture A => _a!;
    private NodeFixture B => _b!;

    public async Task InitializeAsync()
    {
        var database = TestPostgres.CreateDatabase();
        _a = new NodeFixture(database);
        await _a.InitializeAsync();
        _b = new NodeFixture(database);
        // Node B registers the same backend clients with the same keys as node A.
        await _b.InitializeAsync(keysOf: _a);
    }

    public async Task DisposeAsync()
    {
        if (_a is not null) await _a.DisposeAsync();
        if (_b is not null) await _b.DisposeAsync();
    }

    [Fact]
    public async Task Token_from_one_node_is_accepted_by_the_other()
    {
        var token = await A.DemoTokenAsync("csapa-demo", "system/*.rs");
        using var fhir = B.FhirWith(token);
        using var response = await fhir.GetAsync("Patient");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Jti_used_on_one_node_is_refused_on_the_other()
    {
        var assertion = AuthFixture.Assertion(A.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa");
        var (first, body) = await A.TokenAsync(AuthFixture.AssertionForm(assertion, "system/*.rs"));
        Assert.True(first == HttpStatusCode.OK, body.ToString());
        var (second, refused) = await B.TokenAsync(AuthFixture.AssertionForm(assertion, "system/*.rs"));
        Assert.NotEqual(HttpStatusCode.OK, second);
        Assert.Equal("invalid_client", refused.GetProperty("error").GetString());
    }

    [Fact]
    public async Task After_rotation_new_tokens_use_the_new_key_and_older_tokens_still_validate_on_both_nodes()
    {
        var before = await A.DemoTokenAsync("usmp-demo", "system/*.cruds");
        var newKid = await A.Gateway.Services.GetRequiredService<SigningKeyStore>().RotateAsync(SigningKeyStore.Sign, CancellationToken.None);
        var after = await A.DemoTokenAsync("usmp-demo", "system/*.cruds");
        Assert.Equal(newKid, new JsonWebToken(after).Kid);
        Assert.NotEqual(newKid, new JsonWebToken(before).Kid);
        // Node B looks the new kid up in the database, at most once per reload interval.
        await Task.Delay(SigningKeyStore.ReloadInterval + TimeSpan.FromMilliseconds(200));
        foreach (var node in new[] { A, B })
        {
            foreach (var token in new[] { before, after })
            {
                using var fhir = node.FhirWith(token);
                using var response = await fhir.GetAsync("Patient");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }
        // Retired: the old key no longer validates (node B reloads on the unknown kid; A reloaded when retiring).
        await A.Gateway.Services.GetRequiredService<SigningKeyStore>().RetireAsync(new JsonWebToken(before).Kid, CancellationToken.None);
        using var refused = await A.FhirWith(before).GetAsync("Patient");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }
}
