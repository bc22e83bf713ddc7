using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Security;

/// <summary>
/// Client-assertion identifiers already used, kept in the database (table auth_jti, unique on client and jti) so that
/// an assertion replayed against another gateway node is refused too. A row is only needed until the assertion
/// expires; expired rows are deleted as new ones come in.
/// It also keeps the grants revoked (by a refresh token used twice, or at the revocation endpoint), and answers, for every request that carries an access
/// token of a grant, whether that grant was revoked (<see cref="IsGrantRevokedAsync"/>).
/// </summary>
public sealed class JtiReplayStore(StorageDialect dialect, TimeProvider clock)
{
    private long _nextCleanUp;

    /// <summary>
    /// How stale this node's copy of the revoked grants may be: a grant revoked on another node stops its access tokens
    /// here within this time (at once on the node that revoked it). Without the check they lived until they expired
    /// (5 minutes).
    /// </summary>
    public static readonly TimeSpan RevokedGrantsRefresh = TimeSpan.FromSeconds(5);

    private volatile RevokedSnapshot _revoked = new([], long.MinValue);
    private readonly SemaphoreSlim _reloading = new(1, 1);
    private readonly Lock _adding = new();

    private sealed record RevokedSnapshot(HashSet<string> Keys, long LoadedMs);

    /// <summary>
    /// True when the grant of an access token was revoked. Answered from a copy of the revocations reloaded from the
    /// database at most every <see cref="RevokedGrantsRefresh"/>, by one request while the others use the copy they have
    /// (so a read pays a set lookup, and a query every few seconds per node).
    /// </summary>
    public async ValueTask<bool> IsGrantRevokedAsync(string clientId, string grant, CancellationToken ct)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var snapshot = _revoked;
        var never = snapshot.LoadedMs == long.MinValue;
        // Stale: one request reloads, the others go on with the copy they have; before the first load, all wait for it.
        if ((never || now - snapshot.LoadedMs >= RevokedGrantsRefresh.TotalMilliseconds) && await _reloading.WaitAsync(never ? Timeout.Infinite : 0, ct))
        {
            try
            {
                if (_revoked.LoadedMs == snapshot.LoadedMs) _revoked = new RevokedSnapshot(await LoadRevokedAsync(now, ct), now);
                snapshot = _revoked;
            }
            finally
            {
                _reloading.Release();
            }
        }
        return snapshot.Keys.Contains(RevokedKey(RevokedGrants + clientId, grant));
    }

    private async Task<HashSet<string>> LoadRevokedAsync(long now, CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        // A prefix match, not a range on client_id: PostgreSQL's linguistic collations do not order "revoked-grant:..."
        // between two bounds the way bytes do. The table only holds rows that have not expired yet (cleaned up on writes).
        await using var select = Sql.Command(connection, null,
            "SELECT client_id, jti FROM auth_jti WHERE client_id LIKE @prefix AND expires >= @now")
            .With("@prefix", RevokedGrants + "%").With("@now", now);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await select.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) keys.Add(RevokedKey(reader.GetString(0), reader.GetString(1)));
        return keys;
    }

    /// <summary>A revocation row's (client_id, jti) as one key of the in-memory copy.</summary>
    private static string RevokedKey(string row, string grant) => row + "\n" + grant;

    /// <summary>True the first time (client, jti) is seen; false on a replay.</summary>
    public async Task<bool> TryUseAsync(string clientId, string jti, DateTimeOffset expires, CancellationToken ct)
    {
        await using var unit = await BeginAsync(ct);
        var inserted = await InsertAsync(unit, clientId, jti, expires, ct);
        await unit.CommitAsync(ct);
        return inserted;
    }

    /// <summary>What redeeming a refresh token found (<see cref="UseRefreshTokenAsync"/>).</summary>
    public enum RefreshUse { First, Reused, GrantRevoked }

    /// <summary>
    /// Records the use of refresh token <paramref name="tokenId"/> of grant <paramref name="grant"/> (the chain of
    /// refresh tokens born from one authorization), in one write: a grant already revoked stays revoked; a token seen
    /// before revokes its grant until <paramref name="grantRevokedUntil"/> (RFC 9700 4.14.2: a refresh token used twice
    /// was stolen, or its client's copy was, and nobody can tell which use was the legitimate one).
    /// </summary>
    public async Task<RefreshUse> UseRefreshTokenAsync(string clientId, string tokenId, string grant, DateTimeOffset tokenExpires,
        DateTimeOffset grantRevokedUntil, CancellationToken ct)
    {
        await using var unit = await BeginAsync(ct);
        var use = await IsLiveAsync(unit.Connection, unit.Transaction, RevokedGrants + clientId, grant, ct) ? RefreshUse.GrantRevoked : RefreshUse.First;
        if (use == RefreshUse.First && !await InsertAsync(unit, RefreshTokens + clientId, tokenId, tokenExpires, ct))
        {
            use = RefreshUse.Reused;
            // Renewed: a revocation row that has expired but is not cleaned up yet must not hide this one.
            await InsertAsync(unit, RevokedGrants + clientId, grant, grantRevokedUntil, ct, renew: true);
        }
        await unit.CommitAsync(ct);
        if (use == RefreshUse.Reused) RememberRevoked(clientId, grant);
        return use;
    }

    /// <summary>
    /// Revokes grant <paramref name="grant"/> of a client until <paramref name="until"/> (its refresh tokens and access
    /// tokens die with it): the client asked for it at the revocation endpoint (RFC 7009).
    /// </summary>
    public async Task RevokeGrantAsync(string clientId, string grant, DateTimeOffset until, CancellationToken ct)
    {
        await using (var unit = await BeginAsync(ct))
        {
            await InsertAsync(unit, RevokedGrants + clientId, grant, until, ct, renew: true);
            await unit.CommitAsync(ct);
        }
        RememberRevoked(clientId, grant);
    }

    /// <summary>True when refresh token <paramref name="tokenId"/> of the client was redeemed already (it is spent).</summary>
    public async Task<bool> IsRefreshTokenSpentAsync(string clientId, string tokenId, CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        return await IsLiveAsync(connection, null, RefreshTokens + clientId, tokenId, ct);
    }

    /// <summary>True when the row (client_id, jti) exists and has not expired.</summary>
    private async Task<bool> IsLiveAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction? transaction, string clientId, string jti,
        CancellationToken ct)
    {
        await using var select = Sql.Command(connection, transaction, "SELECT COUNT(*) FROM auth_jti WHERE client_id = @client AND jti = @jti AND expires >= @now")
            .With("@client", clientId).With("@jti", jti).With("@now", clock.GetUtcNow().ToUnixTimeMilliseconds());
        return Convert.ToInt64(await select.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture) > 0;
    }

    /// <summary>A revocation this node wrote is effective here at once; the other nodes reload within <see cref="RevokedGrantsRefresh"/>.</summary>
    private void RememberRevoked(string clientId, string grant)
    {
        lock (_adding)
        {
            var snapshot = _revoked;
            _revoked = snapshot with { Keys = new HashSet<string>(snapshot.Keys, StringComparer.Ordinal) { RevokedKey(RevokedGrants + clientId, grant) } };
        }
    }

    // Namespaces of auth_jti's client_id column, beside client assertions ("{client}") and codes ("code:{client}").
    private const string RefreshTokens = "refresh:";
    private const string RevokedGrants = "revoked-grant:";

    private async Task<WriteUnit> BeginAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        // A write unit like any other: on SQLite it may be a savepoint of a group commit, answered once durable.
        var unit = await dialect.BeginWriteAsync(ct);
        try
        {
            // Clean-up at most once a minute per node, inside the write we do anyway.
            if (now >= Interlocked.Read(ref _nextCleanUp))
            {
                Interlocked.Exchange(ref _nextCleanUp, now + 60_000);
                await using var delete = Sql.Command(unit.Connection, unit.Transaction, "DELETE FROM auth_jti WHERE expires < @now").With("@now", now);
                await delete.ExecuteNonQueryAsync(ct);
            }
            return unit;
        }
        catch
        {
            await unit.DisposeAsync();
            throw;
        }
    }

    /// <summary>True when (client, jti) was new; with <paramref name="renew"/>, an existing row takes the new expiry.</summary>
    private static async Task<bool> InsertAsync(WriteUnit unit, string clientId, string jti, DateTimeOffset expires, CancellationToken ct, bool renew = false)
    {
        await using var insert = Sql.Command(unit.Connection, unit.Transaction, $"""
            INSERT INTO auth_jti (client_id, jti, expires) VALUES (@client, @jti, @expires)
            ON CONFLICT (client_id, jti) {(renew ? "DO UPDATE SET expires = excluded.expires" : "DO NOTHING")}
            """).With("@client", clientId).With("@jti", jti).With("@expires", expires.ToUnixTimeMilliseconds());
        return await insert.ExecuteNonQueryAsync(ct) == 1;
    }
}
