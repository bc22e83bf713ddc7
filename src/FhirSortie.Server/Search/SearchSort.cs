using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Search;

/// <summary>
/// _sort as an ORDER BY on the resources table aliased "r": each key is a correlated look-up of the smallest
/// (ascending) or largest (descending) indexed value, missing values last, and the order always ends with the
/// unique rkey so that it is total (pages never swap equal rows).
/// </summary>
public static class SearchSort
{
    public const string Default = "r.last_updated DESC, r.rkey DESC";

    /// <returns>The ORDER BY list, and the _sort value actually applied (null when none).</returns>
    public static (string OrderBy, string? Applied) Build(SqlQuery q, string? sort, string[]? types, SearchParameters parameters, bool strict)
    {
        if (string.IsNullOrEmpty(sort)) return (Default, null);
        var keys = new List<string>();
        var applied = new List<string>();
        foreach (var raw in sort.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var descending = raw.StartsWith('-');
            var code = descending ? raw[1..] : raw;
            var direction = descending ? "DESC" : "ASC";
            string? expression = code switch
            {
                "_id" => "r.id",
                "_lastUpdated" => "r.last_updated",
                _ => Lookup(q, code, descending, types, parameters),
            };
            if (expression is null)
            {
                if (strict)
                    throw FhirException.Error(System.Net.HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
                        $"Cannot sort on '{code}': unknown parameter or a type that has no order.", "_sort");
                continue;
            }
            keys.Add(code is "_id" or "_lastUpdated" ? $"{expression} {direction}" : $"CASE WHEN {expression} IS NULL THEN 1 ELSE 0 END, {expression} {direction}");
            applied.Add(raw);
        }
        if (keys.Count == 0) return (Default, null);
        keys.Add("r.rkey ASC");
        return (string.Join(", ", keys), string.Join(',', applied));
    }

    private static string? Lookup(SqlQuery q, string code, bool descending, string[]? types, SearchParameters parameters)
    {
        var definition = types is { Length: > 0 } ? types.Select(t => parameters.Find(t, code)).FirstOrDefault(d => d is not null) : parameters.FindCommon(code);
        if (definition is null) return null;
        var agg = descending ? "MAX" : "MIN";
        var (table, column) = definition.Type switch
        {
            SearchParamType.String => ("search_string", "value"),
            SearchParamType.Token => ("search_token", "code"),
            SearchParamType.Date => ("search_date", descending ? "high" : "low"),
            SearchParamType.Number => ("search_number", descending ? "high" : "low"),
            SearchParamType.Quantity => ("search_quantity", descending ? "high" : "low"),
            SearchParamType.Uri => ("search_uri", "value"),
            SearchParamType.Reference => ("search_reference", "target_id"),
            _ => (null, null),
        };
        if (table is null) return null;
        return $"(SELECT {agg}(s.{column}) FROM {table} s WHERE s.rkey = r.rkey AND s.param = {q.Param(code)})";
    }
}
