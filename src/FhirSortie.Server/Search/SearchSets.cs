using System.Data.Common;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Search;

/// <summary>A persisted result set: its ordered keys live in search_set_entries, so any gateway node can serve any page.</summary>
/// <param name="Query">The applied parameters (URL-encoded), replayed for _include, _summary and _elements on later pages.</param>
public sealed record SearchSet(string Id, string Owner, string? ResourceType, string Query, int Total);

/// <summary>
/// Stores a search's ordered result keys with one INSERT ... SELECT ... ROW_NUMBER() OVER (ORDER BY ...) and serves
/// pages from them: later writes cannot shift pages (no repeat, no skip), and no cursor lives in a process.
/// Sets are bound to an owner key (who may page them) and expire.
/// </summary>
public static class SearchSets
{
    /// <summary>At most this many results can be paged through; a client needing more narrows the search.</summary>
    public const int MaxEntries = 5000;

    private static long _lastCleanup;

    /// <summary>
    /// Materialises the ordered matches (an INSERT ... SELECT with its WHERE, ORDER BY and LIMIT <see cref="MaxEntries"/>)
    /// and returns how many match: the rows inserted, or <paramref name="countAll"/> when the bound was reached.
    /// </summary>
    public static async Task<int> CreateAsync(DbConnection connection, DbTransaction tx, SqlQuery matchesInOrder, SqlQuery countAll, string id, string owner,
        string? type, string query, DateTimeOffset now, TimeSpan lifetime, CancellationToken ct)
    {
        await CleanupAsync(connection, tx, now, ct);
        int total;
        await using (var cmd = matchesInOrder.ToCommand(connection, tx))
        {
            total = await cmd.ExecuteNonQueryAsync(ct);
        }
        if (total >= MaxEntries)
        {
            await using var count = countAll.ToCommand(connection, tx);
            total = Convert.ToInt32(await count.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        }
        await using (var cmd = Sql.Command(connection, tx,
            "INSERT INTO search_sets (search_id, owner, resource_type, query, total, expires) VALUES (@id, @o, @t, @q, @n, @e)")
            .With("@id", id).With("@o", owner).With("@t", type).With("@q", query).With("@n", total).With("@e", (now + lifetime).ToUnixTimeMilliseconds()))
        {
            await cmd.ExecuteNonQueryAsync(ct);
        }
        return total;
    }

    /// <summary>Removes expired sets, at most once a minute per node (it is housekeeping, not correctness: reads check expiry).</summary>
    private static async Task CleanupAsync(DbConnection connection, DbTransaction tx, DateTimeOffset now, CancellationToken ct)
    {
        var last = Interlocked.Read(ref _lastCleanup);
        var nowMs = now.ToUnixTimeMilliseconds();
        if (nowMs - last < 60_000 || Interlocked.CompareExchange(ref _lastCleanup, nowMs, last) != last) return;
        await using var cmd = Sql.Command(connection, tx,
            "DELETE FROM search_set_entries WHERE search_id IN (SELECT search_id FROM search_sets WHERE expires < @now); " +
            "DELETE FROM search_sets WHERE expires < @now;").With("@now", nowMs);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The set, or null when unknown, expired or owned by someone else (indistinguishable on purpose).</summary>
    public static async Task<SearchSet?> FindAsync(SearchDb db, string id, string owner, DateTimeOffset now, CancellationToken ct)
    {
        await using var cmd = Sql.Command(db.Connection, db.Transaction,
            "SELECT search_id, owner, resource_type, query, total FROM search_sets WHERE search_id = @id AND owner = @o AND expires >= @now")
            .With("@id", id).With("@o", owner).With("@now", now.ToUnixTimeMilliseconds());
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct)) return null;
        return new SearchSet(reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetString(3), reader.GetInt32(4));
    }

    /// <summary>
    /// Resources at positions (offset, offset + count] of the set, current versions, still honouring the access filter
    /// (a consent withdrawn since the first page hides them). Deleted ones are left out.
    /// </summary>
    public static async Task<List<StoredResource>> PageAsync(SearchDb db, string id, int offset, int count, AccessFilter filter, CancellationToken ct)
    {
        var q = new SqlQuery();
        q.Append($"SELECT {Sql.StoredColumns("r")} FROM search_set_entries e JOIN resources r ON r.rkey = e.rkey ")
         .Append($"WHERE e.search_id = {q.Param(id)} AND e.pos > {q.Param(offset)} AND e.pos <= {q.Param(offset + count)} AND r.deleted = 0");
        SearchEngine.AppendAccess(q, "r", filter);
        q.Append(" ORDER BY e.pos");
        return await db.StoredAsync(q, ct);
    }
}
