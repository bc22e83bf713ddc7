using System.Globalization;
using System.Net;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// history: GET [base]/[type]/[id]/_history, [base]/[type]/_history and [base]/_history, newest first,
/// with _since, _at and _count. Paging is a keyset on resource_versions.seq carried in the next link (_cursor) and the
/// previous link (_before): any gateway node serves any page, and versions written after the first page never shift the
/// later ones (going back past the first page shows the versions written since, newest first).
/// </summary>
public static class History
{
    public static Task HandleInstance(HttpContext context) =>
        HandleAsync(context, FhirRequest.Type(context), FhirRequest.Id(context));

    public static Task HandleType(HttpContext context) => HandleAsync(context, FhirRequest.Type(context), null);

    public static Task HandleSystem(HttpContext context) => HandleAsync(context, null, null);

    private static async Task HandleAsync(HttpContext context, string? type, string? id)
    {
        if (type == Audit.AuditStore.Type) { await Audit.AuditEndpoints.HistoryAsync(context, id); return; } // served by the audit store
        var ct = context.RequestAborted;
        var query = context.Request.Query;
        var access = Security.AccessPoint.Of(context);
        access.Require(id is not null ? Security.Interaction.HistoryInstance : type is not null ? Security.Interaction.HistoryType : Security.Interaction.HistorySystem, type);
        var options = FhirRequest.Options(context);
        foreach (var (key, _) in query)
        {
            if (key is not ("_since" or "_at" or "_count" or "_cursor" or "_before" or "_format" or "_pretty"))
                throw FhirException.BadRequest($"History does not support the parameter '{key}' (only _since, _at, _count).", key);
        }
        var count = Math.Min(Number(query["_count"].ToString(), "_count") ?? options.DefaultPageSize, options.MaxPageSize);
        // Page cursors are version seqs, which outgrow an int long before the table is full: _cursor = the versions
        // older than it (next), _before = the versions newer than it (previous).
        var cursor = Cursor(query["_cursor"].ToString(), "_cursor");
        var before = Cursor(query["_before"].ToString(), "_before");
        if (cursor is not null && before is not null)
            throw FhirException.BadRequest("_cursor and _before cannot be combined; follow the next or previous link as given.", "_before");
        var since = Instant(query["_since"].ToString(), "_since");
        var at = Instant(query["_at"].ToString(), "_at");

        // Type and system history: the scopes' and actor kind's part of the access filter runs in SQL (types with 's',
        // the launch patient's compartment...); consent is decided per version below, on what that version carried
        // (its labels, its patients), like a vread of it. Instance history: scopes on the current resource, like a read.
        var filter = AccessFilters.For(context);
        var newer = before is not null;
        SqlQuery Query(long? position, int limit)
        {
            var q = new SqlQuery();
            q.Append("SELECT v.seq, v.rkey, v.type, v.id, v.version, v.last_updated, CASE WHEN v.method = 'DELETE' THEN 1 ELSE 0 END, v.json, v.method FROM resource_versions v WHERE 1 = 1");
            if (type is not null) q.Append($" AND v.type = {q.Param(type)}");
            if (id is not null) q.Append($" AND v.id = {q.Param(id)}");
            if (since is { } s) q.Append($" AND v.last_updated >= {q.Param(s.ToUnixTimeMilliseconds())}");
            if (at is { } a)
            {
                // The version of each resource that was current at that instant.
                q.Append($" AND v.seq IN (SELECT MAX(w.seq) FROM resource_versions w WHERE w.last_updated <= {q.Param(a.ToUnixTimeMilliseconds())} GROUP BY w.rkey)");
            }
            if (position is { } c) q.Append(newer ? $" AND v.seq > {q.Param(c)}" : $" AND v.seq < {q.Param(c)}");
            if (id is null) SearchEngine.AppendAccess(q, "v", filter with { Consent = null });
            q.Append(newer ? $" ORDER BY v.seq ASC LIMIT {limit}" : $" ORDER BY v.seq DESC LIMIT {limit}");
            return q;
        }

        var page = new List<(long Seq, StoredResource Version)>();
        var store = FhirRequest.Store(context);
        var hasMore = false;
        long? resume = null;
        await using (var connection = await store.OpenAsync(ct))
        {
            if (id is not null && await store.ReadAsync(connection, null, type!, id, forUpdate: false, ct) is { Deleted: false } current)
                access.RequireInstance(Security.Interaction.HistoryInstance, current);
            var interaction = id is not null ? Security.Interaction.HistoryInstance : type is not null ? Security.Interaction.HistoryType : Security.Interaction.HistorySystem;
            var batch = Math.Max(count + 1, 50);
            var scanned = 0;
            var position = cursor ?? before;
            var exhausted = false;
            // Scan away from the cursor (older for next, newer for previous) until the page is full, plus one to know
            // there is more; a page never counts a hidden version. The scan is bounded: past MaxScan versions the page
            // ends early with a link from where it stopped.
            while (!exhausted && page.Count <= count && scanned < MaxScan)
            {
                var rows = new List<(long Seq, StoredResource Version)>();
                await using (var cmd = Query(position, batch).ToCommand(connection, null))
                await using (var reader = await cmd.ExecuteReaderAsync(ct))
                {
                    while (await reader.ReadAsync(ct)) rows.Add((reader.GetInt64(0), Sql.ReadStored(reader, 1)));
                }
                exhausted = rows.Count < batch;
                foreach (var row in rows)
                {
                    position = row.Seq;
                    scanned++;
                    if (await VisibleAsync(access, store, connection, interaction, row.Version, ct)) page.Add(row);
                    if (page.Count > count) break;
                }
            }
            hasMore = page.Count > count;
            if (hasMore) page.RemoveAt(page.Count - 1);
            else if (!exhausted && position is { } stopped)
            {
                hasMore = true;
                resume = stopped;
            }
            if (id is not null && page.Count == 0 && cursor is null && before is null && exhausted)
            {
                // Unknown, or nothing of it the caller may see: the same 404 as a read.
                throw FhirException.NotFound($"{type}/{id} is not known.");
            }
        }
        if (newer) page.Reverse(); // newest first, as every page

        var baseUrl = FhirBase.Of(context);
        var path = type is null ? "_history" : id is null ? $"{type}/_history" : $"{type}/{id}/_history";
        var kept = query.Where(p => p.Key is not ("_cursor" or "_before"))
            .SelectMany(p => p.Value.Select(v => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(v ?? "")}")).ToList();
        var bundle = new Bundle { Type = Bundle.BundleType.History, Id = FhirRequest.NewId(), Meta = new Meta { LastUpdated = DateTimeOffset.UtcNow } };
        bundle.Link.Add(new Bundle.LinkComponent { Relation = "self", Url = Link(baseUrl, path, kept, cursor, before) });
        var (older, newerFrom) = PageCursors(cursor, before, page.Count > 0 ? (page[0].Seq, page[^1].Seq) : null, hasMore, resume);
        if (older is { } o) bundle.Link.Add(new Bundle.LinkComponent { Relation = "next", Url = Link(baseUrl, path, kept, o, null) });
        if (newerFrom is { } n) bundle.Link.Add(new Bundle.LinkComponent { Relation = "previous", Url = Link(baseUrl, path, kept, null, n) });
        foreach (var (_, version) in page) bundle.Entry.Add(Entry(baseUrl, version));
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, bundle));
    }

    /// <summary>
    /// The cursors of a history page's links (also the audit store's history): next (<c>_cursor</c>, the entries older
    /// than the page) and previous (<c>_before</c>, those newer). The first page (no cursor) has no previous, a page
    /// reached by next always has one (the page it came from), a page reached by previous always has a next.
    /// <paramref name="seqs"/>: the page's newest and oldest entries (null when empty); <paramref name="more"/>: more
    /// entries beyond the page in the direction read; <paramref name="resume"/>: where a page that ended early stopped.
    /// </summary>
    public static (long? Next, long? Previous) PageCursors(long? cursor, long? before, (long Newest, long Oldest)? seqs, bool more, long? resume = null)
    {
        if (before is { } b)
            return (seqs?.Oldest ?? (b == long.MaxValue ? b : b + 1), more ? resume ?? seqs?.Newest : null);
        return (more ? resume ?? seqs?.Oldest : null, cursor is { } from ? seqs?.Newest ?? Math.Max(from - 1, 0) : null);
    }

    /// <summary>How many versions one history page may scan for visible ones before it ends early.</summary>
    private const int MaxScan = 5000;

    /// <summary>
    /// Whether the caller may see this version, on its own content; a deletion is shown when the version it deleted is.
    /// </summary>
    private static async Task<bool> VisibleAsync(Security.AccessPoint access, ResourceStore store, System.Data.Common.DbConnection connection,
        Security.Interaction interaction, StoredResource version, CancellationToken ct)
    {
        var decided = version.Deleted && version.Version > 1
            ? await store.ReadVersionAsync(connection, null, version.Type, version.Id, version.Version - 1, ct) ?? version
            : version;
        return (await access.DecideVersionAsync(interaction, decided, connection, null, quiet: true, ct)).Permitted;
    }

    private static Bundle.EntryComponent Entry(string baseUrl, StoredResource version)
    {
        var method = version.Method switch
        {
            "POST" => Bundle.HTTPVerb.POST,
            "PATCH" => Bundle.HTTPVerb.PATCH,
            "DELETE" => Bundle.HTTPVerb.DELETE,
            _ => Bundle.HTTPVerb.PUT,
        };
        var status = version.Deleted ? HttpStatusCode.NoContent : version.Version == 1 ? HttpStatusCode.Created : HttpStatusCode.OK;
        return new Bundle.EntryComponent
        {
            FullUrl = $"{baseUrl}/{version.Type}/{version.Id}",
            Resource = version.Json is { } json ? FhirResponse.ParseStored(json) : null,
            Request = new Bundle.RequestComponent
            {
                Method = method,
                Url = method == Bundle.HTTPVerb.POST ? version.Type : $"{version.Type}/{version.Id}",
            },
            Response = new Bundle.ResponseComponent
            {
                Status = TransactionEntry.StatusLine(status),
                Etag = version.ETag,
                LastModified = version.LastUpdated,
                Location = $"{baseUrl}/{version.Type}/{version.Id}/_history/{version.Version}",
            },
        };
    }

    private static string Link(string baseUrl, string path, List<string> kept, long? cursor, long? before)
    {
        var parts = cursor is { } c ? [.. kept, $"_cursor={c.ToString(CultureInfo.InvariantCulture)}"]
            : before is { } b ? [.. kept, $"_before={b.ToString(CultureInfo.InvariantCulture)}"] : kept;
        return parts.Count == 0 ? $"{baseUrl}/{path}" : $"{baseUrl}/{path}?{string.Join('&', parts)}";
    }

    private static int? Number(string value, string name)
    {
        if (value.Length == 0) return null;
        return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw FhirException.BadRequest($"{name} '{value}' is not a non-negative integer.", name);
    }

    private static long? Cursor(string value, string name) =>
        value.Length == 0 ? null
            : long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seq) && seq < long.MaxValue ? seq
            : throw FhirException.BadRequest($"{name} '{value}' is not a page cursor of this server; follow the next or previous link as given.", name);

    private static DateTimeOffset? Instant(string value, string name) => value.Length == 0 ? null : FhirRequest.Instant(value, name);
}
