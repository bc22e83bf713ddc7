using System.Data.Common;
using System.Globalization;
using System.Net;
using System.Text;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;

namespace FhirSortie.Server.Audit;

/// <summary>
/// <c>AuditEvent?...</c> served from the audit store (<see cref="AuditStore"/>), as SQL on audit_events and audit_keys.
/// <list type="bullet">
/// <item>Parameters: <c>_id</c>, <c>patient</c>, <c>entity</c>, <c>agent</c> (references; <c>:Type</c> modifiers),
/// <c>agent:identifier</c> (the client id, system <see cref="AuditRecords.ClientIds"/>, or the organisation's FINESS),
/// <c>date</c> and <c>_lastUpdated</c> (every prefix), <c>outcome</c>, <c>action</c>, <c>subtype</c>, <c>type</c>
/// (tokens, <c>:not</c>); comma = OR, repeated = AND. Any other parameter or modifier: 400 under
/// <c>Prefer: handling=strict</c>, ignored (and left out of the self link) otherwise, as the generic search does.
/// <c>_include</c>, <c>_revinclude</c>, chains and <c>_has</c>: always 400 (not supported on the audit store).</item>
/// <item>Results: <c>_sort</c> = <c>date</c>, <c>-date</c>, <c>_lastUpdated</c>, <c>-_lastUpdated</c> (lastUpdated is
/// the recorded instant for every record but those an older build materialised, which it sorts as recorded too);
/// default: oldest first. <c>_count</c>, <c>_total</c>, <c>_summary</c> (incl. count), <c>_elements</c>.</item>
/// <item>Paging: keyset cursors in the links: any node serves any page, and records appended meanwhile never shift a
/// page (the audit store only grows). <c>_cursor</c> = recorded.seq of the last entry (next: the entries after it), or
/// b + recorded.seq of the first entry (previous: the <c>_count</c> entries just before it, in the same order).</item>
/// </list>
/// </summary>
public static class AuditSearch
{
    /// <summary>The search parameters served, with their FHIR types (Capabilities lists exactly these for AuditEvent).</summary>
    public static readonly IReadOnlyDictionary<string, SearchParamType> Served = new Dictionary<string, SearchParamType>(StringComparer.Ordinal)
    {
        ["_id"] = SearchParamType.Token,
        ["_lastUpdated"] = SearchParamType.Date,
        ["action"] = SearchParamType.Token,
        ["address"] = SearchParamType.String,
        ["agent"] = SearchParamType.Reference,
        ["date"] = SearchParamType.Date,
        ["entity"] = SearchParamType.Reference,
        ["outcome"] = SearchParamType.Token,
        ["patient"] = SearchParamType.Reference,
        ["subtype"] = SearchParamType.Token,
        ["type"] = SearchParamType.Token,
    };

    private const string Interactions = "http://hl7.org/fhir/restful-interaction";
    private const string EventTypes = "http://terminology.hl7.org/CodeSystem/audit-event-type";

    private static readonly HashSet<string> Results = new(StringComparer.Ordinal)
    {
        "_count", "_sort", "_total", "_summary", "_elements", "_format", "_pretty", "_cursor",
    };

    /// <summary>The searchset Bundle of an AuditEvent search, as compact JSON (see the class summary).</summary>
    public static async Task<byte[]> ExecuteJsonAsync(SearchRequest request, FhirSortieOptions options, DbConnection db, DbTransaction? tx, DateTimeOffset now, CancellationToken ct)
    {
        var query = request.PatientCompartment is { } compartment
            ? [.. request.Query, new KeyValuePair<string, string>("patient", "Patient/" + compartment)]
            : request.Query.ToList();
        string? Last(string name) => query.LastOrDefault(p => p.Key == name).Value;

        var (summary, summaryText, total, elements) = Controls.Presentation(query);
        var count = Controls.PageSize(query, options);
        var sortText = Last("_sort") is { Length: > 0 } st ? st : null;
        var descending = sortText switch
        {
            null or "date" or "_lastUpdated" => false,
            "-date" or "-_lastUpdated" => true,
            _ => throw Unsupported("_sort", $"_sort '{sortText}' is not supported on AuditEvent (only date, -date, _lastUpdated, -_lastUpdated)."),
        };
        var cursor = Last("_cursor") is { } cursorText ? Cursor(cursorText) : null;

        var q = new SqlQuery();
        var applied = new List<KeyValuePair<string, string>>();
        var where = new StringBuilder("1 = 1");
        foreach (var pair in query)
        {
            if (Results.Contains(pair.Key)) continue;
            if (Condition(q, pair.Key, pair.Value, request.Strict, postgres: db is Npgsql.NpgsqlConnection) is { } condition)
            {
                where.Append(" AND ").Append(condition);
                applied.Add(pair);
            }
        }
        // Batch entries and internal callers carry the caller's filter: AuditEvents are for auditors only.
        if (!request.Access.AllowsType(AuditStore.Type)) where.Append(" AND 1 = 0");
        if (request.Access.PatientIds is { } patients)
        {
            where.Append(patients.Count == 0 ? " AND 1 = 0" :
                $" AND a.id IN (SELECT k.audit_id FROM audit_keys k WHERE k.value IN ({string.Join(", ", patients.Select(p => q.Param(p)))}) AND k.param = 'patient')");
        }

        var results = new List<KeyValuePair<string, string>>();
        if (sortText is not null) results.Add(new("_sort", sortText));
        if (Last("_count") is not null) results.Add(new("_count", count.ToString(CultureInfo.InvariantCulture)));
        if (total is not null) results.Add(new("_total", total));
        if (summaryText is { Length: > 0 }) results.Add(new("_summary", summaryText));
        if (elements is not null) results.Add(new("_elements", string.Join(',', elements)));
        var path = $"{request.BaseUrl}/{AuditStore.Type}";
        string Link(string? cursorValue) => Url(path, [.. applied, .. results, .. cursorValue is null ? [] : new[] { new KeyValuePair<string, string>("_cursor", cursorValue) }]);

        async Task<int> CountAsync()
        {
            await using var cmd = q.ToCommand(db, tx);
            cmd.CommandText = $"SELECT COUNT(*) FROM audit_events a WHERE {where}";
            return Convert.ToInt32(await cmd.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
        }

        if (summary == SummaryType.Count || count == 0)
        {
            var found = await CountAsync();
            return SearchBundle.Write(request.BaseUrl, found, [("self", Link(null))], [], SummaryType.False, null, now);
        }

        var page = new StringBuilder($"SELECT {AuditStore.Columns("a")} FROM audit_events a WHERE {where}");
        // A previous page is read backwards from its cursor (the comparison and the order turned round), then put back
        // in the page order: the count entries just before the cursor, whatever arrived since.
        var backwards = cursor is { Before: true };
        var descendingRead = descending != backwards;
        if (cursor is var (recorded, seq, _))
        {
            var (r, s) = (q.Param(recorded), q.Param(seq));
            page.Append(descendingRead
                ? $" AND (a.recorded < {r} OR (a.recorded = {r} AND a.seq < {s}))"
                : $" AND (a.recorded > {r} OR (a.recorded = {r} AND a.seq > {s}))");
        }
        var direction = descendingRead ? "DESC" : "ASC";
        page.Append($" ORDER BY a.recorded {direction}, a.seq {direction} LIMIT {count + 1}");
        var matches = new List<(long Recorded, StoredResource Record)>(Math.Min(count + 1, 128));
        await using (var cmd = q.ToCommand(db, tx))
        {
            cmd.CommandText = page.ToString();
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) matches.Add((reader.GetInt64(2), AuditStore.ReadRecord(reader)));
        }
        var more = matches.Count > count; // more entries beyond this page in the direction read
        if (more) matches.RemoveAt(matches.Count - 1);
        if (backwards) matches.Reverse();
        int? found2 = total == "none" ? null : !more && cursor is null ? matches.Count : await CountAsync();
        var links = new List<(string, string)> { ("self", Link(cursor is var (cr, cs, cb) ? CursorText(cr, cs, cb) : null)) };
        if (cursor is not null) links.Add(("first", Link(null)));
        // Entries before this page: it was reached through a cursor (the entries it followed are still there), or read
        // backwards and found more.
        var earlier = backwards ? more : cursor is not null;
        // Entries after it: found while reading forwards, or, read backwards, the entry its cursor named.
        var later = backwards || more;
        if (earlier && matches.Count > 0) links.Add(("previous", Link(CursorText(matches[0].Recorded, matches[0].Record.Key, before: true))));
        if (later && matches.Count > 0) links.Add(("next", Link(CursorText(matches[^1].Recorded, matches[^1].Record.Key, before: false))));
        return SearchBundle.Write(request.BaseUrl, found2, links, matches.Select(m => new SearchBundle.Entry(m.Record, false)).ToList(), summary, elements, now);
    }

    private static string CursorText(long recorded, long seq, bool before) =>
        (before ? "b" : "") + recorded.ToString(CultureInfo.InvariantCulture) + "." + seq.ToString(CultureInfo.InvariantCulture);

    private static (long Recorded, long Seq, bool Before)? Cursor(string value)
    {
        var before = value.StartsWith('b');
        var text = before ? value.AsSpan(1) : value.AsSpan();
        var dot = text.IndexOf('.');
        if (dot > 0 && long.TryParse(text[..dot], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var recorded)
            && long.TryParse(text[(dot + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
            return (recorded, seq, before);
        throw FhirException.BadRequest($"_cursor '{value}' is not a page cursor of this server; follow the next link as given.", "_cursor");
    }

    private static FhirException Unsupported(string name, string message) =>
        FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported, message, name);

    private static string? Reject(bool strict, string name, string message) => strict ? throw Unsupported(name, message) : null;

    /// <summary>The SQL condition of one parameter on audit_events "a", or null when it is ignored (lenient).</summary>
    private static string? Condition(SqlQuery q, string name, string value, bool strict, bool postgres)
    {
        SearchValues.RefuseNul(name, value);
        SearchValues.RefuseTooMany(name, value);
        if (name is "_include" or "_revinclude" || name.StartsWith("_include:", StringComparison.Ordinal) || name.StartsWith("_revinclude:", StringComparison.Ordinal)
            || name.StartsWith("_has:", StringComparison.Ordinal) || name.Contains('.', StringComparison.Ordinal))
            throw Unsupported(name, $"'{name}' is not supported on AuditEvent: audit records are searched by their own parameters only (no _include, _revinclude, chains or _has).");
        var colon = name.IndexOf(':');
        var code = colon < 0 ? name : name[..colon];
        var modifier = colon < 0 ? null : name[(colon + 1)..];
        if (!Served.TryGetValue(code, out var type))
            return Reject(strict, name, $"Unknown search parameter '{code}' for AuditEvent (the audit store serves {string.Join(", ", Served.Keys)}).");
        var values = SearchValues.Split(value, ',');
        if (values.Count == 0 || values.All(v => v.Length == 0)) return Reject(strict, name, $"The parameter '{name}' has no value.");
        switch (type)
        {
            case SearchParamType.Date:
                if (modifier is not null) return Reject(strict, name, $"The modifier ':{modifier}' is not supported on '{code}'.");
                var column = code == "date" ? "a.recorded" : "COALESCE(a.last_updated, a.recorded)";
                return Any(values.Select(v => SearchEngine.DateCondition(q, column, column, SearchValues.Date(code, v))));
            case SearchParamType.String:
                // address: the client's IP address; FHIR string semantics (starts with, case-insensitive; :exact).
                if (modifier is not null && modifier != "exact") return Reject(strict, name, $"The modifier ':{modifier}' is not supported on '{code}'.");
                return Any(values.Select(v => Address(q, SearchValues.Unescape(v), exact: modifier == "exact", postgres)));
            case SearchParamType.Reference:
                if (code == "agent" && modifier == "identifier")
                    return Keys(q, "agent:identifier", values.Select(v => SearchValues.Token(v)).Select(t => (t.System is { Length: > 0 } s ? s : null, t.Code)));
                if (modifier is not null && (!ModelInfo.IsKnownResource(modifier) || (code == "patient" && modifier != "Patient")))
                    return Reject(strict, name, $"The modifier ':{modifier}' is not supported on '{code}'.");
                return Keys(q, code, values.Select(v => Reference(code, modifier, SearchValues.Unescape(v))));
            default:
                if (modifier is not null && modifier != "not") return Reject(strict, name, $"The modifier ':{modifier}' is not supported on '{code}'.");
                var tokens = Any(values.Select(v => Token(q, code, SearchValues.Token(v))));
                return modifier == "not" ? $"NOT {tokens}" : tokens;
        }
    }

    private static string Any(IEnumerable<string> conditions) => "(" + string.Join(" OR ", conditions) + ")";

    /// <summary>(type, id) of a reference search value; a bare id is any type (patient: Patient only).</summary>
    private static (string? System, string? Value) Reference(string code, string? typeModifier, string value)
    {
        if (value.Contains('/'))
        {
            var (type, id) = ResourceIndexer.ReferenceParts(value);
            if (type is null || id is null || (typeModifier is not null && type != typeModifier)) return (null, null);
            return (type, id);
        }
        return (typeModifier ?? (code == "patient" ? "Patient" : null), value);
    }

    /// <summary>Audit records whose client address starts with <paramref name="value"/> (normalised), or is it exactly.</summary>
    private static string Address(SqlQuery q, string value, bool exact, bool postgres)
    {
        // The keys hold the normalised address; an IP address is written in lower case, so :exact compares it as given.
        var match = exact ? $"k.value = {q.Param(value)}" : SearchEngine.StartsWith(q, "k.value", ResourceIndexer.Normalize(value), postgres);
        return $"a.id IN (SELECT k.audit_id FROM audit_keys k WHERE k.param = 'address' AND {match})";
    }

    /// <summary>Audit records having one of these (system, value) keys of <paramref name="param"/>; a null system matches any.</summary>
    private static string Keys(SqlQuery q, string param, IEnumerable<(string? System, string? Value)> keys)
    {
        var alternatives = keys.Where(k => k.Value is { Length: > 0 }).Select(k => k.System is null
            ? $"k.value = {q.Param(k.Value)}"
            : $"(k.value = {q.Param(k.Value)} AND k.sys = {q.Param(k.System)})").ToList();
        if (alternatives.Count == 0) return "1 = 0";
        return $"a.id IN (SELECT k.audit_id FROM audit_keys k WHERE k.param = {q.Param(param)} AND ({string.Join(" OR ", alternatives)}))";
    }

    private static string Token(SqlQuery q, string code, (string? System, string? Code) token)
    {
        if (code is "subtype" or "type") return EventCode(q, code, token);
        // What the generic index held: outcome and action without a system.
        var (column, system) = code switch
        {
            "_id" => ("a.id", (string?)null),
            "outcome" => ("a.outcome", null),
            _ => ("a.action", null),
        };
        if (token.System is { Length: > 0 } wanted && wanted != system) return "1 = 0";
        if (token.System is "" && system is not null) return "1 = 0";
        if (token.Code is not { Length: > 0 } value) return token.System is null ? "1 = 0" : "1 = 1";
        return $"{column} = {q.Param(value)}";
    }

    /// <summary>
    /// <c>subtype</c> and <c>type</c>, whose systems follow from the record's interaction (<see cref="AuditRecords.TypeOf"/>,
    /// <see cref="AuditRecords.SubtypeOf"/>): a FHIR interaction's record is of type audit-event-type|rest with its
    /// restful-interaction code as subtype; an OAuth endpoint's record is of type DICOM 110114 with a DICOM subtype.
    /// </summary>
    private static string EventCode(SqlQuery q, string code, (string? System, string? Code) token)
    {
        var authentication = $"a.interaction IN ('{AuditRecords.Login}', '{AuditRecords.Logout}')";
        var rest = $"a.interaction NOT IN ('{AuditRecords.Login}', '{AuditRecords.Logout}')";
        var restSystem = code == "subtype" ? Interactions : EventTypes;
        // The records the system allows (null: any).
        string? kind;
        if (token.System is null) kind = null;
        else if (token.System == restSystem) kind = rest;
        else if (token.System == AuditRecords.Dicom) kind = authentication;
        else return "1 = 0";
        if (token.Code is not { Length: > 0 } value) return kind ?? "1 = 0";
        var match = code == "subtype"
            ? $"a.interaction = {q.Param(value)}"
            : value == AuditRecords.UserAuthenticationType ? authentication : value == AuditRecords.RestType ? rest : "1 = 0";
        return kind is null ? match : $"({kind} AND {match})";
    }

    private static string Url(string path, IEnumerable<KeyValuePair<string, string>> pairs) =>
        FhirSortie.Server.Rest.Search.EncodeQuery(pairs) is { Length: > 0 } query ? $"{path}?{query}" : path;
}
