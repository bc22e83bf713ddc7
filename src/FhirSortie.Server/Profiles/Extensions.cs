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
        var root = run.Root.Poco;
        Walk(run, validator, root, root.TypeName, root.TypeName);
    }

    // Walks the POCOs directly (no node objects): most elements carry no extension, and this pass sees them all.
    private static void Walk(ValidationRun run, ProfileValidator validator, Base element, string path, string elementPath)
    {
        foreach (var (name, value) in element.EnumerateElements())
        {
            if (value is IReadOnlyList<Base> list)
            {
                for (var i = 0; i < list.Count; i++) Visit(run, validator, element, list[i], $"{path}.{name}[{i}]", elementPath, name);
            }
            else if (value is Base single)
            {
                Visit(run, validator, element, single, $"{path}.{name}", elementPath, name);
            }
        }
    }

    private static void Visit(ValidationRun run, ProfileValidator validator, Base parent, Base child, string childPath, string elementPath, string name)
    {
        // Contained resources are validated on their own, not as part of their container.
        if (child is Resource) return;
        if (child is Extension extension && extension.Url is { } url && run.Registry.Find(url) is { Type: "Extension" } definition)
        {
            CheckContext(run, definition, parent, elementPath, childPath);
            var saved = run.Profile;
            run.Profile = definition.Url;
            validator.ValidateElement(run, definition.Root, extension.ToPocoNode(ModelInfo.ModelInspector, "Extension"), childPath);
            run.Profile = saved;
        }
        if (child is PrimitiveType { Extension.Count: 0 }) return;
        Walk(run, validator, child, childPath, elementPath + "." + name);
    }

    private static void CheckContext(ValidationRun run, CompiledProfile definition, Base parent, string parentElementPath, string path)
    {
        var contexts = definition.Definition.Context;
        if (contexts.Count == 0) return;
        foreach (var context in contexts)
        {
            var expression = context.Expression;
            if (expression == "Element" || expression == parentElementPath || expression == parent.TypeName) return;
        }
        run.Error(OperationOutcome.IssueType.Structure, path,
            $"extension {definition.Url} is not allowed on {parentElementPath} (contexts: {string.Join(", ", contexts.Select(c => c.Expression))})");
    }
}
