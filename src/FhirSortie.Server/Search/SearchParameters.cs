using System.Collections.Frozen;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Search;

/// <summary>
/// The search parameters the gateway indexes: the R4 definitions the SDK ships
/// (<see cref="ModelInfo.SearchParameters"/>), plus custom SearchParameters loaded from conformance/.
/// Parameters defined on Resource/DomainResource (_id, _lastUpdated, _tag, _profile, _security...) apply to every type.
/// </summary>
public sealed class SearchParameters
{
    private readonly FrozenDictionary<string, FrozenDictionary<string, SearchParamDefinition>> _byType;

    public SearchParameters(IEnumerable<SearchParamDefinition> custom)
    {
        var all = ModelInfo.SearchParameters.Concat(custom).ToList();
        var common = all.Where(p => p.Resource is "Resource" or "DomainResource").ToList();
        _byType = ModelInfo.SupportedResources.ToFrozenDictionary(
            type => type,
            type => common.Concat(all.Where(p => p.Resource == type))
                .GroupBy(p => p.Code ?? p.Name ?? "")
                .ToFrozenDictionary(g => g.Key, g => g.Last()));
    }

    public IEnumerable<SearchParamDefinition> For(string resourceType) =>
        _byType.TryGetValue(resourceType, out var map) ? map.Values : [];

    public SearchParamDefinition? Find(string resourceType, string code) =>
        _byType.TryGetValue(resourceType, out var map) && map.TryGetValue(code, out var p) ? p : null;

    /// <summary>Reads SearchParameter resources (JSON) from a folder, e.g. conformance/searchparameters.</summary>
    public static IEnumerable<SearchParamDefinition> LoadCustom(string? folder)
    {
        if (folder is null || !Directory.Exists(folder)) yield break;
        foreach (var file in Directory.EnumerateFiles(folder, "*.json").Order())
        {
            var resource = Rest.FhirFormat.Parse(File.ReadAllBytes(file), Rest.WireFormat.Json);
            if (resource is not SearchParameter sp) continue;
            foreach (var baseType in sp.Base)
            {
                yield return new SearchParamDefinition
                {
                    Resource = baseType?.ToString(),
                    Name = sp.Name,
                    Code = sp.Code,
                    Url = sp.Url,
                    Type = sp.Type ?? SearchParamType.Token,
                    Expression = sp.Expression,
                    Target = sp.Target.Select(t => (VersionIndependentResourceTypesAll)t!).ToArray(),
                };
            }
        }
    }
}
