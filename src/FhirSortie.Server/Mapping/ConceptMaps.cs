using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// The ConceptMaps shipped in profiles/ (ConceptMap-*.json), loaded once at start: local medication codes of USMP
/// software to ATC, CDA section codes to the LiaisonLetter's. Used by $translate and by the normalisation of writes.
/// </summary>
public sealed class ConceptMaps
{
    /// <summary>One translation: the target concept, how close it is, and the map that said so.</summary>
    public sealed record Match(ConceptMapEquivalence Equivalence, Coding Concept, string MapUrl);

    private readonly List<ConceptMap> _maps;

    public ConceptMaps(IEnumerable<ConceptMap> maps)
    {
        _maps = maps.ToList();
        foreach (var map in _maps)
        {
            if (map.Url is null || map.Id is null) throw new InvalidOperationException("A ConceptMap in profiles/ has no url or id.");
            foreach (var group in map.Group)
            {
                if (group.Source is null || group.Target is null)
                    throw new InvalidOperationException($"ConceptMap {map.Url}: every group needs a source and a target system.");
            }
        }
    }

    public IReadOnlyList<ConceptMap> All => _maps;

    public static ConceptMaps Load(string folder)
    {
        var deserializer = new FhirJsonDeserializer(new DeserializerSettings());
        var maps = Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, "ConceptMap-*.json").Order(StringComparer.Ordinal)
                .Select(f => deserializer.DeserializeResource(File.ReadAllText(f)) as ConceptMap
                             ?? throw new InvalidOperationException($"{f} is not a ConceptMap."))
            : [];
        return new ConceptMaps(maps);
    }

    public ConceptMap? ById(string id) => _maps.FirstOrDefault(m => m.Id == id);

    public ConceptMap? ByUrl(string url) => _maps.FirstOrDefault(m => m.Url == url.Split('|')[0]);

    /// <summary>
    /// Translations of system|code, in the given maps (all by default), restricted to a target system and to maps whose
    /// source/target scope (ValueSet canonical) is the one asked when given. Unmatched concepts yield nothing.
    /// </summary>
    public IReadOnlyList<Match> Translate(string system, string code, string? targetSystem = null, string? source = null,
        string? target = null, IEnumerable<ConceptMap>? within = null)
    {
        var matches = new List<Match>();
        foreach (var map in within ?? _maps)
        {
            if (source is not null && Scope(map.Source) != source) continue;
            if (target is not null && Scope(map.Target) != target) continue;
            foreach (var group in map.Group.Where(g => g.Source == system && (targetSystem is null || g.Target == targetSystem)))
            {
                foreach (var element in group.Element.Where(e => e.Code == code))
                {
                    foreach (var t in element.Target)
                    {
                        var equivalence = t.Equivalence ?? ConceptMapEquivalence.Equivalent;
                        if (equivalence == ConceptMapEquivalence.Unmatched || t.Code is null) continue;
                        matches.Add(new Match(equivalence, new Coding(group.Target, t.Code, t.Display), map.Url!));
                    }
                }
            }
        }
        return matches;
    }

    /// <summary>A match that can replace the source concept: equal or equivalent meaning.</summary>
    public static bool IsExact(Match match) =>
        match.Equivalence is ConceptMapEquivalence.Equal or ConceptMapEquivalence.Equivalent;

    private static string? Scope(DataType? scope) => scope switch
    {
        Canonical c => c.Value,
        FhirUri u => u.Value,
        _ => null,
    };
}
