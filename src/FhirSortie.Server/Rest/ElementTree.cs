using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>Every element of a resource (contained resources and extensions included), for passes over all its references.</summary>
public static class ElementTree
{
    /// <summary>The node and its descendants; with <paramref name="include"/>, only the elements it accepts (and theirs).</summary>
    public static IReadOnlyList<Base> DescendantsAndSelf(Base node, Func<Base, bool>? include = null)
    {
        // Depth-first with an explicit stack, collected first: callers may rewrite the POCOs while they go through the list.
        var result = new List<Base>();
        var stack = new Stack<Base>();
        stack.Push(node);
        while (stack.Count > 0)
        {
            var current = stack.Pop();
            result.Add(current);
            foreach (var (_, value) in current.EnumerateElements())
            {
                switch (value)
                {
                    case Base child:
                        if (include?.Invoke(child) ?? true) stack.Push(child);
                        break;
                    case IEnumerable<Base> children:
                        foreach (var c in children) if (include?.Invoke(c) ?? true) stack.Push(c);
                        break;
                }
            }
        }
        return result;
    }
}
