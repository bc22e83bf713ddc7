using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>Every element of a resource (contained resources and extensions included), for passes over all its references.</summary>
public static class ElementTree
{
    public static IReadOnlyList<Base> DescendantsAndSelf(Base node)
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
                        stack.Push(child);
                        break;
                    case IEnumerable<Base> children:
                        foreach (var c in children) stack.Push(c);
                        break;
                }
            }
        }
        return result;
    }
}
