using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// Reference targets: the type of the referenced resource (from the literal reference, a contained resource or
/// Reference.type) must be one the profile allows. The target's own conformance to a target profile is not
/// checked here: that would need a read of the target in the write transaction.
/// </summary>
public static class References
{
    public static void Check(ValidationRun run, ElementRule rule, Base value, string path)
    {
        if (rule.TargetTypes is not { } allowed || value is not ResourceReference reference) return;
        var type = TargetType(run, reference);
        if (type is null || allowed.Contains(type) || allowed.Contains("Resource")) return;
        run.Error(OperationOutcome.IssueType.Invalid, path + ".reference",
            $"{rule.Id}: a reference to {type} is not allowed here (allowed: {string.Join(", ", allowed)})");
    }

    /// <summary>Null when the reference does not say (identifier or display only, urn:uuid not yet resolved).</summary>
    public static string? TargetType(ValidationRun run, ResourceReference reference)
    {
        var literal = reference.Reference;
        if (literal is null) return reference.Type;
        if (literal.StartsWith('#'))
        {
            var id = literal[1..];
            return (run.Root.Poco as DomainResource)?.Contained.FirstOrDefault(c => c.Id == id)?.TypeName;
        }
        if (literal.StartsWith("urn:", StringComparison.Ordinal)) return reference.Type;
        // [base/]Type/id[/_history/v]
        var parts = literal.Split('/');
        var at = parts.Length >= 4 && parts[^2] == "_history" ? parts.Length - 4 : parts.Length - 2;
        return at >= 0 && ModelInfo.IsKnownResource(parts[at]) ? parts[at] : reference.Type;
    }
}
