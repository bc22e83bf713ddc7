using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// The R4 base definitions (snapshots of the profiled resource types and of the data types, kept under
/// profiles/base/). A profile's differential only says what it changes; this is where an element path such as
/// <c>Patient.identifier.system</c> is checked to exist and where its type is found, descending into data types
/// (<c>Patient.identifier</c> is an Identifier, so <c>.system</c> is looked up as <c>Identifier.system</c>).
/// </summary>
public sealed class BaseDefinitions
{
    private readonly Dictionary<string, ElementDefinition> _elements = new(StringComparer.Ordinal);
    private readonly HashSet<string> _types = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ElementRule> _required = new(StringComparer.Ordinal);
    private readonly Dictionary<ElementDefinition, int> _positions = new(ReferenceEqualityComparer.Instance);

    public BaseDefinitions(IEnumerable<StructureDefinition> definitions)
    {
        foreach (var sd in definitions)
        {
            if (sd.Type is not { } type) continue;
            _types.Add(type);
            var position = 0;
            foreach (var e in sd.Snapshot?.Element ?? [])
            {
                if (e.Path is { } path && _elements.TryAdd(path, e)) _positions[e] = position;
                position++;
            }
            if (sd.Kind == StructureDefinition.StructureDefinitionKind.Resource) _required[type] = RequiredElements(type, sd.Snapshot?.Element ?? []);
        }
    }

    /// <summary>
    /// The base rules of a resource type as a rule tree: the elements with min &gt; 0 (Consent.scope,
    /// Consent.provision.actor.role...), checked within their parent when it is present. The strict parser already
    /// refuses bad primitive values and repeated singletons; minimums are what is left.
    /// </summary>
    public ElementRule? Required(string type) => _required.GetValueOrDefault(type);

    private static ElementRule RequiredElements(string type, IEnumerable<ElementDefinition> snapshot)
    {
        var root = new ElementRule { Id = type, Path = type, Name = type };
        foreach (var e in snapshot)
        {
            if (e.Min is not > 0 || e.Path is not { } path || !path.Contains('.')) continue;
            var node = root;
            var segments = path.Split('.');
            for (var i = 1; i < segments.Length; i++)
            {
                var name = segments[i].EndsWith("[x]", StringComparison.Ordinal) ? segments[i][..^3] : segments[i];
                var child = node.Children.Find(c => c.Name == name);
                if (child is null)
                {
                    child = new ElementRule { Id = string.Join('.', segments[..(i + 1)]), Path = string.Join('.', segments[..(i + 1)]), Name = name };
                    node.Children.Add(child);
                }
                node = child;
            }
            node.Min = e.Min;
        }
        return root;
    }

    public bool Defines(string type) => _types.Contains(type);

    /// <summary>The base definition of an element path (slice names removed), or null when the path does not exist.</summary>
    public ElementDefinition? Find(string path)
    {
        path = Canonicalise(path);
        if (_elements.TryGetValue(path, out var direct)) return direct;
        // Descend through the longest known prefix into its data type: Patient.identifier.system → Identifier.system.
        for (var cut = path.LastIndexOf('.'); cut > 0; cut = path.LastIndexOf('.', cut - 1))
        {
            if (!_elements.TryGetValue(path[..cut], out var prefix)) continue;
            var types = prefix.Type.Select(t => t.Code).Distinct().ToList();
            if (types.Count != 1 || types[0] is "Element" or "BackboneElement") return null;
            return Find(types[0] + path[cut..]);
        }
        return null;
    }

    /// <summary>
    /// Where an element path's base definition stands in its StructureDefinition's snapshot (Patient.identifier.system:
    /// the position of Identifier.system in Identifier): siblings compare in base element order.
    /// </summary>
    public int? Position(string path)
    {
        // The element itself, not the target of its contentReference (Composition.section.section is the last child of section).
        var cut = path.LastIndexOf('.');
        var exact = cut < 0 ? path : Canonicalise(path[..cut]) + path[cut..];
        var e = _elements.GetValueOrDefault(exact) ?? Find(path);
        return e is not null && _positions.TryGetValue(e, out var position) ? position : null;
    }

    /// <summary>Children of a contentReference element are the target's (Composition.section.section.title → Composition.section.title).</summary>
    public string Canonicalise(string path)
    {
        var segments = path.Split('.');
        var current = segments[0];
        for (var i = 1; i < segments.Length; i++)
        {
            var next = current + "." + segments[i];
            if (_elements.TryGetValue(next, out var e) && e.ContentReference is { Length: > 1 } reference)
            {
                current = reference.TrimStart('#');
                continue;
            }
            current = next;
        }
        return current;
    }
}
