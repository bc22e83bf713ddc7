using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// Required and extensible bindings against the shipped ValueSets. Required: a code outside the ValueSet is an
/// error. Extensible: a code of a system the ValueSet draws from but not in it is an error (the ValueSet is the
/// list that must be used for that system); a code of another system is accepted with a warning.
/// </summary>
public static class Bindings
{
    public static void Check(ValidationRun run, ElementRule rule, Base value, string path)
    {
        if (rule.Binding is not { } binding) return;
        var codings = Codings(value);
        if (codings is null) return;
        if (codings.Count == 0)
        {
            if (binding.Strength == BindingStrength.Required)
                run.Error(OperationOutcome.IssueType.CodeInvalid, path, $"{rule.Id}: no code given; a code from {binding.ValueSet} is required");
            return;
        }
        var terminology = run.Registry.Terminology;
        if (codings.Any(c => terminology.Contains(binding.ValueSet, c.System, c.Code))) return;
        var shown = string.Join(", ", codings.Select(c => c.System is null ? c.Code : $"{c.System}#{c.Code}"));
        if (binding.Strength == BindingStrength.Required || codings.Any(c => terminology.CoversSystem(binding.ValueSet, c.System)))
        {
            run.Error(OperationOutcome.IssueType.CodeInvalid, path, $"{rule.Id}: {shown} is not in the {binding.Strength.ToString()!.ToLowerInvariant()} value set {binding.ValueSet}");
        }
        else
        {
            run.Warning(OperationOutcome.IssueType.CodeInvalid, path, $"{rule.Id}: {shown} is not in the extensible value set {binding.ValueSet}");
        }
    }

    /// <summary>The codes carried by a coded value; null for values that are not coded (bindings do not apply).</summary>
    private static List<(string? System, string Code)>? Codings(Base value) => value switch
    {
        CodeableConcept cc => cc.Coding.Where(c => c.Code is not null).Select(c => ((string?)c.System, c.Code!)).ToList(),
        Coding c => c.Code is null ? [] : [(c.System, c.Code)],
        Quantity q => q.Code is null ? [] : [(q.System, q.Code)],
        PrimitiveType p when p.TypeName is "code" or "string" or "uri" => p.ToString() is { Length: > 0 } s ? [(null, s)] : [],
        _ => null,
    };
}
