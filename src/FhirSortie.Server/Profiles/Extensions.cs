using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// Every extension of the resource whose url is one of our extension definitions is checked against it, and its
/// context: an extension defined for Patient may not sit on a MedicationRequest or inside an Address.
/// Extensions we do not define are left alone (FHIR lets anyone add them).
/// </summary>
public static class Extensions
{
    public static void Check(ValidationRun run, ProfileValidator validator)
    {
        Walk(run, validator, run.Root, run.Root.Poco.TypeName, run.Root.Poco.TypeName);
    }

    private static void Walk(ValidationRun run, ProfileValidator validator, PocoNode node, string path, string elementPath)
    {
        foreach (var children in node.Children())
        {
            var name = children.Name;
            foreach (var child in children)
            {
                // Contained resources are validated on their own, not as part of their container.
                if (child.Poco is Resource) continue;
                var childPath = child.Index is { } i ? $"{path}.{name}[{i}]" : $"{path}.{name}";
                if (child.Poco is Extension extension && extension.Url is { } url && run.Registry.Find(url) is { Type: "Extension" } definition)
                {
                    CheckContext(run, definition, node, elementPath, childPath);
                    var saved = run.Profile;
                    run.Profile = definition.Url;
                    validator.ValidateElement(run, definition.Root, child, childPath);
                    run.Profile = saved;
                }
                if (child.Poco is not PrimitiveType || child.Poco.EnumerateElements().Any(e => e.Key == "extension"))
                    Walk(run, validator, child, childPath, elementPath + "." + name);
            }
        }
    }

    private static void CheckContext(ValidationRun run, CompiledProfile definition, PocoNode parent, string parentElementPath, string path)
    {
        var contexts = definition.Definition.Context;
        if (contexts.Count == 0) return;
        foreach (var context in contexts)
        {
            var expression = context.Expression;
            if (expression == "Element" || expression == parentElementPath || expression == parent.Poco.TypeName) return;
        }
        run.Error(OperationOutcome.IssueType.Structure, path,
            $"extension {definition.Url} is not allowed on {parentElementPath} (contexts: {string.Join(", ", contexts.Select(c => c.Expression))})");
    }
}
