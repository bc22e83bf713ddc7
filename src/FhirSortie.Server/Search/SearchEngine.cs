using System.Data.Common;
using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Search;

/// <summary>
/// Runs searches as SQL on the index tables (never by loading resources to filter them in memory).
/// Each search parameter becomes a predicate "r.rkey IN (rows of its index table that match)",
/// and the caller's <see cref="AccessFilter"/> is one more predicate in the same query.
/// </summary>
public sealed class SearchEngine(SearchParameters parameters)
{
    public SearchParameters Parameters { get; } = parameters;

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

    public async Task<int> CountAsync(DbConnection connection, string type, IReadOnlyList<KeyValuePair<string, string>> query, AccessFilter filter, bool strict, CancellationToken ct)
    {
        var q = new SqlQuery();
        q.Append("SELECT COUNT(*) FROM resources r WHERE ");
        AppendWhere(q, "r", type, query, filter, strict);
        await using var cmd = q.ToCommand(connection, null);
        return Convert.ToInt32(await cmd.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void AppendWhere(SqlQuery q, string alias, string type, IReadOnlyList<KeyValuePair<string, string>> query, AccessFilter filter, bool strict)
    {
        q.Append($"{alias}.type = {q.Param(type)} AND {alias}.deleted = 0");
        foreach (var (name, value) in query)
        {
            if (name.StartsWith('_') && SearchControl.IsControl(name)) continue;
            AppendParameter(q, alias, type, name, value, strict);
        }
        AppendAccess(q, alias, filter);
    }

    private void AppendParameter(SqlQuery q, string alias, string type, string name, string value, bool strict)
    {
        var colon = name.IndexOf(':');
        var code = colon < 0 ? name : name[..colon];
        var modifier = colon < 0 ? null : name[(colon + 1)..];
        if (code == "_id")
        {
            q.Append($" AND {alias}.id IN ({string.Join(", ", value.Split(',').Select(v => q.Param(v)))})");
            return;
        }
        var definition = Parameters.Find(type, code);
        if (definition is null)
        {
            if (strict) throw FhirException.BadRequest($"Unknown search parameter '{code}' for {type}.", code);
            return;
        }
        var ors = value.Split(',').Select(v => ValuePredicate(q, type, code, definition.Type, modifier, v)).ToList();
        q.Append($" AND {alias}.rkey IN ({string.Join(" UNION ", ors)})");
    }

    private static string ValuePredicate(SqlQuery q, string type, string code, SearchParamType kind, string? modifier, string value)
    {
        var t = q.Param(type);
        var p = q.Param(code);
        switch (kind)
        {
            case SearchParamType.Token:
                var bar = value.IndexOf('|');
                if (bar < 0) return $"SELECT rkey FROM search_token WHERE type = {t} AND param = {p} AND code = {q.Param(value)}";
                var system = value[..bar];
                var tokenCode = value[(bar + 1)..];
                var systemSql = system.Length == 0 ? "system IS NULL" : $"system = {q.Param(system)}";
                return tokenCode.Length == 0
                    ? $"SELECT rkey FROM search_token WHERE type = {t} AND param = {p} AND {systemSql}"
                    : $"SELECT rkey FROM search_token WHERE type = {t} AND param = {p} AND code = {q.Param(tokenCode)} AND {systemSql}";
            case SearchParamType.String:
                return modifier == "exact"
                    ? $"SELECT rkey FROM search_string WHERE type = {t} AND param = {p} AND exact = {q.Param(value)}"
                    : $"SELECT rkey FROM search_string WHERE type = {t} AND param = {p} AND value LIKE {q.Param(ResourceIndexer.Normalize(value) + "%")}";
            case SearchParamType.Reference:
                var (targetType, targetId) = ResourceIndexer.ReferenceParts(value);
                return targetType is null
                    ? $"SELECT rkey FROM search_reference WHERE type = {t} AND param = {p} AND (target_id = {q.Param(value)} OR url = {q.Param(value)})"
                    : $"SELECT rkey FROM search_reference WHERE type = {t} AND param = {p} AND target_type = {q.Param(targetType)} AND target_id = {q.Param(targetId)}";
            case SearchParamType.Uri:
                return $"SELECT rkey FROM search_uri WHERE type = {t} AND param = {p} AND value = {q.Param(value)}";
            default:
                throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
                    $"Search on {kind} parameters ('{code}') is not supported yet.", code);
        }
    }

    private static void AppendAccess(SqlQuery q, string alias, AccessFilter filter)
    {
        if (filter.ResourceTypes is { } types)
            q.Append(types.Count == 0 ? " AND 1 = 0" : $" AND {alias}.type IN ({string.Join(", ", types.Select(x => q.Param(x)))})");
        if (filter.PatientIds is { } patients)
        {
            q.Append(patients.Count == 0 ? " AND 1 = 0" :
                $" AND {alias}.rkey IN (SELECT rkey FROM resource_compartment WHERE compartment_type = 'Patient' AND compartment_id IN ({string.Join(", ", patients.Select(x => q.Param(x)))}))");
        }
        foreach (var (system, code) in filter.DeniedLabels ?? [])
        {
            q.Append($" AND {alias}.rkey NOT IN (SELECT rkey FROM search_token WHERE param = '_security' AND system = {q.Param(system)} AND code = {q.Param(code)})");
        }
    }
}
