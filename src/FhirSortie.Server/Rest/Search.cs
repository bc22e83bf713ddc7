using System.Data.Common;
using System.Globalization;
using System.Net;
using System.Text;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Rest;

/// <summary>What to search, independent of HTTP (so batch/transaction GET entries can run searches too).</summary>
/// <param name="BaseUrl">FHIR base URL as clients see it (for fullUrl and links), without trailing slash.</param>
/// <param name="ResourceType">Type searched; null for a system search (all types, or those of _type).</param>
/// <param name="Query">Parameters in order, repeated keys kept (repeated = AND, comma = OR).</param>
public sealed record SearchRequest(string BaseUrl, string? ResourceType, IReadOnlyList<KeyValuePair<string, string>> Query)
{
    public AccessFilter Access { get; init; } = AccessFilter.None;

    /// <summary>Prefer: handling=strict: unknown parameters and unsupported modifiers are 400 instead of ignored.</summary>
    public bool Strict { get; init; }

    /// <summary>Who may page the persisted result set (e.g. the OAuth client id).</summary>
    public string Owner { get; init; } = "anonymous";

    /// <summary>Patient compartment search: only resources in this patient's compartment.</summary>
    public string? PatientCompartment { get; init; }

    /// <summary>$everything's start and end: care dates, per resource type (<see cref="Everything.CareDateParameters"/>).</summary>
    public (string? Start, string? End)? CareDates { get; init; }

    /// <summary>The self link when an operation answers with a search its URL says better than a search URL could ($everything).</summary>
    public string? SelfUrl { get; init; }
}

/// <summary>
/// search-type: GET [base]/[type]?params and POST [base]/[type]/_search (form body); also the engine behind
/// system and compartment search (SearchSystem.cs, SearchCompartment.cs) and batch GET entries (<see cref="ExecuteAsync"/>).
/// </summary>
public static class Search
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var query = await QueryAsync(context);
        await RespondAsync(context, RequestFor(context, type, query));
    }

    public static SearchRequest RequestFor(HttpContext context, string? type, IReadOnlyList<KeyValuePair<string, string>> query) =>
        new(FhirBase.Of(context), type, query)
        {
            Access = AccessFilters.For(context),
            Strict = Prefer.From(context.Request).StrictHandling,
            Owner = context.User.FindFirst("client_id")?.Value ?? "anonymous",
        };

    public static async System.Threading.Tasks.Task RespondAsync(HttpContext context, SearchRequest request)
    {
        var format = FhirFormat.ResponseFormat(context.Request); // 406 before any work
        Security.AccessPoint.Of(context).Require(new Security.AccessRequest(
            request.PatientCompartment is not null ? Security.Interaction.SearchCompartment
            : request.ResourceType is null ? Security.Interaction.SearchSystem : Security.Interaction.SearchType,
            request.ResourceType) { Query = request.Query, Compartment = request.PatientCompartment });
        // Break-the-glass stated on a search: opened for its one patient before the search runs, or a 4xx saying how.
        await Consents.BreakGlassSearch.OpenAsync(context, request, context.RequestAborted);
        var json = await ExecuteJsonAsync(context.RequestServices, request, null, null, context.RequestAborted);
        var pretty = FhirFormat.IsPretty(context.Request);
        var body = format == WireFormat.Json && !pretty
            ? json
            : FhirFormat.Serialize(FhirResponse.ParseStored(json), format, pretty);
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = FhirFormat.ContentType(format);
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    /// <summary>
    /// Runs a search and returns the searchset Bundle. Batch/transaction GET entries call this with their own
    /// connection and transaction (a transaction sees its own writes); pass null for both to use a pooled connection.
    /// Errors are <see cref="FhirException"/>s (400 for bad values, 410 for an expired page set).
    /// </summary>
    public static async Task<Bundle> ExecuteAsync(IServiceProvider services, SearchRequest request, DbConnection? connection, DbTransaction? tx, CancellationToken ct) =>
        (Bundle)FhirResponse.ParseStored(await ExecuteJsonAsync(services, request, connection, tx, ct));

    /// <summary>As <see cref="ExecuteAsync"/>, but the Bundle as compact JSON bytes (the fast path for HTTP).</summary>
    public static async Task<byte[]> ExecuteJsonAsync(IServiceProvider services, SearchRequest request, DbConnection? connection, DbTransaction? tx, CancellationToken ct)
    {
        var store = services.GetRequiredService<ResourceStore>();
        var options = services.GetRequiredService<IOptions<FhirSortieOptions>>().Value;
        await using var db = connection is null ? await services.GetRequiredService<SearchConnections>().RentAsync(ct) : SearchDb.On(connection, tx);
        if (request.ResourceType == Audit.AuditStore.Type) // the audit store
            return await Audit.AuditSearch.ExecuteJsonAsync(request, options, db.Connection, db.Transaction, store.Clock.GetUtcNow(), ct);
        var setId = request.Query.LastOrDefault(p => p.Key == "_getpages").Value;
        if (setId is not null) SearchValues.RefuseNul("_getpages", setId);
        return setId is not null
            ? await PageOfSetAsync(services, store, options, request, setId, db, ct)
            : await FirstPageAsync(services, store, options, request, db, ct);
    }

    private static async Task<byte[]> FirstPageAsync(IServiceProvider services, ResourceStore store, FhirSortieOptions options, SearchRequest request,
        SearchDb db, CancellationToken ct)
    {
        var engine = services.GetRequiredService<SearchEngine>();
        var controls = Controls.Parse(request.Query, engine.Parameters, options, request.Strict);
        var type = request.ResourceType;
        var now = store.Clock.GetUtcNow();
        IReadOnlyList<KeyValuePair<string, string>> applied = [];
        void Where(SqlQuery q)
        {
            applied = engine.AppendWhere(q, "r", type, request.Query, request.Access, request.Strict);
            if (request.PatientCompartment is { } patient)
                q.Append($" AND r.rkey IN (SELECT rkey FROM resource_compartment WHERE compartment_type = 'Patient' AND compartment_id = {q.Param(patient)})");
            if (request.CareDates is { } care)
                q.Append(" AND ").Append(engine.DateWindowPerType(q, "r", Everything.CareDateParameters, care.Start, care.End));
        }
        string[]? sortTypes = type is null ? null : [type];

        if (controls.Count == 0 || controls.Summary == SummaryType.Count)
        {
            var c = new SqlQuery();
            c.Append("SELECT COUNT(*) FROM resources r WHERE ");
            Where(c);
            var found = await db.ScalarAsync(c, ct);
            var countSelf = SelfLink(request, applied, controls, null);
            return SearchBundle.Write(request.BaseUrl, found, [("self", countSelf)], [], SummaryType.False, null, now, Warnings(IgnoredWarnings(request, applied), []));
        }

        var page = new SqlQuery();
        page.Append($"SELECT {Sql.StoredColumns("r")} FROM resources r WHERE ");
        Where(page);
        var (orderBy, appliedSort) = SearchSort.Build(page, controls.Sort, sortTypes, engine.Parameters, request.Strict);
        page.Append($" ORDER BY {orderBy} LIMIT {controls.Count + 1}");
        var matches = await db.StoredAsync(page, ct);
        var self = SelfLink(request, applied, controls, appliedSort);
        var links = new List<(string, string)> { ("self", self) };
        int? total;
        if (matches.Count <= controls.Count)
        {
            // One page: no COUNT query and no persisted set.
            total = controls.Total == "none" ? null : matches.Count;
        }
        else
        {
            var setId = Guid.NewGuid().ToString("N");
            var m = new SqlQuery();
            var (setOrder, _) = SearchSort.Build(m, controls.Sort, sortTypes, engine.Parameters, request.Strict);
            m.Append($"INSERT INTO search_set_entries (search_id, pos, rkey) SELECT {m.Param(setId)}, ROW_NUMBER() OVER (ORDER BY {setOrder}), r.rkey FROM resources r WHERE ");
            Where(m);
            // Bounded: a broad search must not copy a whole table per request. Pages stop at the bound; the total
            // below stays accurate (a COUNT) when the bound is reached.
            m.Append($" ORDER BY {setOrder} LIMIT {SearchSets.MaxEntries}");
            var countAll = new SqlQuery();
            countAll.Append("SELECT COUNT(*) FROM resources r WHERE ");
            Where(countAll);
            var storedQuery = EncodeQuery(QueryPairs(applied, controls, appliedSort));
            var lifetime = TimeSpan.FromMinutes(options.SearchResultLifetimeMinutes);
            var count = db.Transaction is { } tx
                ? await SearchSets.CreateAsync(db.Connection, tx, m, countAll, setId, request.Owner, type, storedQuery, now, lifetime, ct)
                : await store.WriteAsync(s => SearchSets.CreateAsync(s.Connection, s.Transaction, m, countAll, setId, request.Owner, type, storedQuery, now, lifetime, ct), ct);
            matches = await SearchSets.PageAsync(db, setId, 0, controls.Count, request.Access, ct);
            total = controls.Total == "none" ? null : count;
            AddPageLinks(links, request.BaseUrl, setId, 0, controls.Count, count, includeSelf: false);
        }
        var included = await Includes.FindAsync(db, controls.Includes, matches, request.Access, ct);
        await Audit.SearchedPatients.NoteAsync(services, db, matches, included, ct);
        return SearchBundle.Write(request.BaseUrl, total, links, Entries(matches, included), controls.Summary, controls.Elements, now,
            Warnings(IgnoredWarnings(request, applied), Includes.Omitted(controls.Includes, request.Access, engine.Parameters)));
    }

    /// <summary>
    /// Under handling=lenient, the selection parameters left out (unknown, or an unsupported modifier): the self link
    /// already leaves them out, and a warning says so, so that a misspelt parameter is not mistaken for an empty filter.
    /// </summary>
    private static IReadOnlyList<string> IgnoredWarnings(SearchRequest request, IReadOnlyList<KeyValuePair<string, string>> applied)
    {
        // Every search pays for this: count first, and look for what was left out only when something was.
        int selection = 0, kept = 0;
        foreach (var pair in request.Query)
            if (pair.Key != "_type" && !SearchControl.IsControl(pair.Key)) selection++;
        foreach (var pair in applied)
            if (pair.Key != "_type") kept++;
        if (selection == kept) return [];
        var left = applied.ToList();
        var ignored = new List<string>();
        foreach (var pair in request.Query)
        {
            if (pair.Key == "_type" || SearchControl.IsControl(pair.Key)) continue;
            var at = left.FindIndex(p => p.Key == pair.Key && p.Value == pair.Value);
            if (at >= 0) left.RemoveAt(at);
            else if (!ignored.Contains(pair.Key)) ignored.Add(pair.Key);
        }
        return ignored;
    }

    private static async Task<byte[]> PageOfSetAsync(IServiceProvider services, ResourceStore store, FhirSortieOptions options, SearchRequest request,
        string setId, SearchDb db, CancellationToken ct)
    {
        var engine = services.GetRequiredService<SearchEngine>();
        var now = store.Clock.GetUtcNow();
        var set = await SearchSets.FindAsync(db, setId, request.Owner, now, ct)
            ?? throw FhirException.Error(HttpStatusCode.Gone, OperationOutcome.IssueType.NotFound,
                "This page set is unknown or has expired; run the search again.", "_getpages");
        var original = QueryHelpers.ParseQuery(set.Query).SelectMany(p => p.Value.Select(v => new KeyValuePair<string, string>(p.Key, v ?? ""))).ToList();
        var controls = Controls.Parse(original, engine.Parameters, options, strict: false);
        var count = request.Query.Any(p => p.Key == "_count") ? Controls.PageSize(request.Query, options) : controls.Count;
        if (count == 0) count = options.DefaultPageSize;
        var offsetValue = request.Query.LastOrDefault(p => p.Key == "_getpagesoffset").Value ?? "0";
        if (!int.TryParse(offsetValue, NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
            throw FhirException.BadRequest($"_getpagesoffset '{offsetValue}' is not a non-negative integer.", "_getpagesoffset");
        var matches = await SearchSets.PageAsync(db, set.Id, offset, count, request.Access, ct);
        var links = new List<(string, string)>();
        AddPageLinks(links, request.BaseUrl, set.Id, offset, count, set.Total, includeSelf: true);
        var included = await Includes.FindAsync(db, controls.Includes, matches, request.Access, ct);
        await Audit.SearchedPatients.NoteAsync(services, db, matches, included, ct);
        return SearchBundle.Write(request.BaseUrl, controls.Total == "none" ? null : set.Total, links, Entries(matches, included), controls.Summary, controls.Elements, now,
            Warnings([], Includes.Omitted(controls.Includes, request.Access, engine.Parameters)));
    }

    /// <summary>The search's warnings, as the Bundle's entry of search.mode "outcome" (null when there is none).</summary>
    private static OperationOutcome? Warnings(IReadOnlyList<string> ignored, IReadOnlyList<string> omitted)
    {
        if (ignored.Count == 0 && omitted.Count == 0) return null;
        var outcome = new OperationOutcome();
        foreach (var name in ignored)
        {
            outcome.Issue.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Warning, OperationOutcome.IssueType.NotSupported,
                $"The search parameter '{name}' is not supported here and was ignored (Prefer: handling=strict makes it an error).", name));
        }
        foreach (var warning in omitted) outcome.Issue.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Warning, OperationOutcome.IssueType.Suppressed, warning));
        return outcome;
    }

    private static List<SearchBundle.Entry> Entries(List<StoredResource> matches, List<StoredResource> included)
    {
        var entries = new List<SearchBundle.Entry>(matches.Count + included.Count);
        foreach (var m in matches) entries.Add(new SearchBundle.Entry(m, false));
        foreach (var i in included) entries.Add(new SearchBundle.Entry(i, true));
        return entries;
    }

    private static void AddPageLinks(List<(string, string)> links, string baseUrl, string setId, int offset, int count, int total, bool includeSelf)
    {
        total = Math.Min(total, SearchSets.MaxEntries); // only the materialised entries can be paged
        string Page(int o) => $"{baseUrl}?_getpages={setId}&_getpagesoffset={o}&_count={count}";
        if (includeSelf) links.Add(("self", Page(offset)));
        links.Add(("first", Page(0)));
        if (offset > 0) links.Add(("previous", Page(Math.Max(0, offset - count))));
        if (offset + count < total) links.Add(("next", Page(offset + count)));
        links.Add(("last", Page(total == 0 ? 0 : (total - 1) / count * count)));
    }

    private static string SelfLink(SearchRequest request, IReadOnlyList<KeyValuePair<string, string>> applied, Controls controls, string? appliedSort)
    {
        if (request.SelfUrl is { } selfUrl) return selfUrl;
        var path = request.PatientCompartment is { } patient
            ? $"{request.BaseUrl}/Patient/{patient}/{request.ResourceType ?? "*"}"
            : request.ResourceType is null ? request.BaseUrl : $"{request.BaseUrl}/{request.ResourceType}";
        var query = EncodeQuery(QueryPairs(applied, controls, appliedSort));
        return query.Length == 0 ? path : $"{path}?{query}";
    }

    /// <summary>The parameters that shaped the answer: the applied selection parameters, then the result parameters.</summary>
    private static List<KeyValuePair<string, string>> QueryPairs(IReadOnlyList<KeyValuePair<string, string>> applied, Controls controls, string? appliedSort)
    {
        var pairs = new List<KeyValuePair<string, string>>(applied);
        if (appliedSort is not null) pairs.Add(new("_sort", appliedSort));
        foreach (var include in controls.Includes)
        {
            var eq = include.Raw.IndexOf('=');
            pairs.Add(new(include.Raw[..eq], include.Raw[(eq + 1)..]));
        }
        if (controls.CountGiven) pairs.Add(new("_count", controls.Count.ToString(CultureInfo.InvariantCulture)));
        if (controls.Total is { } total) pairs.Add(new("_total", total));
        if (controls.SummaryText is { } summary) pairs.Add(new("_summary", summary));
        if (controls.Elements is { } elements) pairs.Add(new("_elements", string.Join(',', elements)));
        return pairs;
    }

    /// <summary>Query pairs URL-encoded as links carry them (also the audit store's search links).</summary>
    internal static string EncodeQuery(IEnumerable<KeyValuePair<string, string>> pairs)
    {
        var sb = new StringBuilder();
        foreach (var (key, value) in pairs)
        {
            if (sb.Length > 0) sb.Append('&');
            sb.Append(Uri.EscapeDataString(key)).Append('=').Append(Uri.EscapeDataString(value));
        }
        return sb.ToString();
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
            IFormCollection form;
            try
            {
                form = await context.Request.ReadFormAsync(context.RequestAborted);
            }
            catch (InvalidDataException e)
            {
                // ASP.NET's form reader refuses a NUL (%00) and over-long keys or values this way.
                throw FhirException.BadRequest($"The form body of this search cannot be read: {e.Message}");
            }
            foreach (var (key, values) in form)
                foreach (var v in values) pairs.Add(new(key, v ?? ""));
        }
        return pairs;
    }
}

/// <summary>The result parameters of a search (_count, _sort, _include, _summary, _elements, _total), validated.</summary>
internal sealed record Controls(int Count, bool CountGiven, string? Sort, List<IncludeSpec> Includes, SummaryType Summary, string? SummaryText,
    string[]? Elements, string? Total)
{
    public static Controls Parse(IReadOnlyList<KeyValuePair<string, string>> query, SearchParameters parameters, FhirSortieOptions options, bool strict)
    {
        string? Last(string name) => query.LastOrDefault(p => p.Key == name).Value;
        foreach (var name in (string[])["_contained", "_containedType"])
        {
            if (Last(name) is { } v && !(name == "_contained" && v == "false"))
                throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
                    $"{name} is not supported: contained resources are not searched separately.", name);
        }
        var (summary, summaryText, total, elements) = Presentation(query);
        var sort = Last("_sort");
        return new Controls(PageSize(query, options), Last("_count") is not null, string.IsNullOrEmpty(sort) ? null : sort,
            FhirSortie.Server.Search.Includes.Parse(query, parameters, strict), summary, summaryText, elements, total);
    }

    /// <summary>_summary, _total and _elements, validated: the generic search and the audit store's search share them.</summary>
    public static (SummaryType Summary, string? SummaryText, string? Total, string[]? Elements) Presentation(IReadOnlyList<KeyValuePair<string, string>> query)
    {
        string? Last(string name) => query.LastOrDefault(p => p.Key == name).Value;
        var summaryText = Last("_summary");
        var summary = summaryText switch
        {
            null or "" or "false" => SummaryType.False,
            "true" => SummaryType.True,
            "text" => SummaryType.Text,
            "data" => SummaryType.Data,
            "count" => SummaryType.Count,
            _ => throw FhirException.BadRequest($"_summary '{summaryText}' is not one of true, false, text, data, count.", "_summary"),
        };
        var total = Last("_total");
        if (total is not (null or "none" or "estimate" or "accurate"))
            throw FhirException.BadRequest($"_total '{total}' is not one of none, estimate, accurate.", "_total");
        var elements = Last("_elements") is { Length: > 0 } e ? e.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null;
        return (summary, string.IsNullOrEmpty(summaryText) ? null : summaryText, total, elements);
    }

    public static int PageSize(IReadOnlyList<KeyValuePair<string, string>> query, FhirSortieOptions options)
    {
        var value = query.LastOrDefault(p => p.Key == "_count").Value;
        if (value is null) return options.DefaultPageSize;
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
            throw FhirException.BadRequest($"_count '{value}' is not a non-negative integer.", "_count");
        return Math.Min(count, options.MaxPageSize);
    }
}
