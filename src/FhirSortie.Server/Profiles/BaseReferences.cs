using System.Collections;
using System.Collections.Concurrent;
using System.Reflection;
using Hl7.Fhir.Introspection;
using Hl7.Fhir.Model;
using Hl7.Fhir.Specification;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// The R4 base rule on reference targets, for every resource type: ServiceRequest.reasonReference may point to a
/// Condition, Observation, DiagnosticReport or DocumentReference, not to a MedicationRequest;
/// Appointment.participant.actor not to an Organization. The allowed types are the SDK's: its POCOs carry each
/// element's R4 targetProfiles as [References]. Only the elements that can lead to a restricted Reference are
/// visited (a plan per type, built once), so a resource costs a few dictionary look-ups, not a walk of its tree.
/// Not checked: extensions (their definitions say what they hold) and contained resources.
/// </summary>
public static class BaseReferences
{
    /// <summary>One element of a type that holds a restricted Reference (Targets) or may lead to one (a complex type).</summary>
    private sealed record Step(string Name, string[]? Targets);

    private static readonly ConcurrentDictionary<Type, Step[]> Plans = new();
    private static readonly ConcurrentDictionary<Type, bool> Leads = new();

    public static void Check(ValidationRun run)
    {
        var resource = run.Root.Poco;
        var before = run.Profile;
        run.Profile = ProfileRegistry.BaseCanonical + resource.TypeName;
        Walk(run, resource, resource.TypeName, resource.TypeName);
        run.Profile = before;
    }

    private static void Walk(ValidationRun run, Base element, string path, string definitionPath)
    {
        foreach (var step in Plan(element.GetType()))
        {
            if (!element.TryGetValue(step.Name, out var value) || value is null) continue;
            if (value is IList list)
            {
                for (var i = 0; i < list.Count; i++)
                    if (list[i] is Base item) Visit(run, step, item, $"{path}.{step.Name}[{i}]", $"{definitionPath}.{step.Name}");
            }
            else if (value is Base single) Visit(run, step, single, $"{path}.{step.Name}", $"{definitionPath}.{step.Name}");
        }
    }

    private static void Visit(ValidationRun run, Step step, Base value, string path, string definitionPath)
    {
        if (value is ResourceReference reference)
        {
            if (step.Targets is not { } allowed) return;
            var type = References.TargetType(run, reference);
            if (type is null || allowed.Contains(type, StringComparer.Ordinal)) return;
            run.Error(OperationOutcome.IssueType.Invalid, path + ".reference",
                $"{definitionPath}: R4 does not allow a reference to {type} here (allowed: {string.Join(", ", allowed)})");
            return;
        }
        Walk(run, value, path, definitionPath);
    }

    private static Step[] Plan(Type type) => Plans.GetOrAdd(type, static t =>
    {
        if (ModelInfo.ModelInspector.FindOrImportClassMapping(t) is not { } mapping) return [];
        var steps = new List<Step>();
        foreach (var property in mapping.PropertyMappings)
        {
            if (Skipped(property)) continue;
            var targets = Targets(property);
            if (targets is not null || property.FhirType.Any(LeadsToRestrictedReference)) steps.Add(new Step(property.Name, targets));
        }
        return [.. steps];
    });

    private static bool Skipped(PropertyMapping property) =>
        property.Name is "extension" or "modifierExtension" or "contained" || property.IsPrimitive;

    /// <summary>The resource types a Reference element allows; null when it allows any (Reference(Any)) or is no Reference.</summary>
    private static string[]? Targets(PropertyMapping property)
    {
        if (!property.FhirType.Contains(typeof(ResourceReference))) return null;
        // Data types shared by several FHIR releases carry one [References] per release (Signature.who gained
        // PractitionerRole in R4): the latest one up to R4.
        var resources = property.NativeProperty?.GetCustomAttributes<ReferencesAttribute>()
            .Where(a => a.Since <= FhirRelease.R4).MaxBy(a => a.Since)?.Resources;
        return resources is { Length: > 0 } && !resources.Contains("Resource") ? resources : null;
    }

    /// <summary>Whether an element of this type can hold, at any depth, a Reference whose targets are restricted (Identifier.assigner...).</summary>
    private static bool LeadsToRestrictedReference(Type type) => Leads.GetOrAdd(type, static t => Search(t, []));

    private static bool Search(Type type, HashSet<Type> visited)
    {
        if (!typeof(Base).IsAssignableFrom(type) || typeof(Resource).IsAssignableFrom(type) || typeof(PrimitiveType).IsAssignableFrom(type)
            || type == typeof(Extension) || type == typeof(Narrative) || !visited.Add(type)) return false;
        if (ModelInfo.ModelInspector.FindOrImportClassMapping(type) is not { } mapping) return false;
        foreach (var property in mapping.PropertyMappings)
        {
            if (Skipped(property)) continue;
            if (Targets(property) is not null) return true;
            if (property.FhirType.Any(t => t != typeof(ResourceReference) && Search(t, visited))) return true;
        }
        return false;
    }
}
