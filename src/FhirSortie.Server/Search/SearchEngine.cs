using System.Data.Common;
using System.Globalization;
using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Search;

/// <summary>
/// Runs searches as SQL on the index tables (never by loading resources to filter them in memory).
/// Each search parameter becomes a predicate "r.rkey IN (rows of its index table that match)"; comma-separated
/// values are a UNION inside that predicate (OR), repeated parameters are separate predicates (AND).
/// Chains and _has become nested sub-queries, and the caller's <see cref="AccessFilter"/> is one more predicate.
/// </summary>
public sealed class SearchEngine(SearchParameters parameters, StorageDialect dialect)
{
    public SearchParameters Parameters { get; } = parameters;

    private readonly bool _postgres = dialect.Name == "Postgres";

    /// <summary>Current resources of <paramref name="type"/> matching all the given parameters (AND), at most <paramref name="limit"/>.</summary>
    public async Task<IReadOnlyList<StoredResource>> FindAsync(DbConnection connection, DbTransaction? tx, string type,
        IReadOnlyList<KeyValuePair<string, string>> query, AccessFilter filter, int limit, CancellationToken ct)
    {
        var q = new SqlQuery();
        q.Append($"SELECT {Sql.StoredColumns("r")} FROM resources r WHERE ");
        AppendWhere(q, "r", type, query, filter, strict: true);
        q.Append($" ORDER BY r.rkey LIMIT {limit}");
        await using var cmd = q.ToCommand(connection, tx);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var found = new List<StoredResource>();
        while (await reader.ReadAsync(ct)) found.Add(Sql.ReadStored(reader));
        return found;
    }

    public async Task<int> CountAsync(DbConnection connection, DbTransaction? tx, string? type, IReadOnlyList<KeyValuePair<string, string>> query,
        AccessFilter filter, bool strict, CancellationToken ct)
    {
        var q = new SqlQuery();
        q.Append("SELECT COUNT(*) FROM resources r WHERE ");
        AppendWhere(q, "r", type, query, filter, strict);
        await using var cmd = q.ToCommand(connection, tx);
        return Convert.ToInt32(await cmd.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Appends the WHERE conditions of a search on <paramref name="type"/> (null: all types, or those of _type)
    /// and returns the parameters actually applied (in lenient mode unknown ones are dropped, for the self link).
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> AppendWhere(SqlQuery q, string alias, string? type,
        IReadOnlyList<KeyValuePair<string, string>> query, AccessFilter filter, bool strict)
    {
        var applied = new List<KeyValuePair<string, string>>();
        string[]? types = type is null ? null : [type];
        if (type is null && query.Where(p => p.Key == "_type").Select(p => p.Value).ToList() is { Count: > 0 } typeValues)
        {
            // Repeated _type parameters narrow down (AND); commas within one are alternatives (OR).
            IEnumerable<string>? allowed = null;
            foreach (var v in typeValues)
            {
                var listed = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                foreach (var t in listed)
                {
                    if (!ModelInfo.IsKnownResource(t) || t is "Resource" or "DomainResource")
                        throw FhirException.BadRequest($"_type '{t}' is not a resource type.", "_type");
                }
                allowed = allowed is null ? listed : allowed.Intersect(listed);
                applied.Add(new("_type", v));
            }
            types = allowed!.Distinct().ToArray();
        }
        var clauses = new List<string>();
        var driver = Driver(types, query);
        for (var i = 0; i < query.Count; i++)
        {
            var pair = query[i];
            if (pair.Key == "_type" || SearchControl.IsControl(pair.Key)) continue;
            // Once per parameter here, not in Clause: chains and _has pass the same value down at every link.
            SearchValues.RefuseNul(pair.Key, pair.Value);
            SearchValues.RefuseTooMany(pair.Key, pair.Value);
            var clause = Clause(q, alias, types, pair.Key, pair.Value, strict, correlated: driver >= 0 && i != driver);
            if (clause is null) continue;
            clauses.Add(clause);
            applied.Add(pair);
        }
        q.Append($"{alias}.deleted = 0");
        if (types is not null)
        {
            // SQLite has no statistics: given an index on (type, last_updated) it walks every resource of the type in
            // sort order and tests each one. When an index predicate exists, "type || ''" hides that index so the
            // query is driven by the (selective) index tables instead, as intended.
            var typeColumn = clauses.Count > 0 && !_postgres ? $"{alias}.type || ''" : $"{alias}.type";
            q.Append($" AND {TypeIn(q, typeColumn, types)}");
        }
        foreach (var clause in clauses) q.Append(" AND ").Append(clause);
        // The searched types already bound the rows: when the caller may see each of them, the filter's type predicate
        // adds nothing (a NOT IN over the complement, built from every R4 type on each search: 1.2% of a one-match search).
        var access = types is not null && filter.ResourceTypes is { } visible && types.All(visible.Contains) ? filter with { ResourceTypes = null } : filter;
        AppendAccess(q, alias, access);
        return applied;
    }

    /// <summary>
    /// A date window that applies per resource type: a row of a type in <paramref name="dateParameters"/> passes when
    /// that type's date parameter overlaps [<paramref name="start"/>, <paramref name="end"/>] (ge start, le end, FHIR
    /// date semantics) or when it has no such date at all; a row of another type passes. Correlated checks on the few
    /// candidate rows (a compartment), never an IN list of every dated resource of the database.
    /// </summary>
    public string DateWindowPerType(SqlQuery q, string alias, IReadOnlyDictionary<string, string> dateParameters, string? start, string? end)
    {
        if (start is null && end is null) throw new ArgumentException("A date window needs a start, an end or both.");
        var alternatives = new List<string> { $"{alias}.type NOT IN ({string.Join(", ", dateParameters.Keys.Select(t => q.Param(t)))})" };
        foreach (var (type, code) in dateParameters)
        {
            string[] types = [type];
            var within = new List<string>();
            if (start is not null) within.Add(Clause(q, alias, types, code, "ge" + start, strict: true, correlated: true)!);
            if (end is not null) within.Add(Clause(q, alias, types, code, "le" + end, strict: true, correlated: true)!);
            var undated = $"NOT EXISTS (SELECT 1 FROM search_date WHERE rkey = {alias}.rkey AND param = {q.Param(code)})";
            alternatives.Add($"({alias}.type = {q.Param(type)} AND ({undated} OR ({string.Join(" AND ", within)})))");
        }
        return "(" + string.Join(" OR ", alternatives) + ")";
    }

    /// <summary>
    /// The parameter that drives the query (an IN list, looked up once); the other simple parameters become
    /// correlated EXISTS checks on the few candidate rows. SQLite has no statistics to choose by itself, and
    /// materialising a broad IN list (given=marie) for every search would cost more than the whole answer.
    /// Equality look-ups (token, reference, uri) are assumed the most selective. -1: no simple parameter.
    /// </summary>
    private int Driver(string[]? types, IReadOnlyList<KeyValuePair<string, string>> query)
    {
        var best = -1;
        var bestRank = int.MaxValue;
        for (var i = 0; i < query.Count; i++)
        {
            var name = query[i].Key;
            if (name.StartsWith('_') || name.Contains('.') || name.Contains(':')) continue;
            if (Find(types, name) is not { } d) continue;
            var rank = d.Type switch
            {
                SearchParamType.Token or SearchParamType.Reference or SearchParamType.Uri => 0,
                SearchParamType.Composite => 1000,
                // Between strings, a longer prefix is likely the rarer one ("nom4699" before "marie").
                SearchParamType.String => 3000 - Math.Min(query[i].Value.Length, 999),
                _ => 4000,
            };
            if (rank < bestRank) (best, bestRank) = (i, rank);
        }
        return best;
    }

    private static string TypeIn(SqlQuery q, string column, string[] types) => types.Length switch
    {
        0 => "1 = 0",
        1 => $"{column} = {q.Param(types[0])}",
        _ => $"{column} IN ({string.Join(", ", types.Select(t => q.Param(t)))})",
    };

    /// <summary>Index-table condition on the resource types searched (none for an unrestricted system search).</summary>
    private static string TypeCondition(SqlQuery q, string column, string[]? types) => types is null ? "1 = 1" : TypeIn(q, column, types);

    private static FhirException Unsupported(string name, string message) =>
        FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported, message, name);

    /// <summary>The SQL condition for one parameter on <paramref name="alias"/>, or null when it is ignored (lenient).</summary>
    private string? Clause(SqlQuery q, string alias, string[]? types, string name, string value, bool strict, bool correlated = false)
    {
        if (name.StartsWith("_has:", StringComparison.Ordinal)) return HasClause(q, alias, types, name, value, strict);
        var dot = name.IndexOf('.');
        if (dot > 0) return ChainClause(q, alias, types, name[..dot], name[(dot + 1)..], value, strict);

        var colon = name.IndexOf(':');
        var code = colon < 0 ? name : name[..colon];
        var modifier = colon < 0 ? null : name[(colon + 1)..];
        if (code == "_id") return IdClause(q, alias, types, name, modifier, value, strict);
        if (code == "_lastUpdated")
        {
            if (modifier is not null) return Reject(strict, name, $"The modifier ':{modifier}' is not supported on _lastUpdated.");
            var ors = SearchValues.Split(value, ',').Select(v => DateCondition(q, $"{alias}.last_updated", $"{alias}.last_updated", SearchValues.Date(name, v)));
            return "(" + string.Join(" OR ", ors) + ")";
        }

        var definition = Find(types, code);
        if (definition is null)
            return Reject(strict, name, $"Unknown search parameter '{code}'{(types is { Length: 1 } ? $" for {types[0]}" : "")}.");
        if (!ModifierAllowed(definition.Type, modifier))
            return Reject(strict, name, $"The modifier ':{modifier}' is not supported on the {definition.Type} parameter '{code}'.");

        var table = Table(definition.Type);
        if (modifier == "missing")
        {
            var missing = value switch
            {
                "true" => true,
                "false" => false,
                _ => throw FhirException.BadRequest($"':missing' takes true or false, not '{value}'.", name),
            };
            var present = $"SELECT rkey FROM {table} WHERE {TypeCondition(q, "type", types)} AND param = {q.Param(code)}";
            return $"{alias}.rkey {(missing ? "NOT IN" : "IN")} ({present})";
        }
        if (definition.Type == SearchParamType.Composite && !Parameters.IsIndexedComposite(definition))
            return Reject(strict, name, $"The composite parameter '{code}' is not supported.");

        var values = SearchValues.Split(value, ',');
        if (values.Any(v => v.Length == 0)) throw FhirException.BadRequest($"The parameter '{name}' has an empty value.", name);
        if (modifier == "not")
        {
            var matching = values.Select(v => ValueSelect(q, types, code, definition, null, v, name));
            return $"{alias}.rkey NOT IN ({string.Join(" UNION ", matching)})";
        }
        // Date, number and quantity "ne" exclude what matches "eq" but keep resources without a value out too.
        var selects = values.Select(v => ValueSelect(q, types, code, definition, modifier, v, name)).ToList();
        return correlated
            ? "(" + string.Join(" OR ", selects.Select(v => Exists(alias, v))) + ")"
            : $"{alias}.rkey IN ({string.Join(" UNION ", selects)})";
    }

    /// <summary>"SELECT rkey FROM t WHERE c" → "EXISTS (SELECT 1 FROM t WHERE rkey = alias.rkey AND c)".</summary>
    private static string Exists(string alias, string select)
    {
        var where = select.IndexOf(" WHERE ", StringComparison.Ordinal);
        return $"EXISTS (SELECT 1{select[(select.IndexOf(" FROM ", StringComparison.Ordinal))..where]} WHERE rkey = {alias}.rkey AND {select[(where + 7)..]})";
    }

    private static string? Reject(bool strict, string name, string message) => strict ? throw Unsupported(name, message) : null;

    private SearchParamDefinition? Find(string[]? types, string code)
    {
        if (types is null || types.Length == 0) return Parameters.FindCommon(code);
        SearchParamDefinition? found = null;
        foreach (var t in types)
        {
            var d = Parameters.Find(t, code);
            if (d is null) return null;
            if (found is not null && found.Type != d.Type) return null;
            found ??= d;
        }
        return found;
    }

    private static bool ModifierAllowed(SearchParamType type, string? modifier)
    {
        if (modifier is null || modifier == "missing") return true;
        return type switch
        {
            SearchParamType.String => modifier is "exact" or "contains",
            SearchParamType.Token => modifier is "not" or "text" or "of-type",
            SearchParamType.Reference => modifier == "identifier" || ModelInfo.IsKnownResource(modifier),
            SearchParamType.Uri => modifier is "above" or "below",
            _ => false,
        };
    }

    public static string Table(SearchParamType type) => type switch
    {
        SearchParamType.String => "search_string",
        SearchParamType.Token => "search_token",
        SearchParamType.Reference => "search_reference",
        SearchParamType.Date => "search_date",
        SearchParamType.Number => "search_number",
        SearchParamType.Quantity => "search_quantity",
        SearchParamType.Uri => "search_uri",
        SearchParamType.Composite => "search_composite",
        _ => "search_token",
    };

    private static string? IdClause(SqlQuery q, string alias, string[]? types, string name, string? modifier, string value, bool strict)
    {
        if (modifier is not null && modifier != "not") return Reject(strict, name, $"The modifier ':{modifier}' is not supported on _id.");
        var ids = SearchValues.Split(value, ',').Select(SearchValues.Unescape).ToList();
        var list = $"{alias}.id {(modifier == "not" ? "NOT IN" : "IN")} ({string.Join(", ", ids.Select(v => q.Param(v)))})";
        // With the type beside it, the (type, id) unique index answers directly.
        return types is { Length: 1 } && modifier is null ? $"({alias}.type = {q.Param(types[0])} AND {list})" : list;
    }

    /// <summary>One value of one parameter: "SELECT rkey FROM index_table WHERE ...".</summary>
    private string ValueSelect(SqlQuery q, string[]? types, string code, SearchParamDefinition definition, string? modifier, string value, string name)
    {
        var indexed = modifier == "of-type" ? code + ":of-type" : code;
        var head = $"SELECT rkey FROM {Table(definition.Type)} WHERE {TypeCondition(q, "type", types)} AND param = {q.Param(indexed)}";
        switch (definition.Type)
        {
            case SearchParamType.String:
                var s = SearchValues.Unescape(value);
                return modifier switch
                {
                    "exact" => $"{head} AND exact = {q.Param(s)}",
                    "contains" => $"{head} AND value LIKE {q.Param("%" + Like(ResourceIndexer.Cut(ResourceIndexer.Normalize(s))) + "%")} ESCAPE '\\'",
                    _ => $"{head} AND {StartsWith(q, "value", ResourceIndexer.Cut(ResourceIndexer.Normalize(s)))}",
                };
            case SearchParamType.Token:
                return head + " AND " + TokenCondition(q, modifier, value, name);
            case SearchParamType.Reference:
                if (modifier == "identifier")
                {
                    var (isys, ival) = SearchValues.Token(value);
                    var ihead = $"SELECT rkey FROM search_token WHERE {TypeCondition(q, "type", types)} AND param = {q.Param(code + ":identifier")}";
                    return $"{ihead} AND {TokenMatch(q, isys, ival)}";
                }
                return $"{head} AND {ReferenceCondition(q, modifier, SearchValues.Unescape(value))}";
            case SearchParamType.Date:
                return $"{head} AND {DateCondition(q, "low", "high", SearchValues.Date(name, value))}";
            case SearchParamType.Number:
                return $"{head} AND {NumberCondition(q, "low", "high", SearchValues.Number(name, value))}";
            case SearchParamType.Quantity:
                var (number, system, unit) = SearchValues.Quantity(name, value);
                var qsql = $"{head} AND {NumberCondition(q, "low", "high", number)}";
                if (system is not null) qsql += $" AND system = {q.Param(system)}";
                if (unit is not null) qsql += $" AND code = {q.Param(unit)}";
                return qsql;
            case SearchParamType.Uri:
                var u = SearchValues.Unescape(value);
                return modifier switch
                {
                    "below" => $"{head} AND {StartsWith(q, "value", u)}",
                    // :above: the stored URI is a prefix of the one searched (it is an ancestor).
                    "above" => $"{head} AND {q.Param(u)} LIKE value || '%'",
                    _ => $"{head} AND value = {q.Param(u)}",
                };
            case SearchParamType.Composite:
                return $"{head} AND {CompositeCondition(q, definition, value, name)}";
            default:
                throw Unsupported(name, $"Search on {definition.Type} parameters ('{code}') is not supported.");
        }
    }

    private static string TokenCondition(SqlQuery q, string? modifier, string value, string name)
    {
        switch (modifier)
        {
            case "text":
                return $"text LIKE {q.Param("%" + Like(ResourceIndexer.Normalize(SearchValues.Unescape(value))) + "%")} ESCAPE '\\'";
            case "of-type":
                var parts = SearchValues.Split(value, '|');
                if (parts.Count != 3 || parts.Any(p => p.Length == 0))
                    throw FhirException.BadRequest($"':of-type' takes system|code|value, not '{value}'.", name);
                // Indexed under "<param>:of-type" as (type system, "type code|value").
                return $"system = {q.Param(SearchValues.Unescape(parts[0]))} AND code = {q.Param(SearchValues.Unescape(parts[1]) + "|" + SearchValues.Unescape(parts[2]))}";
            default:
                var (system, tokenCode) = SearchValues.Token(value);
                return TokenMatch(q, system, tokenCode);
        }
    }

    private static string TokenMatch(SqlQuery q, string? system, string? code)
    {
        var codeSql = string.IsNullOrEmpty(code) ? null : $"code = {q.Param(code)}";
        string? systemSql = system switch
        {
            null => null,
            "" => "system IS NULL",
            _ => $"system = {q.Param(system)}",
        };
        if (codeSql is null && systemSql is null) return "1 = 1";
        return codeSql is null ? systemSql! : systemSql is null ? codeSql : $"{codeSql} AND {systemSql}";
    }

    private static string ReferenceCondition(SqlQuery q, string? typeModifier, string value)
    {
        if (typeModifier is not null)
        {
            var id = value.Contains('/') ? ResourceIndexer.ReferenceParts(value).Id ?? value : value;
            return $"target_type = {q.Param(typeModifier)} AND target_id = {q.Param(id)}";
        }
        if (value.Contains("://", StringComparison.Ordinal) || value.StartsWith("urn:", StringComparison.Ordinal))
        {
            var bar = value.IndexOf('|');
            if (bar > 0) return $"url = {q.Param(value[..bar])} AND version = {q.Param(value[(bar + 1)..])}";
            var (t, i) = ResourceIndexer.ReferenceParts(value);
            var byUrl = $"url = {q.Param(value)}";
            // An absolute URL may name a resource of this server (stored as a relative reference).
            return t is null ? byUrl : $"({byUrl} OR (target_type = {q.Param(t)} AND target_id = {q.Param(i)}))";
        }
        var (type, rid) = ResourceIndexer.ReferenceParts(value);
        return type is null
            ? $"target_id = {q.Param(value)}"
            : $"target_type = {q.Param(type)} AND target_id = {q.Param(rid)}";
    }

    /// <summary>
    /// Date semantics on ranges: the indexed value is [low, high]; the search value's precision gives its own range.
    /// A point in time (the audit store's columns) is the range with low = high.
    /// </summary>
    internal static string DateCondition(SqlQuery q, string low, string high, RangeValue v)
    {
        var lo = q.Param((long)v.Low);
        var hi = q.Param((long)v.High);
        switch (v.Prefix)
        {
            case Prefix.Eq: return $"({low} >= {lo} AND {high} <= {hi})";
            case Prefix.Ne: return $"NOT ({low} >= {lo} AND {high} <= {hi})";
            case Prefix.Gt: return $"{high} > {hi}";
            case Prefix.Lt: return $"{low} < {lo}";
            case Prefix.Ge: return $"{high} >= {lo}";
            case Prefix.Le: return $"{low} <= {hi}";
            case Prefix.Sa: return $"{low} > {hi}";
            case Prefix.Eb: return $"{high} < {lo}";
            default:
                // ap: overlaps the search range widened by 10% of its distance to now (at least a day).
                var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                var margin = Math.Max(86_400_000L, (long)(Math.Abs(now - v.Low) * 0.1));
                return $"({low} <= {q.Param((long)v.High + margin)} AND {high} >= {q.Param((long)v.Low - margin)})";
        }
    }

    private static string NumberCondition(SqlQuery q, string low, string high, RangeValue v)
    {
        switch (v.Prefix)
        {
            case Prefix.Eq: return $"({low} >= {q.Param(v.Low)} AND {high} < {q.Param(v.High)})";
            case Prefix.Ne: return $"NOT ({low} >= {q.Param(v.Low)} AND {high} < {q.Param(v.High)})";
            case Prefix.Gt or Prefix.Sa: return $"{high} > {q.Param(v.Exact)}";
            case Prefix.Lt or Prefix.Eb: return $"{low} < {q.Param(v.Exact)}";
            case Prefix.Ge: return $"{high} >= {q.Param(v.Exact)}";
            case Prefix.Le: return $"{low} <= {q.Param(v.Exact)}";
            default:
                var margin = Math.Abs(v.Exact) * 0.1;
                return $"({low} <= {q.Param(v.Exact + margin)} AND {high} >= {q.Param(v.Exact - margin)})";
        }
    }

    /// <summary>Composite "token$value": both components must match within the same indexed tuple (one row).</summary>
    private string CompositeCondition(SqlQuery q, SearchParamDefinition definition, string value, string name)
    {
        var parts = SearchValues.Split(value, '$');
        var second = Parameters.CompositeSecondType(definition);
        if (parts.Count != 2 || second is null)
            throw FhirException.BadRequest($"'{value}' is not a valid value for the composite parameter '{name}' (expected first$second).", name);
        var (system, code) = SearchValues.Token(parts[0]);
        var first = TokenMatch(q, system, code).Replace("system", "system1", StringComparison.Ordinal).Replace("code", "code1", StringComparison.Ordinal);
        string rest;
        switch (second)
        {
            case SearchParamType.Token:
                var (s2, c2) = SearchValues.Token(parts[1]);
                rest = TokenMatch(q, s2, c2).Replace("system", "system2", StringComparison.Ordinal).Replace("code", "code2", StringComparison.Ordinal);
                break;
            case SearchParamType.Quantity:
                var (number, qs, qc) = SearchValues.Quantity(name, parts[1]);
                rest = NumberCondition(q, "low2", "high2", number);
                if (qs is not null) rest += $" AND system2 = {q.Param(qs)}";
                if (qc is not null) rest += $" AND code2 = {q.Param(qc)}";
                break;
            case SearchParamType.Number:
                rest = NumberCondition(q, "low2", "high2", SearchValues.Number(name, parts[1]));
                break;
            case SearchParamType.Date:
                rest = DateCondition(q, "low2", "high2", SearchValues.Date(name, parts[1]));
                break;
            default:
                rest = StartsWith(q, "code2", ResourceIndexer.Normalize(SearchValues.Unescape(parts[1])));
                break;
        }
        return $"{first} AND {rest}";
    }

    private string StartsWith(SqlQuery q, string column, string prefix) => StartsWith(q, column, prefix, _postgres);

    /// <summary><paramref name="column"/> starts with <paramref name="prefix"/> (already normalised), on either database.</summary>
    public static string StartsWith(SqlQuery q, string column, string prefix, bool postgres)
    {
        var like = $"{column} LIKE {q.Param(Like(prefix) + "%")} ESCAPE '\\'";
        // SQLite's LIKE cannot use the index (it is case-insensitive); a range on the binary collation can. PostgreSQL's
        // collation need not be binary, so a range there could miss values: LIKE alone.
        return postgres || prefix.Length == 0 ? like : $"{column} >= {q.Param(prefix)} AND {column} < {q.Param(prefix + '\uffff')} AND {like}";
    }

    private static string Like(string s) => s.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_");

    /// <summary>
    /// Chained parameter "subject:Patient.name=x": references whose target (of one of the allowed target types)
    /// matches the rest of the chain, which may itself be a chain.
    /// </summary>
    private string? ChainClause(SqlQuery q, string alias, string[]? types, string head, string rest, string value, bool strict)
    {
        var colon = head.IndexOf(':');
        var code = colon < 0 ? head : head[..colon];
        var typeModifier = colon < 0 ? null : head[(colon + 1)..];
        var definition = Find(types, code);
        if (definition is null || definition.Type != SearchParamType.Reference)
            return Reject(strict, head + "." + rest, $"'{code}' is not a reference search parameter that can be chained.");
        if (typeModifier is not null && !ModelInfo.IsKnownResource(typeModifier))
            return Reject(strict, head + "." + rest, $"'{typeModifier}' is not a resource type.");
        var targets = typeModifier is not null ? [typeModifier] : Parameters.Targets(definition);
        var restCode = rest.Split('.', ':')[0];
        var selects = new List<string>();
        foreach (var target in targets)
        {
            if (restCode != "_id" && restCode != "_lastUpdated" && !restCode.StartsWith("_has", StringComparison.Ordinal) && Parameters.Find(target, restCode) is null) continue;
            var inner = q.NewAlias();
            var sr = q.NewAlias();
            var condition = Clause(q, inner, [target], rest, value, strict: true);
            selects.Add($"SELECT {sr}.rkey FROM search_reference {sr} JOIN resources {inner} ON {inner}.type = {sr}.target_type AND {inner}.id = {sr}.target_id " +
                        $"WHERE {TypeCondition(q, sr + ".type", types)} AND {sr}.param = {q.Param(code)} AND {sr}.url IS NULL AND {sr}.target_type = {q.Param(target)} " +
                        $"AND {inner}.deleted = 0 AND {condition}");
        }
        if (selects.Count == 0)
            return Reject(strict, head + "." + rest, $"No target type of '{code}' has the search parameter '{restCode}'.");
        return $"{alias}.rkey IN ({string.Join(" UNION ", selects)})";
    }

    /// <summary>
    /// Reverse chaining "_has:Observation:patient:code=x": resources referenced, through Observation.patient,
    /// by an Observation whose code is x. The last part may itself be a _has.
    /// </summary>
    private string? HasClause(SqlQuery q, string alias, string[]? types, string name, string value, bool strict)
    {
        var parts = name.Split(':', 4);
        if (parts.Length < 4 || !ModelInfo.IsKnownResource(parts[1]))
            throw FhirException.BadRequest($"'{name}' is not a valid _has parameter (expected _has:Type:reference:parameter).", name);
        var (source, referenceParam, rest) = (parts[1], parts[2], parts[3]);
        var reference = Parameters.Find(source, referenceParam);
        if (reference is null || reference.Type != SearchParamType.Reference)
            return Reject(strict, name, $"'{referenceParam}' is not a reference search parameter of {source}.");
        var inner = q.NewAlias();
        var target = q.NewAlias();
        var sr = q.NewAlias();
        var condition = Clause(q, inner, [source], rest, value, strict: true);
        return $"{alias}.rkey IN (SELECT {target}.rkey FROM search_reference {sr} " +
               $"JOIN resources {inner} ON {inner}.rkey = {sr}.rkey " +
               $"JOIN resources {target} ON {target}.type = {sr}.target_type AND {target}.id = {sr}.target_id " +
               $"WHERE {sr}.type = {q.Param(source)} AND {sr}.param = {q.Param(referenceParam)} AND {sr}.url IS NULL " +
               $"AND {TypeCondition(q, sr + ".target_type", types)} AND {inner}.deleted = 0 AND {condition})";
    }

    /// <summary>The access filter as predicates on <paramref name="alias"/> (a row of the resources table).</summary>
    public static void AppendAccess(SqlQuery q, string alias, AccessFilter filter)
    {
        if (filter.ResourceTypes is { } types) AppendTypes(q, alias, types);
        if (filter.PatientIds is { } patients)
        {
            q.Append(patients.Count == 0 ? " AND 1 = 0" :
                $" AND {alias}.rkey IN (SELECT rkey FROM resource_compartment WHERE compartment_type = 'Patient' AND compartment_id IN ({string.Join(", ", patients.Select(x => q.Param(x)))}))");
        }
        foreach (var (system, code) in filter.DeniedLabels ?? [])
        {
            q.Append($" AND {alias}.rkey NOT IN (SELECT rkey FROM search_token WHERE param = '_security' AND system = {q.Param(system)} AND code = {q.Param(code)})");
        }
        if (filter.Consent is { } consent) AppendConsent(q, alias, consent);
    }

    /// <summary>
    /// The allowed types as the shorter of IN (allowed) and NOT IN (the others): most callers may see every type but one
    /// or two (AuditEvent, Subscription), and an IN list of ~145 bound parameters cost about 0.9 ms of CPU per search
    /// (statement parse plus Microsoft.Data.Sqlite's parameter binding), ten times the search itself. Only types the
    /// gateway can store are ever in the resources table, so NOT IN over the complement is the same predicate.
    /// </summary>
    private static void AppendTypes(SqlQuery q, string alias, IReadOnlySet<string> types)
    {
        if (types.Count == 0)
        {
            q.Append(" AND 1 = 0");
            return;
        }
        var others = Hl7.Fhir.Model.ModelInfo.SupportedResources.Where(t => !types.Contains(t)).ToList();
        if (others.Count == 0) return;
        if (others.Count < types.Count)
            q.Append($" AND {alias}.type NOT IN ({string.Join(", ", others.Select(x => q.Param(x)))})");
        else
            q.Append($" AND {alias}.type IN ({string.Join(", ", types.Select(x => q.Param(x)))})");
    }

    /// <summary>
    /// The <see cref="ConsentRestriction"/> as predicates on <paramref name="alias"/> (see its summary for the rules). The
    /// text depends only on the restriction's shape and the alias, so it is built once per shape and kept
    /// (<see cref="ConsentTexts"/>); the values are bound under fixed names (<see cref="SqlQuery.Named"/>). Building its
    /// ~3 KB for every search cost about 8% of a search's CPU (perf, search-ins), plus the garbage.
    /// </summary>
    private static void AppendConsent(SqlQuery q, string alias, ConsentRestriction c)
    {
        var shape = new ConsentShape(alias, c.OnlyDocumentCategory is not null, c.RequireConsent, c.Finess is not null, c.AuthorSees,
            c.Purpose == c.BreakGlassPurpose && c.CareTeam, c.CareTeam, c.SensitiveLabels.Count, c.HonourDenies, c.OnlyEncounterType is not null, c.Person is not null);
        q.Append(ConsentTexts.GetOrAdd(shape, ConsentText));
        if (c.OnlyDocumentCategory is var (docSystem, docCode))
        {
            q.Named(ConsentNames.DocumentSystem, docSystem);
            q.Named(ConsentNames.DocumentCode, docCode);
        }
        if (c.OnlyEncounterType is var (encounterSystem, encounterCode))
        {
            q.Named(ConsentNames.EncounterSystem, encounterSystem);
            q.Named(ConsentNames.EncounterCode, encounterCode);
        }
        if (shape.Person && c.RequireConsent) q.Named(ConsentNames.Person, c.Person);
        if (!c.RequireConsent || c.Finess is null) return;
        q.Named(ConsentNames.Finess, c.Finess);
        q.Named(ConsentNames.Purpose, c.Purpose);
        q.Named(ConsentNames.Now, c.Now);
        if (shape.BreakGlass) q.Named(ConsentNames.Client, c.ClientId);
        for (var i = 0; i < c.SensitiveLabels.Count; i++) q.Named(ConsentNames.Label(i), c.SensitiveLabels[i]);
    }

    /// <summary>What the consent predicates' text depends on.</summary>
    private readonly record struct ConsentShape(string Alias, bool DocumentCategory, bool RequireConsent, bool HasFiness, bool AuthorSees,
        bool BreakGlass, bool CareTeam, int SensitiveLabels, bool HonourDenies, bool EncounterType, bool Person);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<ConsentShape, string> ConsentTexts = new();

    /// <summary>Fixed parameter names of the consent predicates' values (never the generated @q names).</summary>
    private static class ConsentNames
    {
        public const string Finess = "@cfiness";
        public const string Purpose = "@cpurpose";
        public const string Now = "@cnow";
        public const string Client = "@cclient";
        public const string DocumentSystem = "@cdocsys";
        public const string DocumentCode = "@cdoccode";
        public const string EncounterSystem = "@cencsys";
        public const string EncounterCode = "@cenccode";
        public const string Person = "@cperson";

        public static string Label(int i) => "@clabel" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Aliases of the consent predicates' sub-queries: "k" + the outer alias + a number, never the generated x names.</summary>
    private sealed class ConsentAliases(string alias)
    {
        private int _next;

        public string New() => "k" + alias + (_next++).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string ConsentText(ConsentShape shape)
    {
        var plain = PlainConsentText(shape);
        if (!shape.RequireConsent) return plain;
        // A Provenance (the trace of a write) is visible to whoever may see every one of its targets; one without targets
        // follows the ordinary rule (issue 21 §3, ConsentDecisions.DecideForProvenanceAsync).
        var alias = shape.Alias;
        var (sr, t) = ("kr" + alias, "kt" + alias);
        var targets = $"SELECT 1 FROM search_reference {sr} WHERE {sr}.rkey = {alias}.rkey AND {sr}.param = 'target'";
        // A deleted target has lost its index rows: only its author organisation still sees its trace.
        var o = "ko" + alias;
        var deleted = shape.HasFiness && shape.AuthorSees
            ? $" OR ({t}.deleted = 1 AND EXISTS (SELECT 1 FROM resource_origin {o} WHERE {o}.type = {t}.type AND {o}.id = {t}.id AND {o}.finess = {ConsentNames.Finess}))"
            : "";
        var hidden = $"{targets} AND NOT EXISTS (SELECT 1 FROM resources {t} WHERE {t}.type = {sr}.target_type AND {t}.id = {sr}.target_id " +
            $"AND (({t}.deleted = 0{PlainConsentText(shape with { Alias = t })}){deleted}))";
        return $" AND (({alias}.type <> 'Provenance' OR NOT EXISTS ({targets})){plain}" +
            $" OR ({alias}.type = 'Provenance' AND EXISTS ({targets}) AND NOT EXISTS ({hidden})))";
    }

    private static string PlainConsentText(ConsentShape shape)
    {
        var alias = shape.Alias;
        var names = new ConsentAliases(alias);
        var sql = new System.Text.StringBuilder();
        if (shape.DocumentCategory)
        {
            var t = names.New();
            sql.Append($" AND ({alias}.type <> 'DocumentReference' OR EXISTS (SELECT 1 FROM search_token {t} WHERE {t}.rkey = {alias}.rkey " +
                $"AND {t}.param = 'category' AND {t}.system = {ConsentNames.DocumentSystem} AND {t}.code = {ConsentNames.DocumentCode}))");
        }
        if (shape.EncounterType)
        {
            var t = names.New();
            sql.Append($" AND ({alias}.type <> 'Encounter' OR EXISTS (SELECT 1 FROM search_token {t} WHERE {t}.rkey = {alias}.rkey " +
                $"AND {t}.param = 'type' AND {t}.system = {ConsentNames.EncounterSystem} AND {t}.code = {ConsentNames.EncounterCode}))");
        }
        if (!shape.RequireConsent) return sql.ToString();
        var rc = names.New();
        var allowed = shape.HasFiness ? Allowed(names, alias, rc + ".compartment_id", shape) : "1 = 0";
        // The person sees their own Consents (AccessRules: "the person's own consent").
        if (shape.Person) allowed = $"({alias}.type = 'Consent' AND {rc}.compartment_id = {ConsentNames.Person}) OR {allowed}";
        var author = "";
        if (shape.AuthorSees && shape.HasFiness)
        {
            var o = names.New();
            author = $"EXISTS (SELECT 1 FROM resource_origin {o} WHERE {o}.type = {alias}.type AND {o}.id = {alias}.id AND {o}.finess = {ConsentNames.Finess}) OR ";
        }
        // Every patient of the resource must allow it (a shared resource is shown only when all of them do).
        sql.Append($" AND ({author}NOT EXISTS (SELECT 1 FROM resource_compartment {rc} WHERE {rc}.rkey = {alias}.rkey " +
            $"AND {rc}.compartment_type = 'Patient' AND NOT ({allowed})))");
        return sql.ToString();
    }

    private static string Allowed(ConsentAliases names, string alias, string patient, ConsentShape shape)
    {
        var parts = new List<string>();
        if (shape.BreakGlass)
        {
            var b = names.New();
            parts.Add($"EXISTS (SELECT 1 FROM break_glass {b} WHERE {b}.patient_id = {patient} AND {b}.client_id = {ConsentNames.Client} AND {b}.expires > {ConsentNames.Now})");
        }
        var granted = new List<string>();
        if (shape.CareTeam) granted.Add(Grants(names, alias, patient, "team", shape, checkClass: false));
        granted.Add(Grants(names, alias, patient, "permit", shape, checkClass: true));
        var consented = "(" + string.Join(" OR ", granted) + ")";
        if (shape.HonourDenies) consented = $"(NOT {Grants(names, alias, patient, "deny", shape, checkClass: true)} AND {consented})";
        parts.Add(consented);
        return string.Join(" OR ", parts);
    }

    /// <summary>EXISTS a consent_grants row of a live source for the patient with this effect (null columns match anything).</summary>
    private static string Grants(ConsentAliases names, string alias, string patient, string effect, ConsentShape shape, bool checkClass)
    {
        var g = names.New();
        var s = names.New();
        var sql = new System.Text.StringBuilder();
        sql.Append($"EXISTS (SELECT 1 FROM consent_grants {g} JOIN resources {s} ON {s}.type = {g}.source_type AND {s}.id = {g}.source_id AND {s}.deleted = 0 ");
        sql.Append($"WHERE {g}.patient_id = {patient} AND {g}.effect = '{effect}'");
        if (effect == "deny")
        {
            // A deny provision naming no actor objects to everyone; one with a label applies to resources carrying it.
            sql.Append($" AND ({g}.actor_finess IS NULL OR {g}.actor_finess = {ConsentNames.Finess})");
            var t = names.New();
            sql.Append($" AND ({g}.label IS NULL OR EXISTS (SELECT 1 FROM search_token {t} WHERE {t}.rkey = {alias}.rkey AND {t}.param = '_security' AND {t}.code = {g}.label))");
        }
        else
        {
            sql.Append($" AND {g}.actor_finess = {ConsentNames.Finess}");
        }
        if (effect == "permit")
        {
            // FHIR Consent: a permit without securityLabel covers every resource of its classes; one with a label only
            // those carrying it. The restriction's SensitiveLabels (V) are covered only by a permit naming them.
            var t = names.New();
            sql.Append($" AND ({g}.label IS NULL OR EXISTS (SELECT 1 FROM search_token {t} WHERE {t}.rkey = {alias}.rkey AND {t}.param = '_security' AND {t}.code = {g}.label))");
            if (shape.SensitiveLabels > 0)
            {
                var explicitly = string.Join(", ", Enumerable.Range(0, shape.SensitiveLabels).Select(ConsentNames.Label));
                var v = names.New();
                sql.Append($" AND NOT EXISTS (SELECT 1 FROM search_token {v} WHERE {v}.rkey = {alias}.rkey AND {v}.param = '_security' " +
                    $"AND {v}.code IN ({explicitly}) AND ({g}.label IS NULL OR {v}.code <> {g}.label))");
            }
        }
        if (checkClass)
        {
            sql.Append($" AND ({g}.class IS NULL OR {g}.class = {alias}.type) AND ({g}.purpose IS NULL OR {g}.purpose = {ConsentNames.Purpose})");
            sql.Append($" AND ({g}.period_start IS NULL OR {g}.period_start <= {ConsentNames.Now}) AND ({g}.period_end IS NULL OR {g}.period_end >= {ConsentNames.Now})");
        }
        sql.Append(')');
        return sql.ToString();
    }
}
