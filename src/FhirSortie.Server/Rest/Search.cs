using System.Globalization;
using System.Net;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>search-type: GET [base]/[type]?params and POST [base]/[type]/_search (form body).</summary>
public static class Search
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var query = await QueryAsync(context);
        var strict = Prefer.From(context.Request).StrictHandling;
        var options = FhirRequest.Options(context);
        var engine = context.RequestServices.GetRequiredService<SearchEngine>();
        var store = FhirRequest.Store(context);
        var count = PageSize(query, options);
        var offset = int.TryParse(query.FirstOrDefault(p => p.Key == "_getpagesoffset").Value, NumberStyles.None, CultureInfo.InvariantCulture, out var o) ? o : 0;

        await using var connection = await store.OpenAsync(context.RequestAborted);
        var q = new SqlQuery();
        q.Append($"SELECT {Sql.StoredColumns("r")} FROM resources r WHERE ");
        engine.AppendWhere(q, "r", type, query, AccessFilter.None, strict);
        q.Append($" ORDER BY r.last_updated DESC, r.rkey DESC LIMIT {count + 1} OFFSET {offset}");
        var page = new List<StoredResource>();
        await using (var cmd = q.ToCommand(connection, null))
        await using (var reader = await cmd.ExecuteReaderAsync(context.RequestAborted))
        {
            while (await reader.ReadAsync(context.RequestAborted)) page.Add(Sql.ReadStored(reader));
        }
        var hasMore = page.Count > count;
        if (hasMore) page.RemoveAt(page.Count - 1);
        var total = !hasMore && offset == 0 ? page.Count : await engine.CountAsync(connection, type, query, AccessFilter.None, strict, context.RequestAborted);

        var baseUrl = FhirBase.Of(context);
        var bundle = new Bundle { Type = Bundle.BundleType.Searchset, Total = total, Id = FhirRequest.NewId(), Meta = new Meta { LastUpdated = DateTimeOffset.UtcNow } };
        var selfQuery = string.Join('&', query.Where(p => p.Key != "_getpagesoffset").Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}"));
        bundle.Link.Add(new Bundle.LinkComponent { Relation = "self", Url = $"{baseUrl}/{type}?{selfQuery}" });
        if (hasMore)
            bundle.Link.Add(new Bundle.LinkComponent { Relation = "next", Url = $"{baseUrl}/{type}?{selfQuery}&_getpagesoffset={offset + count}" });
        foreach (var stored in page)
        {
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = $"{baseUrl}/{stored.Type}/{stored.Id}",
                Resource = FhirResponse.ParseStored(stored.Json!),
                Search = new Bundle.SearchComponent { Mode = Bundle.SearchEntryMode.Match },
            });
        }
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, bundle));
    }

    private static int PageSize(IReadOnlyList<KeyValuePair<string, string>> query, FhirSortieOptions options)
    {
        var value = query.LastOrDefault(p => p.Key == "_count").Value;
        if (value is null) return options.DefaultPageSize;
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
            throw FhirException.BadRequest($"_count '{value}' is not a non-negative integer.", "_count");
        return Math.Min(count, options.MaxPageSize);
    }

    /// <summary>Query parameters of a GET, or of a POST _search form body merged with the URL's.</summary>
    public static async Task<IReadOnlyList<KeyValuePair<string, string>>> QueryAsync(HttpContext context)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var (key, values) in context.Request.Query)
            foreach (var v in values) pairs.Add(new(key, v ?? ""));
        if (HttpMethods.IsPost(context.Request.Method))
        {
            if (!context.Request.HasFormContentType)
                throw FhirException.Error(HttpStatusCode.UnsupportedMediaType, OperationOutcome.IssueType.NotSupported,
                    "POST _search needs Content-Type application/x-www-form-urlencoded.");
            var form = await context.Request.ReadFormAsync(context.RequestAborted);
            foreach (var (key, values) in form)
                foreach (var v in values) pairs.Add(new(key, v ?? ""));
        }
        return pairs;
    }
}
