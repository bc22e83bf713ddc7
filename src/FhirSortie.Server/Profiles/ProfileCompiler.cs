using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Model;
using Hl7.FhirPath;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// Turns a StructureDefinition's differential into a tree of <see cref="ElementRule"/>s. Each differential element
/// is resolved against the R4 base (the path must exist, a choice element keeps its instance name), its
/// constraints' FHIRPath is compiled, its ValueSet and target profiles must be known.
/// </summary>
public sealed class ProfileCompiler(BaseDefinitions baseDefinitions, Terminology terminology, Func<string, string?> typeOfProfile, List<string> errors)
{
    private static readonly FhirPathCompiler FhirPath = CreateCompiler();

    private static FhirPathCompiler CreateCompiler()
    {
        ElementNavFhirExtensions.PrepareFhirSymbolTableFunctions();
        return new FhirPathCompiler();
    }

    public ElementRule Compile(StructureDefinition sd)
    {
        var type = sd.Type!;
        var root = new ElementRule { Id = type, Path = type, Name = type };
        DifferentialOrder.Check(sd, baseDefinitions, errors);
        foreach (var element in sd.Differential?.Element ?? [])
        {
            if (element.Path is null) { errors.Add($"{sd.Url}: an element has no path"); continue; }
            var id = element.ElementId ?? element.Path;
            var segments = id.Split('.');
            if (segments[0] != type) { errors.Add($"{sd.Url}: element {id} is not under {type}"); continue; }
            if (baseDefinitions.Find(element.Path) is null) { errors.Add($"{sd.Url}: {element.Path} does not exist in R4"); continue; }
            var node = root;
            var path = type;
            for (var i = 1; i < segments.Length; i++)
            {
                var (name, slice) = segments[i].Split(':', 2) switch { [var n, var s] => (n, s), [var n] => (n, (string?)null), _ => (segments[i], null) };
                path += "." + name;
                var instanceName = name.EndsWith("[x]", StringComparison.Ordinal) ? name[..^3] : name;
                var childId = node.Id + "." + name;
                var child = node.Children.Find(c => c.Name == instanceName);
                if (child is null)
                {
                    child = new ElementRule { Id = childId, Path = path, Name = instanceName };
                    node.Children.Add(child);
                }
                if (slice is not null)
                {
                    var sliced = child;
                    child = sliced.Slices.Find(s => s.SliceName == slice);
                    if (child is null)
                    {
                        child = new ElementRule { Id = sliced.Id + ":" + slice, Path = path, Name = instanceName, SliceName = slice };
                        sliced.Slices.Add(child);
                    }
                }
                node = child;
            }
            Apply(sd, node, element);
        }
        ResolveSlices(sd, root);
        return root;
    }

    private void Apply(StructureDefinition sd, ElementRule rule, ElementDefinition e)
    {
        if (e.Min is { } min) rule.Min = min;
        if (e.Max is { } max)
        {
            if (max != "*" && !int.TryParse(max, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _))
                errors.Add($"{sd.Url}: {rule.Id} has max '{max}' (a number or *)");
            else rule.Max = max;
        }
        if (e.Type.Count > 0)
        {
            rule.Types = e.Type.Select(t => t.Code).OfType<string>().ToList();
            rule.TypeProfiles = e.Type.SelectMany(t => t.Profile).OfType<string>().ToList();
            var targets = e.Type.SelectMany(t => t.TargetProfile).OfType<string>().ToList();
            if (targets.Count > 0)
            {
                var types = new List<string>();
                foreach (var target in targets)
                {
                    if (typeOfProfile(target) is { } type) types.Add(type);
                    else errors.Add($"{sd.Url}: {rule.Id} targets unknown profile {target}");
                }
                rule.TargetTypes = types.Distinct().ToList();
                CheckBaseTargets(sd, rule, e);
            }
        }
        if (e.Fixed is DataType fixedValue) rule.Fixed = fixedValue;
        if (e.Pattern is DataType pattern) rule.Pattern = pattern;
        if (e.Binding?.ValueSet is { } valueSet && e.Binding.Strength is { } strength)
        {
            if (!terminology.Has(valueSet)) errors.Add($"{sd.Url}: {rule.Id} is bound to {valueSet}, which is not shipped in profiles/");
            else if (strength is BindingStrength.Required or BindingStrength.Extensible) rule.Binding = new BindingRule(strength, valueSet);
        }
        if (e.Slicing is { } slicing)
        {
            var discriminators = new List<Discriminator>();
            foreach (var d in slicing.Discriminator)
            {
                if (d.Type is not (ElementDefinition.DiscriminatorType.Value or ElementDefinition.DiscriminatorType.Pattern))
                {
                    errors.Add($"{sd.Url}: {rule.Id} slices by {d.Type}; only value and pattern discriminators are supported");
                    continue;
                }
                var discriminatorPath = d.Path ?? "$this";
                var segments = discriminatorPath == "$this" ? [] : discriminatorPath.Split('.');
                discriminators.Add(new Discriminator(d.Type.ToString()!.ToLowerInvariant(), discriminatorPath, segments));
            }
            rule.Slicing = new SlicingRule(discriminators, slicing.Rules == ElementDefinition.SlicingRules.Closed);
        }
        foreach (var c in e.Constraint)
        {
            if (c.Key is null || c.Expression is null) { errors.Add($"{sd.Url}: a constraint on {rule.Id} has no key or expression"); continue; }
            try
            {
                var keyCheck = IdentifierKeys.Parse((c.GetExtensionValue<Code>(IdentifierKeys.CheckExtension))?.Value);
                var severity = c.Severity == ConstraintSeverity.Warning ? IssueSeverity.Warning : IssueSeverity.Error;
                rule.Invariants.Add(new InvariantRule(c.Key, severity, c.Human ?? c.Key, c.Expression, FhirPath.Compile(c.Expression), keyCheck));
            }
            catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException)
            {
                errors.Add($"{sd.Url}: constraint {c.Key} on {rule.Id} does not compile: {ex.Message}");
            }
        }
    }

    /// <summary>A profile narrows the targets R4 allows for an element; it cannot add one (that breaks every R4 validator).</summary>
    private void CheckBaseTargets(StructureDefinition sd, ElementRule rule, ElementDefinition e)
    {
        var allowed = (e.Path is null ? [] : baseDefinitions.Find(e.Path)?.Type ?? []).SelectMany(t => t.TargetProfile).OfType<string>()
            .Select(t => t.StartsWith(ProfileRegistry.BaseCanonical, StringComparison.Ordinal) ? t[ProfileRegistry.BaseCanonical.Length..] : t).ToList();
        if (allowed.Count == 0 || allowed.Contains("Resource")) return;
        foreach (var type in rule.TargetTypes ?? [])
            if (!allowed.Contains(type)) errors.Add($"{sd.Url}: {rule.Id} targets {type}, which R4 does not allow there (allowed: {string.Join(", ", allowed)})");
    }

    /// <summary>Works out, for every slice, the value it requires at each discriminator path of its slicing.</summary>
    private void ResolveSlices(StructureDefinition sd, ElementRule rule)
    {
        foreach (var child in rule.Children) ResolveSlices(sd, child);
        foreach (var slice in rule.Slices) ResolveSlices(sd, slice);
        if (rule.Slices.Count == 0) return;
        if (rule.Slicing is null)
        {
            errors.Add($"{sd.Url}: {rule.Id} has slices but no slicing (declare the slicing in the same profile)");
            return;
        }
        foreach (var slice in rule.Slices)
        {
            foreach (var d in rule.Slicing.Discriminators)
            {
                var value = DiscriminatorValue(slice, d);
                if (value is null) errors.Add($"{sd.Url}: slice {slice.Id} gives no fixed or pattern value for discriminator {d.Path}");
                else slice.DiscriminatorValues.Add(new SliceDiscriminatorValue(d, value));
            }
        }
    }

    private static DataType? DiscriminatorValue(ElementRule slice, Discriminator d)
    {
        // An extension slice is identified by the url of its extension definition.
        if (d.Segments is ["url"] && slice.TypeProfiles.Count == 1 && slice.Types is ["Extension"]) return new FhirUri(slice.TypeProfiles[0]);
        var node = slice;
        foreach (var name in d.Segments)
        {
            node = node.Children.Find(c => c.Name == name);
            if (node is null) return null;
        }
        return node.Fixed ?? node.Pattern;
    }
}
