using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Security;

/// <summary>
/// Client-assertion identifiers already used, kept in the database (table auth_jti, unique on client and jti) so that
/// an assertion replayed against another gateway node is refused too. A row is only needed until the assertion
/// expires; expired rows are deleted as new ones come in.
/// </summary>
public sealed class JtiReplayStore(StorageDialect dialect, TimeProvider clock)
{
    private long _nextCleanUp;

    /// <summary>True the first time (client, jti) is seen; false on a replay.</summary>
    public async Task<bool> TryUseAsync(string clientId, string jti, DateTimeOffset expires, CancellationToken ct)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var (connection, tx, writerLock) = await dialect.BeginWriteAsync(ct);
        try
        {
            await using (connection)
            await using (tx)
            {
                // Clean-up at most once a minute per node, inside the write we do anyway.
                if (now >= Interlocked.Read(ref _nextCleanUp))
                {
                    Interlocked.Exchange(ref _nextCleanUp, now + 60_000);
                    await using var delete = Sql.Command(connection, tx, "DELETE FROM auth_jti WHERE expires < @now").With("@now", now);
                    await delete.ExecuteNonQueryAsync(ct);
                }
                await using var insert = Sql.Command(connection, tx, """
                    INSERT INTO auth_jti (client_id, jti, expires) VALUES (@client, @jti, @expires)
                    ON CONFLICT (client_id, jti) DO NOTHING
                    """).With("@client", clientId).With("@jti", jti).With("@expires", expires.ToUnixTimeMilliseconds());
                var inserted = await insert.ExecuteNonQueryAsync(ct) == 1;
                await tx.CommitAsync(ct);
                return inserted;
            }
        }
        finally
        {
            writerLock?.Dispose();
        }
    }
}
