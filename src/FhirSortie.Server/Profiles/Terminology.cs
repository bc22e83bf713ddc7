using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// The shipped ValueSets, expanded once from their compose (an include lists its concepts, or takes every
/// concept of a shipped CodeSystem). Our CodeSystems are subsets (content = fragment) of big national or
/// international systems, so a code of the same system that we do not list is only "not known", not wrong.
/// </summary>
public sealed class Terminology
{
    private readonly Dictionary<string, HashSet<(string System, string Code)>> _valueSets = new(StringComparer.Ordinal);

    public Terminology(IEnumerable<ValueSet> valueSets, IEnumerable<CodeSystem> codeSystems, List<string> errors)
    {
        var systems = codeSystems.Where(cs => cs.Url is not null).ToDictionary(cs => cs.Url!, StringComparer.Ordinal);
        foreach (var vs in valueSets)
        {
            var codes = new HashSet<(string, string)>();
            foreach (var include in vs.Compose?.Include ?? [])
            {
                if (include.System is null) { errors.Add($"ValueSet {vs.Url}: an include without system is not supported"); continue; }
                if (include.Concept.Count > 0)
                {
                    foreach (var c in include.Concept) if (c.Code is not null) codes.Add((include.System, c.Code));
                }
                else if (systems.TryGetValue(include.System, out var cs))
                {
                    foreach (var c in Flatten(cs.Concept)) if (c.Code is not null) codes.Add((include.System, c.Code));
                }
                else errors.Add($"ValueSet {vs.Url} includes all of {include.System}, which is not shipped in profiles/");
            }
            if (vs.Url is null) errors.Add("a ValueSet has no url"); else _valueSets[vs.Url] = codes;
        }
    }

    private static IEnumerable<CodeSystem.ConceptDefinitionComponent> Flatten(IEnumerable<CodeSystem.ConceptDefinitionComponent> concepts) =>
        concepts.SelectMany(c => Flatten(c.Concept).Prepend(c));

    public bool Has(string valueSet) => _valueSets.ContainsKey(Canonical(valueSet));

    public bool Contains(string valueSet, string? system, string code)
    {
        var codes = _valueSets[Canonical(valueSet)];
        return system is null ? codes.Any(c => c.Code == code) : codes.Contains((system, code));
    }

    public bool CoversSystem(string valueSet, string? system) =>
        system is not null && _valueSets[Canonical(valueSet)].Any(c => c.System == system);

    /// <summary>Canonical references may carry a version ("url|1.0"); we ship one version of each.</summary>
    public static string Canonical(string url) => url.Split('|')[0];
}
