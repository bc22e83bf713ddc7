using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Security;

/// <summary>
/// A grant revoked by a refresh token used twice stops its access tokens: at once on the node that saw the second use,
/// within <see cref="JtiReplayStore.RevokedGrantsRefresh"/> on the others (two stores on one database are two nodes).
/// </summary>
public abstract class RevokedGrantTests(Gateway gateway)
{
    [Fact]
    public async Task A_revoked_grant_is_known_at_once_on_its_node_and_after_the_refresh_interval_on_another()
    {
        var dialect = gateway.Services.GetRequiredService<StorageDialect>();
        var clock = new MovableClock();
        var (nodeA, nodeB) = (new JtiReplayStore(dialect, clock), new JtiReplayStore(dialect, clock));
        var (client, grant, other) = ("app-" + Guid.NewGuid().ToString("N"), Guid.NewGuid().ToString("N"), Guid.NewGuid().ToString("N"));
        var ct = CancellationToken.None;
        Assert.False(await nodeB.IsGrantRevokedAsync(client, grant, ct)); // node B's copy is loaded now

        var expires = clock.GetUtcNow().AddHours(1);
        Assert.Equal(JtiReplayStore.RefreshUse.First, await nodeA.UseRefreshTokenAsync(client, "r1", grant, expires, expires, ct));
        Assert.False(await nodeA.IsGrantRevokedAsync(client, grant, ct));
        Assert.Equal(JtiReplayStore.RefreshUse.Reused, await nodeA.UseRefreshTokenAsync(client, "r1", grant, expires, expires, ct));

        Assert.True(await nodeA.IsGrantRevokedAsync(client, grant, ct));
        Assert.False(await nodeB.IsGrantRevokedAsync(client, grant, ct)); // its copy is not stale yet
        clock.Advance(JtiReplayStore.RevokedGrantsRefresh);
        Assert.True(await nodeB.IsGrantRevokedAsync(client, grant, ct));
        Assert.False(await nodeB.IsGrantRevokedAsync(client, other, ct));
        Assert.False(await nodeB.IsGrantRevokedAsync("another-" + client, grant, ct));

        // A new node learns it from the database at its first check.
        Assert.True(await new JtiReplayStore(dialect, clock).IsGrantRevokedAsync(client, grant, ct));
        // Once the revocation has expired (every token of the grant has too), it is forgotten.
        clock.Advance(TimeSpan.FromHours(2));
        Assert.False(await nodeB.IsGrantRevokedAsync(client, grant, ct));
    }
}

public sealed class SqliteRevokedGrantTests(SqliteGateway gateway) : RevokedGrantTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresRevokedGrantTests(PostgresGateway gateway) : RevokedGrantTests(gateway), IClassFixture<PostgresGateway>;
