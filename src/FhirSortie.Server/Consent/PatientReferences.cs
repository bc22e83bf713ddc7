using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// The patient a resource in memory is about, for the audit trail of a write (stored resources use the
/// resource_compartment table instead). Covers the elements the exit package uses; others give no patient.
/// </summary>
public static class PatientReferences
{
    private static readonly Hl7.FhirPath.CompiledExpression Expression =
        new Hl7.FhirPath.FhirPathCompiler().Compile("(subject | patient | beneficiary | for | participant.actor | entity.what).reference");

    public static IReadOnlyList<string> Of(Resource resource)
    {
        if (resource is Patient { Id: { } id }) return [id];
        PocoNode[] root = [resource.ToPocoNode(ModelInfo.ModelInspector, null)];
        return Expression(root, new FhirEvaluationContext()).ToFhirValues()
            .Select(v => v is FhirString s ? s.Value : (v as IValue<string>)?.Value ?? v?.ToString())
            .Where(r => r is not null && r.StartsWith("Patient/", StringComparison.Ordinal))
            .Select(r => r!["Patient/".Length..].Split('/')[0])
            .Distinct(StringComparer.Ordinal).ToArray();
    }
}
