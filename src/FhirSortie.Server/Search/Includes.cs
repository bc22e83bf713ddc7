using System.Data.Common;
using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Search;

/// <summary>One _include or _revinclude: "Source:param[:Target]", "*" or "Source:*"; Iterate for ":iterate".</summary>
public sealed record IncludeSpec(bool Reverse, bool Iterate, string? Source, string? Param, string? Target, string Raw);

/// <summary>
/// _include and _revinclude, run as SQL on search_reference for the resources of one page. Included resources
/// go through the caller's access filter like matches do, are never repeated and never counted in the total.
/// </summary>
public static class Includes
{
    private const int MaxRounds = 4;
    /// <summary>Included resources per page at most (a client that needs them all asks for fewer matches per page: Portal/PortalData.cs).</summary>
    public const int MaxIncluded = 1000;

    public static List<IncludeSpec> Parse(IReadOnlyList<KeyValuePair<string, string>> query, SearchParameters parameters, bool strict)
    {
        var specs = new List<IncludeSpec>();
        foreach (var (name, value) in query)
        {
            var colon = name.IndexOf(':');
            var baseName = colon < 0 ? name : name[..colon];
            if (baseName is not ("_include" or "_revinclude")) continue;
            var modifier = colon < 0 ? null : name[(colon + 1)..];
            if (modifier is not (null or "iterate" or "recurse"))
            {
                if (strict) throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported, $"'{name}' is not supported (use :iterate).", name);
                continue;
            }
            var spec = ParseOne(baseName == "_revinclude", modifier is not null, name, value, parameters);
            if (spec is null)
            {
                if (strict) throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
                    $"'{value}' is not a valid {baseName} (expected Type:reference-parameter[:TargetType] or *).", name);
                continue;
            }
            specs.Add(spec);
        }
        return specs;
    }

    private static IncludeSpec? ParseOne(bool reverse, bool iterate, string name, string value, SearchParameters parameters)
    {
        if (value == "*") return new IncludeSpec(reverse, iterate, null, null, null, name + "=" + value);
        var parts = value.Split(':');
        if (parts.Length is < 2 or > 3 || !ModelInfo.IsKnownResource(parts[0])) return null;
        var target = parts.Length == 3 ? parts[2] : null;
        if (target is not null && !ModelInfo.IsKnownResource(target)) return null;
        if (parts[1] == "*") return new IncludeSpec(reverse, iterate, parts[0], null, target, name + "=" + value);
        var definition = parameters.Find(parts[0], parts[1]);
        if (definition is null || definition.Type != SearchParamType.Reference) return null;
        return new IncludeSpec(reverse, iterate, parts[0], parts[1], target, name + "=" + value);
    }

    /// <summary>
    /// Why some included resources may be missing: the specs that can reach a type the access filter hides (their
    /// resources are omitted, as the spec allows), for a warning in the Bundle. Empty when the filter hides no type.
    /// </summary>
    public static List<string> Omitted(IReadOnlyList<IncludeSpec> specs, AccessFilter filter, SearchParameters parameters)
    {
        var warnings = new List<string>();
        if (filter.ResourceTypes is null) return warnings;
        foreach (var spec in specs)
        {
            IEnumerable<string>? reached = spec.Reverse
                ? spec.Source is { } source ? [source] : null
                : spec.Target is { } target ? [target]
                : spec.Source is { } from && spec.Param is { } param && parameters.Find(from, param) is { } definition ? parameters.Targets(definition) : null;
            var hidden = reached is null ? ["some types"] : reached.Where(t => !filter.AllowsType(t)).Distinct().ToList();
            if (hidden.Count > 0) warnings.Add($"{spec.Raw}: resources of {string.Join(", ", hidden)} are not included (no search scope on them).");
        }
        return warnings;
    }

    /// <summary>The resources to include for <paramref name="matches"/>, in the order found, without the matches themselves.</summary>
    public static async Task<List<StoredResource>> FindAsync(SearchDb db, IReadOnlyList<IncludeSpec> specs,
        IReadOnlyList<StoredResource> matches, AccessFilter filter, CancellationToken ct)
    {
        var included = new List<StoredResource>();
        if (specs.Count == 0 || matches.Count == 0) return included;
        var seen = matches.Select(m => m.Key).ToHashSet();
        IReadOnlyList<StoredResource> focus = matches;
        for (var round = 0; round < MaxRounds && focus.Count > 0 && included.Count < MaxIncluded; round++)
        {
            var found = new List<StoredResource>();
            foreach (var spec in specs)
            {
                if (round > 0 && !spec.Iterate) continue;
                foreach (var r in await RunAsync(db, spec, focus, filter, ct))
                {
                    if (seen.Add(r.Key)) found.Add(r);
                }
            }
            included.AddRange(found);
            focus = found;
        }
        return included.Count > MaxIncluded ? included[..MaxIncluded] : included;
    }

    private static async Task<List<StoredResource>> RunAsync(SearchDb db, IncludeSpec spec,
        IReadOnlyList<StoredResource> focus, AccessFilter filter, CancellationToken ct)
    {
        var q = new SqlQuery();
        q.Append($"SELECT {Sql.StoredColumns("r")} FROM resources r WHERE r.deleted = 0 AND ");
        if (!spec.Reverse)
        {
            var sources = focus.Where(f => spec.Source is null || f.Type == spec.Source).Select(f => f.Key).ToList();
            if (sources.Count == 0) return [];
            q.Append("r.rkey IN (SELECT t.rkey FROM search_reference sr JOIN resources t ON t.type = sr.target_type AND t.id = sr.target_id WHERE sr.url IS NULL");
            q.Append($" AND sr.rkey IN ({string.Join(", ", sources.Select(k => q.Param(k)))})");
            if (spec.Source is not null) q.Append($" AND sr.type = {q.Param(spec.Source)}");
            if (spec.Param is not null) q.Append($" AND sr.param = {q.Param(spec.Param)}");
            if (spec.Target is not null) q.Append($" AND sr.target_type = {q.Param(spec.Target)}");
            q.Append(")");
        }
        else
        {
            var targets = focus.Where(f => spec.Target is null || f.Type == spec.Target).GroupBy(f => f.Type).ToList();
            if (targets.Count == 0) return [];
            if (spec.Source is not null) q.Append($"r.type = {q.Param(spec.Source)} AND ");
            q.Append("r.rkey IN (SELECT sr.rkey FROM search_reference sr WHERE sr.url IS NULL");
            if (spec.Source is not null) q.Append($" AND sr.type = {q.Param(spec.Source)}");
            if (spec.Param is not null) q.Append($" AND sr.param = {q.Param(spec.Param)}");
            q.Append(" AND (");
            q.Append(string.Join(" OR ", targets.Select(g =>
                $"(sr.target_type = {q.Param(g.Key)} AND sr.target_id IN ({string.Join(", ", g.Select(f => q.Param(f.Id)))}))")));
            q.Append("))");
        }
        SearchEngine.AppendAccess(q, "r", filter);
        q.Append($" ORDER BY r.rkey LIMIT {MaxIncluded + 1}");
        return await db.StoredAsync(q, ct);
    }
}
