using Hl7.Fhir.Model;
using Hl7.FhirPath;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// One element of a profile's differential, compiled for validation: what the profile says about the element
/// (cardinality, types, fixed/pattern value, binding, invariants) and its constrained children and slices.
/// Anything the differential does not say is left to the base definition and not checked again here.
/// </summary>
public sealed class ElementRule
{
    /// <summary>ElementDefinition.id, e.g. <c>Patient.identifier:INS-NIR.value</c>: named in every issue.</summary>
    public required string Id { get; init; }

    /// <summary>Element path without slice names, e.g. <c>Patient.identifier.value</c>.</summary>
    public required string Path { get; init; }

    /// <summary>Name of the element in an instance (<c>value[x]</c> → <c>value</c>).</summary>
    public required string Name { get; init; }

    public string? SliceName { get; init; }

    public int? Min { get; set; }

    public string? Max { get; set; }

    /// <summary>Allowed instance types when the profile restricts them (<c>value[x] only Coding</c>).</summary>
    public IReadOnlyList<string>? Types { get; set; }

    /// <summary>Type profiles (the extension definition of an extension slice).</summary>
    public IReadOnlyList<string> TypeProfiles { get; set; } = [];

    /// <summary>Resource types a Reference may point to, from type.targetProfile.</summary>
    public IReadOnlyList<string>? TargetTypes { get; set; }

    public DataType? Fixed { get; set; }

    public DataType? Pattern { get; set; }

    public BindingRule? Binding { get; set; }

    public List<InvariantRule> Invariants { get; } = [];

    public SlicingRule? Slicing { get; set; }

    /// <summary>For a slice: the values an instance element must carry to belong to it, one per discriminator.</summary>
    public List<SliceDiscriminatorValue> DiscriminatorValues { get; } = [];

    public List<ElementRule> Children { get; } = [];

    public List<ElementRule> Slices { get; } = [];

    public int MaxValue => Max is null or "*" ? int.MaxValue : int.Parse(Max, System.Globalization.CultureInfo.InvariantCulture);
}

public sealed record BindingRule(BindingStrength Strength, string ValueSet);

public sealed record SlicingRule(IReadOnlyList<Discriminator> Discriminators, bool Closed);

/// <summary>A slicing discriminator (type value or pattern) and its path split into element names; <c>$this</c> is empty.</summary>
public sealed record Discriminator(string Type, string Path, IReadOnlyList<string> Segments);

/// <summary>The value a slice requires at a discriminator path (a fixed or pattern value, or an extension's url).</summary>
public sealed record SliceDiscriminatorValue(Discriminator Discriminator, DataType Value);

/// <summary>
/// A constraint: a compiled FHIRPath expression, and optionally a native identifier key check
/// (the profiles mark them with the extension <see cref="IdentifierKeys.CheckExtension"/>).
/// </summary>
public sealed record InvariantRule(string Key, IssueSeverity Severity, string Human, string Expression, CompiledExpression Compiled, IdentifierKeyKind? KeyCheck);

public enum IssueSeverity { Error, Warning }

/// <summary>A StructureDefinition compiled for validation.</summary>
public sealed record CompiledProfile(StructureDefinition Definition, ElementRule Root)
{
    public string Url => Definition.Url!;
    public string Type => Definition.Type!;
}
