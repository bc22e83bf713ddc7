using System.Globalization;
using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Audit;

/// <summary>
/// read, vread and history of AuditEvents, served from the audit store (<see cref="AuditStore"/>); the generic handlers
/// (Rest/Read.cs, VRead.cs, History.cs) hand AuditEvent requests over here. Access is the type-level decision of the
/// access point (scopes; only auditors read audit records): an audit record is never filtered by consent, and it is not
/// a resource of the resources table the per-instance rules look at.
/// An AuditEvent has one version, ever (append-only): vread of version 1 is the read; any other version is 404.
/// </summary>
public static class AuditEndpoints
{
    /// <summary>What the audit store serves of AuditEvent (Capabilities lists these, and $operations, only).</summary>
    public static readonly IReadOnlySet<string> Interactions = new HashSet<string>(StringComparer.Ordinal)
    {
        "read", "vread", "history-instance", "history-type", "search-type",
    };

    public static async System.Threading.Tasks.Task ReadAsync(HttpContext context, string id, int? version)
    {
        var access = Security.AccessPoint.Of(context);
        access.Require(version is null ? Security.Interaction.Read : Security.Interaction.VRead, AuditStore.Type);
        StoredResource? stored;
        await using (var connection = await FhirRequest.Store(context).OpenAsync(context.RequestAborted))
            stored = await AuditStore.ReadAsync(connection, id, context.RequestAborted);
        if (stored is null || version is not (null or 1))
            throw FhirException.NotFound(version is null ? $"AuditEvent/{id} is not known." : $"AuditEvent/{id} has no version {version}.");
        AuditNote.For(context).Decision = AccessDecision.Permit("auditor");
        if (Read.IsNotModified(context.Request, stored))
        {
            await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.NotModified, stored));
            return;
        }
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, stored));
    }

    /// <summary>
    /// Instance history (the one version) and type history (newest first; _since, _at on lastUpdated, _count, and a
    /// keyset cursor on the audit store's sequence: _cursor in the next link, the records older; _before in the previous
    /// link, the records newer).
    /// </summary>
    public static async System.Threading.Tasks.Task HistoryAsync(HttpContext context, string? id)
    {
        var ct = context.RequestAborted;
        var access = Security.AccessPoint.Of(context);
        access.Require(id is not null ? Security.Interaction.HistoryInstance : Security.Interaction.HistoryType, AuditStore.Type);
        var query = context.Request.Query;
        foreach (var (key, _) in query)
        {
            if (key is not ("_since" or "_at" or "_count" or "_cursor" or "_before" or "_format" or "_pretty"))
                throw FhirException.BadRequest($"History does not support the parameter '{key}' (only _since, _at, _count).", key);
        }
        var options = FhirRequest.Options(context);
        var count = (int)Math.Min(Number(query["_count"].ToString(), "_count") ?? options.DefaultPageSize, options.MaxPageSize);
        var cursor = Number(query["_cursor"].ToString(), "_cursor");
        var before = Number(query["_before"].ToString(), "_before");
        if (cursor is not null && before is not null)
            throw FhirException.BadRequest("_cursor and _before cannot be combined; follow the next or previous link as given.", "_before");
        var newer = before is not null;
        var q = new Search.SqlQuery();
        q.Append($"SELECT {AuditStore.Columns("a")} FROM audit_events a WHERE 1 = 1");
        if (id is not null) q.Append($" AND a.id = {q.Param(id)}");
        if (query["_since"].ToString() is { Length: > 0 } since)
            q.Append($" AND COALESCE(a.last_updated, a.recorded) >= {q.Param(FhirRequest.Instant(since, "_since").ToUnixTimeMilliseconds())}");
        if (query["_at"].ToString() is { Length: > 0 } at)
            q.Append($" AND COALESCE(a.last_updated, a.recorded) <= {q.Param(FhirRequest.Instant(at, "_at").ToUnixTimeMilliseconds())}");
        if (cursor is { } c) q.Append($" AND a.seq < {q.Param(c)}");
        if (before is { } b) q.Append($" AND a.seq > {q.Param(b)}");
        q.Append(newer ? $" ORDER BY a.seq ASC LIMIT {count + 1}" : $" ORDER BY a.seq DESC LIMIT {count + 1}");
        var page = new List<StoredResource>();
        await using (var connection = await FhirRequest.Store(context).OpenAsync(ct))
        await using (var cmd = q.ToCommand(connection, null))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct)) page.Add(AuditStore.ReadRecord(reader));
        }
        if (id is not null && page.Count == 0 && cursor is null && before is null)
        {
            if (query.ContainsKey("_since") || query.ContainsKey("_at"))
            {
                await using var connection = await FhirRequest.Store(context).OpenAsync(ct);
                if (await AuditStore.ReadAsync(connection, id, ct) is null) throw FhirException.NotFound($"AuditEvent/{id} is not known.");
            }
            else
            {
                throw FhirException.NotFound($"AuditEvent/{id} is not known.");
            }
        }
        AuditNote.For(context).Decision = AccessDecision.Permit("auditor");
        var more = page.Count > count; // more beyond this page, in the direction read
        if (more) page.RemoveAt(page.Count - 1);
        if (newer) page.Reverse(); // newest first, as every page

        var baseUrl = FhirBase.Of(context);
        var path = id is null ? "AuditEvent/_history" : $"AuditEvent/{id}/_history";
        var kept = query.Where(p => p.Key is not ("_cursor" or "_before"))
            .SelectMany(p => p.Value.Select(v => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(v ?? "")}")).ToList();
        string Link(long? at, string name = "_cursor")
        {
            var parts = at is { } position ? [.. kept, $"{name}={position.ToString(CultureInfo.InvariantCulture)}"] : kept;
            return parts.Count == 0 ? $"{baseUrl}/{path}" : $"{baseUrl}/{path}?{string.Join('&', parts)}";
        }
        var bundle = new Bundle { Type = Bundle.BundleType.History, Id = FhirRequest.NewId(), Meta = new Meta { LastUpdated = DateTimeOffset.UtcNow } };
        bundle.Link.Add(new Bundle.LinkComponent { Relation = "self", Url = before is { } self ? Link(self, "_before") : Link(cursor) });
        var (older, newerFrom) = History.PageCursors(cursor, before, page.Count > 0 ? (page[0].Key, page[^1].Key) : null, more);
        if (older is { } o) bundle.Link.Add(new Bundle.LinkComponent { Relation = "next", Url = Link(o) });
        if (newerFrom is { } n) bundle.Link.Add(new Bundle.LinkComponent { Relation = "previous", Url = Link(n, "_before") });
        foreach (var record in page)
        {
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = $"{baseUrl}/AuditEvent/{record.Id}",
                Resource = FhirResponse.ParseStored(record.Json!),
                Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "AuditEvent" },
                Response = new Bundle.ResponseComponent
                {
                    Status = TransactionEntry.StatusLine(HttpStatusCode.Created),
                    Etag = record.ETag,
                    LastModified = record.LastUpdated,
                    Location = $"{baseUrl}/AuditEvent/{record.Id}/_history/1",
                },
            });
        }
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, bundle));
    }

    private static long? Number(string value, string name)
    {
        if (value.Length == 0) return null;
        return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw FhirException.BadRequest($"{name} '{value}' is not a non-negative integer.", name);
    }
}
