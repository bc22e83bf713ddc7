using System.Collections.Frozen;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;

namespace FhirSortie.Server.Search;

/// <summary>
/// The search parameters the gateway indexes: the R4 definitions the SDK ships
/// (<see cref="ModelInfo.SearchParameters"/>), plus custom SearchParameters loaded from conformance/.
/// Parameters defined on Resource/DomainResource (_id, _lastUpdated, _tag, _profile, _security...) apply to every type.
/// </summary>
public sealed class SearchParameters
{
    private readonly FrozenDictionary<string, FrozenDictionary<string, SearchParamDefinition>> _byType;
    private readonly FrozenDictionary<string, SearchParamDefinition> _common;
    private readonly FrozenDictionary<string, SearchParamDefinition> _byUrl;

    public SearchParameters(IEnumerable<SearchParamDefinition> custom)
    {
        var all = ModelInfo.SearchParameters.Concat(Common).Concat(custom).ToList();
        var common = all.Where(p => p.Resource is "Resource" or "DomainResource").ToList();
        _byType = ModelInfo.SupportedResources.ToFrozenDictionary(
            type => type,
            type => common.Concat(all.Where(p => p.Resource == type))
                .GroupBy(p => p.Code ?? p.Name ?? "")
                .ToFrozenDictionary(g => g.Key, g => g.Last()));
        _common = common.GroupBy(p => p.Code ?? p.Name ?? "").ToFrozenDictionary(g => g.Key, g => g.Last());
        _byUrl = all.Where(p => p.Url is not null).GroupBy(p => p.Url!).ToFrozenDictionary(g => g.Key, g => g.Last());
    }

    /// <summary>
    /// The parameters every resource has. ModelInfo.SearchParameters does not carry them (measured: none with base
    /// Resource), so they are declared here with the R4 definitions' codes, types and URLs. _id and _lastUpdated
    /// are columns of the resources table; the others are indexed like any parameter.
    /// </summary>
    private static readonly SearchParamDefinition[] Common =
    [
        new() { Resource = "Resource", Name = "_id", Code = "_id", Type = SearchParamType.Token, Expression = "id", Url = "http://hl7.org/fhir/SearchParameter/Resource-id" },
        new() { Resource = "Resource", Name = "_lastUpdated", Code = "_lastUpdated", Type = SearchParamType.Date, Expression = "meta.lastUpdated", Url = "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated" },
        new() { Resource = "Resource", Name = "_tag", Code = "_tag", Type = SearchParamType.Token, Expression = "meta.tag", Url = "http://hl7.org/fhir/SearchParameter/Resource-tag" },
        new() { Resource = "Resource", Name = "_profile", Code = "_profile", Type = SearchParamType.Uri, Expression = "meta.profile", Url = "http://hl7.org/fhir/SearchParameter/Resource-profile" },
        new() { Resource = "Resource", Name = "_security", Code = "_security", Type = SearchParamType.Token, Expression = "meta.security", Url = "http://hl7.org/fhir/SearchParameter/Resource-security" },
        new() { Resource = "Resource", Name = "_source", Code = "_source", Type = SearchParamType.Uri, Expression = "meta.source", Url = "http://hl7.org/fhir/SearchParameter/Resource-source" },
    ];

    /// <summary>Parameters defined on Resource/DomainResource (_tag, _profile, _security...): the only ones of a system search without _type.</summary>
    public SearchParamDefinition? FindCommon(string code) => _common.TryGetValue(code, out var p) ? p : null;

    /// <summary>Resource types a reference parameter may point to.</summary>
    public IReadOnlyList<string> Targets(SearchParamDefinition definition) =>
        definition.Target is { Length: > 0 } targets
            ? targets.Select(t => t.GetLiteral()).Where(ModelInfo.IsKnownResource).ToList()
            : ModelInfo.SupportedResources.ToList();

    /// <summary>The components of a composite parameter as (FHIRPath expression relative to the composite's focus, type).</summary>
    public IReadOnlyList<(string Expression, SearchParamType Type)>? CompositeComponents(SearchParamDefinition definition)
    {
        if (definition.Type != SearchParamType.Composite || definition.Component is not { Length: 2 } components) return null;
        var result = new List<(string, SearchParamType)>();
        foreach (var c in components)
        {
            if (c.Definition is null || c.Expression is null || !_byUrl.TryGetValue(c.Definition, out var d)) return null;
            result.Add((c.Expression, d.Type));
        }
        return result;
    }

    /// <summary>Composites are indexed as (token, token|quantity|number|date|string) pairs, which covers the R4 ones clinicians use.</summary>
    public bool IsIndexedComposite(SearchParamDefinition definition) =>
        CompositeComponents(definition) is [(_, SearchParamType.Token), (_, SearchParamType.Token or SearchParamType.Quantity or SearchParamType.Number or SearchParamType.Date or SearchParamType.String)];

    public SearchParamType? CompositeSecondType(SearchParamDefinition definition) =>
        IsIndexedComposite(definition) ? CompositeComponents(definition)![1].Type : null;

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
