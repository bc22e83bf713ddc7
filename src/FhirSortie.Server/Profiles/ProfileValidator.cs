using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// Validates a resource against profiles of the registry: the R4 base minimum cardinalities (for the types
/// whose base definition we ship) and reference targets (every type), then each profile of the chain (fr-core-patient, then fr-core-patient-ins...)
/// element by element, then every extension we define against its definition and context.
/// </summary>
public sealed class ProfileValidator(ProfileRegistry registry)
{
    public ProfileRegistry Registry => registry;

    /// <summary>
    /// The R4 base rule on reference target types alone, for a write that claims no profile (plain R4): the SDK's
    /// strict parser does not check it, and a ServiceRequest.reasonReference to a MedicationRequest is not R4.
    /// </summary>
    public ValidationRun ValidateBaseReferences(Resource resource)
    {
        var run = new ValidationRun(registry, resource);
        BaseReferences.Check(run);
        return run;
    }

    public ValidationRun Validate(Resource resource, IEnumerable<string> profiles)
    {
        var run = new ValidationRun(registry, resource);
        var type = resource.TypeName;
        if (registry.Base.Required(type) is { } required)
        {
            run.Profile = ProfileRegistry.BaseCanonical + type;
            ValidateElement(run, required, run.Root, type);
            run.Profile = "";
        }
        BaseReferences.Check(run);
        var layers = new List<CompiledProfile>();
        foreach (var url in profiles.Distinct(StringComparer.Ordinal))
        {
            var profile = registry.Find(url);
            if (profile is null && url.StartsWith(ProfileRegistry.BaseCanonical, StringComparison.Ordinal))
            {
                // Profiles of the FHIR specification itself (shareablevalueset, vitalsigns...): official examples
                // claim them and must still load. We do not ship them, so say so instead of refusing the resource.
                var name = url[ProfileRegistry.BaseCanonical.Length..];
                if (name != type)
                    run.Warning(OperationOutcome.IssueType.NotSupported, $"{type}.meta.profile", $"The FHIR core profile {url} is not shipped with this server; the resource was not checked against it");
                continue;
            }
            if (profile is null)
            {
                run.Error(OperationOutcome.IssueType.NotSupported, $"{type}.meta.profile",
                    $"The profile {url} is not known to this server; the profiles it validates are listed in its CapabilityStatement and profiles/ folder");
                continue;
            }
            if (profile.Type != type)
            {
                run.Error(OperationOutcome.IssueType.Invalid, $"{type}.meta.profile", $"The profile {url} is for {profile.Type}, not {type}");
                continue;
            }
            foreach (var layer in registry.Chain(profile))
                if (!layers.Contains(layer)) layers.Add(layer);
        }
        foreach (var layer in layers)
        {
            run.Profile = layer.Url;
            ValidateElement(run, layer.Root, run.Root, type);
        }
        run.Profile = "";
        Extensions.Check(run, this);
        return run;
    }

    /// <summary>Checks one instance element against a rule, then the rule's constrained children and slices.</summary>
    public void ValidateElement(ValidationRun run, ElementRule rule, PocoNode node, string path)
    {
        if (!CheckValue(run, rule, node, path)) return;
        foreach (var child in rule.Children)
        {
            var items = ValidationRun.Children(node, path, child.Name).ToList();
            Cardinality.Check(run, child, items.Count, $"{path}.{child.Name}");
            foreach (var (item, itemPath) in items) ValidateElement(run, child, item, itemPath);
            if (child.Slicing is not null && child.Slices.Count > 0)
            {
                foreach (var (slice, members) in Slicing.Partition(run, child, items, path))
                    foreach (var (item, itemPath) in members) ValidateElement(run, slice, item, itemPath);
            }
        }
    }

    /// <summary>False when the element is of a type the profile forbids (its children are then not checked).</summary>
    private static bool CheckValue(ValidationRun run, ElementRule rule, PocoNode node, string path)
    {
        var value = node.Poco;
        if (rule.Types is { } types && !types.Contains(value.TypeName) && !(value is Quantity && types.Contains("Quantity")))
        {
            run.Error(OperationOutcome.IssueType.Structure, path, $"{rule.Id}: type {value.TypeName} is not allowed (allowed: {string.Join(", ", types)})");
            return false;
        }
        FixedAndPattern.Check(run, rule, value, path);
        Bindings.Check(run, rule, value, path);
        References.Check(run, rule, value, path);
        Invariants.Check(run, rule, node, path);
        return true;
    }
}
