using FhirSortie.Server.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Storage;

/// <summary>
/// <see cref="StorageDialect.LockAsync"/> on PostgreSQL: write transactions naming the same key take turns until the
/// first one ends (the letter imports of one CDA set rely on it; SQLite's writers take turns anyway).
/// </summary>
public sealed class PostgresWriteLockTests(PostgresGateway gateway) : IClassFixture<PostgresGateway>
{
    private ResourceStore Store => gateway.Services.GetRequiredService<ResourceStore>();

    [Fact]
    public async Task A_second_transaction_locking_the_same_key_waits_for_the_first_to_commit()
    {
        await using var first = await Store.BeginWriteAsync(CancellationToken.None);
        await Store.Dialect.LockAsync(first.Connection, first.Transaction, "cda-set:test-1", CancellationToken.None);

        await using var other = await Store.BeginWriteAsync(CancellationToken.None);
        await Store.Dialect.LockAsync(other.Connection, other.Transaction, "cda-set:test-2", CancellationToken.None); // another key: no wait
        await other.CommitAsync(CancellationToken.None);

        await using var second = await Store.BeginWriteAsync(CancellationToken.None);
        var waiting = Store.Dialect.LockAsync(second.Connection, second.Transaction, "cda-set:test-1", CancellationToken.None);
        await Task.Delay(300);
        Assert.False(waiting.IsCompleted);

        await first.CommitAsync(CancellationToken.None);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        await second.CommitAsync(CancellationToken.None);
    }
}
