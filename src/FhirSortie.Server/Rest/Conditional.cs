using System.Net;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.WebUtilities;

namespace FhirSortie.Server.Rest;

/// <summary>
/// The search behind conditional create, update, delete and conditional references:
/// runs inside the write transaction, so what it finds cannot change before the write commits.
/// </summary>
public static class Conditional
{
    public static IReadOnlyList<KeyValuePair<string, string>> ParseQuery(string query)
    {
        var q = query.StartsWith('?') ? query : "?" + query;
        var parsed = QueryHelpers.ParseQuery(q);
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var (key, values) in parsed)
            foreach (var v in values) pairs.Add(new(key, v ?? ""));
        if (pairs.Count == 0) throw FhirException.BadRequest("A conditional interaction needs search parameters.");
        // The condition is kept as a unique key (conditional_keys): PostgreSQL refuses a NUL in it, and an index row
        // past about 2,700 bytes. An identifier or two never come near.
        foreach (var (key, value) in pairs)
        {
            SearchValues.RefuseNul(key, key);
            SearchValues.RefuseNul(key, value);
        }
        if (System.Text.Encoding.UTF8.GetByteCount(query) is var bytes and > MaxConditionBytes)
            throw FhirException.BadRequest($"A condition is limited to {MaxConditionBytes} bytes; this one has {bytes}.");
        // Result parameters select nothing: `DELETE Basic?_format=json` would otherwise act on the type's only resource.
        if (pairs.All(p => SearchControl.IsControl(p.Key)))
            throw FhirException.BadRequest($"A conditional interaction needs search parameters that select resources; {string.Join(", ", pairs.Select(p => p.Key).Distinct())} only shape a search's answer.");
        return pairs;
    }

    private const int MaxConditionBytes = 2000;

    /// <summary>The parameters of a condition for an access decision; none when there is no condition (unlike <see cref="ParseQuery"/>).</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Pairs(string? query) =>
        string.IsNullOrWhiteSpace(query) || query == "?" ? [] : ParseQuery(query);

    /// <summary>
    /// The resources matching a condition. Uniqueness holds over every resource, so the search runs without the
    /// caller's access filter; when a match is one the caller may not see, the interaction is refused with
    /// <see cref="HiddenMatch"/> (never a duplicate, never the hidden resource, its id or its Location).
    /// </summary>
    public static async Task<IReadOnlyList<StoredResource>> MatchAsync(WriteSession session, SearchEngine search, string type, string query, CancellationToken ct)
    {
        var pairs = ParseQuery(query);
        var matches = await search.FindAsync(session.Connection, session.Transaction, type, pairs, AccessFilter.None, limit: 2, ct);
        if (!await Security.AccessPoint.SeesAllAsync(session, search, type, pairs, matches, ct)) throw HiddenMatch(type);
        return matches;
    }

    /// <summary>
    /// 412 with a neutral outcome: the condition matched a resource the caller may not see. It says neither which
    /// resource nor how many; the same answer for create (If-None-Exist), update, patch, delete and conditional references.
    /// </summary>
    public static FhirException HiddenMatch(string type) =>
        FhirException.Error(HttpStatusCode.PreconditionFailed, OperationOutcome.IssueType.Forbidden,
            $"The condition on {type} cannot be evaluated for this client; nothing was created or changed.");

    /// <summary>
    /// Canonical form of a condition ("identifier=a|b&amp;active=true" sorted), stored with a unique key so that
    /// two concurrent conditional creates with the same condition cannot both insert.
    /// </summary>
    public static string CanonicalCondition(string query) =>
        string.Join('&', ParseQuery(query).Select(p => $"{p.Key}={p.Value}").Order(StringComparer.Ordinal));

    /// <summary>
    /// Makes sure no other transaction can create a match for <paramref name="query"/> before we commit, and tells
    /// whether one already did. The claim is a row with a unique key on (type, condition): a concurrent claimant
    /// waits on it (PostgreSQL) and, once we commit, finds our resource. Returns the match created meanwhile, or
    /// null when the caller holds the claim and may create (then it calls <see cref="BindClaimAsync"/>).
    /// </summary>
    public static async Task<IReadOnlyList<StoredResource>> ClaimAsync(WriteSession session, SearchEngine search, string type, string query, CancellationToken ct)
    {
        var condition = CanonicalCondition(query);
        await using (var insert = Sql.Command(session.Connection, session.Transaction,
            "INSERT INTO conditional_keys (type, condition, rkey) VALUES (@t, @c, 0) ON CONFLICT (type, condition) DO NOTHING")
            .With("@t", type).With("@c", condition))
        {
            if (await insert.ExecuteNonQueryAsync(ct) == 1) return [];
        }
        // Someone claimed it first and has committed. Each statement sees committed data, so search again.
        var matches = await MatchAsync(session, search, type, query, ct);
        if (matches.Count > 0) return matches;
        // The claim is stale: its resource was changed and no longer matches. Take it over, unless another
        // transaction takes it over first (then the whole unit of work is retried and finds that one's resource).
        long? stale;
        await using (var read = Sql.Command(session.Connection, session.Transaction,
            "SELECT rkey FROM conditional_keys WHERE type = @t AND condition = @c").With("@t", type).With("@c", condition))
        {
            stale = await read.ExecuteScalarAsync(ct) is { } v and not DBNull ? Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture) : null;
        }
        await using var takeOver = Sql.Command(session.Connection, session.Transaction,
            "UPDATE conditional_keys SET rkey = 0 WHERE type = @t AND condition = @c AND rkey = @old")
            .With("@t", type).With("@c", condition).With("@old", stale ?? -1);
        if (stale is null || await takeOver.ExecuteNonQueryAsync(ct) != 1) throw new ConcurrentWriteException(type, condition);
        return [];
    }

    public static async Task BindClaimAsync(WriteSession session, string type, string query, long key, CancellationToken ct)
    {
        await using var update = Sql.Command(session.Connection, session.Transaction,
            "UPDATE conditional_keys SET rkey = @k WHERE type = @t AND condition = @c")
            .With("@t", type).With("@c", CanonicalCondition(query)).With("@k", key);
        await update.ExecuteNonQueryAsync(ct);
    }

    public static FhirException MultipleMatches(string interaction, string type, string query) =>
        FhirException.Error(HttpStatusCode.PreconditionFailed, OperationOutcome.IssueType.MultipleMatches,
            $"Conditional {interaction} on {type}?{query.TrimStart('?')} matched more than one resource.");
}
