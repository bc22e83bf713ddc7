using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// A differential must list its elements in the order of the base definition, each slice after the element it
/// slices and the slice's own elements right after it (R4 profiling: "the differential is in the same order as the
/// snapshot"). Our compiler does not need the order, but the official snapshot generator refuses a differential
/// that breaks it, and then every other validator fails the resources that claim the profile: refused at start.
/// </summary>
public static class DifferentialOrder
{
    public static void Check(StructureDefinition sd, BaseDefinitions baseDefinitions, List<string> errors)
    {
        // Slices of one element rank in the order they first appear; the element itself (no slice) ranks first.
        var sliceRanks = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        (string Id, List<int> Key)? previous = null;
        foreach (var element in sd.Differential?.Element ?? [])
        {
            var id = element.ElementId ?? element.Path;
            if (id is null || element.Path is null || baseDefinitions.Find(element.Path) is null) continue; // reported by the compiler
            var key = Key(id, baseDefinitions, sliceRanks);
            if (key is null) continue;
            if (previous is { } before && Compare(key, before.Key) <= 0)
            {
                errors.Add(Compare(key, before.Key) == 0
                    ? $"{sd.Url}: differential element {id} appears twice"
                    : $"{sd.Url}: differential element {id} is out of base element order (it comes after {before.Id}); "
                      + "list the elements in the order of the R4 base definition, each slice after the element it slices, "
                      + "or the official snapshot generator refuses the profile");
            }
            previous = (id, key);
        }
    }

    /// <summary>Per segment of the id: the base position of the element among its siblings, then its slice rank.</summary>
    private static List<int>? Key(string id, BaseDefinitions baseDefinitions, Dictionary<string, List<string>> sliceRanks)
    {
        var segments = id.Split('.');
        var key = new List<int>();
        var path = segments[0];
        var prefix = segments[0];
        for (var i = 1; i < segments.Length; i++)
        {
            var (name, slice) = segments[i].Split(':', 2) switch { [var n, var s] => (n, s), [var n] => (n, (string?)null), _ => (segments[i], null) };
            path += "." + name;
            prefix += "." + name;
            if (baseDefinitions.Position(path) is not { } position) return null;
            var rank = 0;
            if (slice is not null)
            {
                if (!sliceRanks.TryGetValue(prefix, out var slices)) sliceRanks[prefix] = slices = [];
                if (!slices.Contains(slice)) slices.Add(slice);
                rank = slices.IndexOf(slice) + 1;
                prefix += ":" + slice;
            }
            key.Add(position);
            key.Add(rank);
        }
        return key;
    }

    private static int Compare(List<int> a, List<int> b)
    {
        for (var i = 0; i < Math.Min(a.Count, b.Count); i++)
            if (a[i] != b[i]) return a[i].CompareTo(b[i]);
        return a.Count.CompareTo(b.Count);
    }
}
