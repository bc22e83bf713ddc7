using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Model;
using FhirSortie.Server.Rest;

namespace FhirSortie.Server.Profiles;

/// <summary>The state of one validation of one resource: its node tree, the FHIRPath context and the issues found.</summary>
public sealed class ValidationRun
{
    public ValidationRun(ProfileRegistry registry, Resource resource)
    {
        Registry = registry;
        Root = resource.ToPocoNode(ModelInfo.ModelInspector, resource.TypeName);
        // No ElementResolver: our constraints do not follow references (that would need reads inside the write transaction).
        Context = new FhirEvaluationContext { Resource = Root, RootResource = Root };
    }

    public ProfileRegistry Registry { get; }
    public PocoNode Root { get; }
    public FhirEvaluationContext Context { get; }
    public List<OperationOutcome.IssueComponent> Issues { get; } = [];

    /// <summary>The profile being checked, named in each issue so a client knows which rule failed.</summary>
    public string Profile { get; set; } = "";

    public void Error(OperationOutcome.IssueType code, string path, string message) =>
        Add(OperationOutcome.IssueSeverity.Error, code, path, message);

    public void Warning(OperationOutcome.IssueType code, string path, string message) =>
        Add(OperationOutcome.IssueSeverity.Warning, code, path, message);

    public void Add(OperationOutcome.IssueSeverity severity, OperationOutcome.IssueType code, string path, string message)
    {
        var diagnostics = Profile.Length > 0 ? $"{message} (profile {Profile})" : message;
        if (Issues.Any(i => i.Diagnostics == diagnostics && i.Expression.FirstOrDefault() == path)) return;
        Issues.Add(Outcomes.Issue(severity, code, diagnostics, path));
    }

    public bool HasErrors => Issues.Any(i => i.Severity is OperationOutcome.IssueSeverity.Error or OperationOutcome.IssueSeverity.Fatal);

    /// <summary>The instance children called <paramref name="name"/> (a choice element by its short name: value).</summary>
    public static IEnumerable<(PocoNode Node, string Path)> Children(PocoNode node, string path, string name)
    {
        var children = node.Child(name);
        if (children is null) yield break;
        foreach (var child in children)
            yield return (child, child.Index is { } i ? $"{path}.{name}[{i}]" : $"{path}.{name}");
    }
}
