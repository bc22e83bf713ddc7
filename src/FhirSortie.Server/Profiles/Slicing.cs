using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// Assigns the items of a sliced element to slices by their discriminators (value or pattern at a path such as
/// <c>system</c>, <c>url</c>, <c>coding.system</c> or <c>$this</c>), then checks each slice's cardinality.
/// An item that fits no slice is fine when the slicing is open, an error when it is closed.
/// </summary>
public static class Slicing
{
    public static Dictionary<ElementRule, List<(PocoNode Node, string Path)>> Partition(
        ValidationRun run, ElementRule sliced, IReadOnlyList<(PocoNode Node, string Path)> items, string parentPath)
    {
        var bySlice = sliced.Slices.ToDictionary(s => s, _ => new List<(PocoNode Node, string Path)>());
        foreach (var item in items)
        {
            var slice = sliced.Slices.Find(s => s.DiscriminatorValues.All(d => Matches(d, item.Node)));
            if (slice is not null) bySlice[slice].Add(item);
            else if (sliced.Slicing!.Closed)
                run.Error(OperationOutcome.IssueType.Structure, item.Path, $"{sliced.Id}: matches none of the slices of this closed slicing");
        }
        foreach (var (slice, members) in bySlice)
        {
            Cardinality.Check(run, slice, members.Count, $"{parentPath}.{sliced.Name}");
        }
        return bySlice;
    }

    private static bool Matches(SliceDiscriminatorValue discriminator, PocoNode item)
    {
        IEnumerable<PocoNode> values = [item];
        foreach (var name in discriminator.Discriminator.Segments)
            values = values.SelectMany(v => (IEnumerable<PocoNode>?)v.Child(name) ?? []);
        return values.Any(v => FixedAndPattern.Matches(discriminator.Value, v.Poco, exact: false));
    }
}
