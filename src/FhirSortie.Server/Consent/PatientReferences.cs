using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// The patient a resource in memory is about, for the audit trail of a write (stored resources use the
/// resource_compartment table instead). Covers the elements the exit package uses; others give no patient.
/// </summary>
public static class PatientReferences
{
    /// <summary>
    /// What FHIRPath "(subject | patient | beneficiary | for | participant.actor | entity.what).reference" selects,
    /// walked on the POCO: run through the FHIRPath engine on every resource saved it cost about 20 µs each (3 % of the
    /// CPU of an exit-package transaction). Same order; duplicates are removed below either way.
    /// </summary>
    private static readonly string[][] Paths = [["subject"], ["patient"], ["beneficiary"], ["for"], ["participant", "actor"], ["entity", "what"]];

    public static IReadOnlyList<string> Of(Resource resource)
    {
        if (resource is Patient { Id: { } id }) return [id];
        var found = new List<string>();
        foreach (var path in Paths) Collect(resource, path, 0, found);
        return found;
    }

    private static void Collect(Base node, string[] path, int step, List<string> found)
    {
        if (step == path.Length)
        {
            if (node.TryGetValue("reference", out var value) && value is PrimitiveType { JsonValue: string reference }
                && reference.StartsWith("Patient/", StringComparison.Ordinal))
            {
                var patient = reference["Patient/".Length..].Split('/')[0];
                if (!found.Contains(patient, StringComparer.Ordinal)) found.Add(patient);
            }
            return;
        }
        if (!node.TryGetValue(path[step], out var child) || child is null) return;
        if (child is Base single) Collect(single, path, step + 1, found);
        else if (child is System.Collections.IEnumerable many)
            foreach (var item in many)
                if (item is Base b) Collect(b, path, step + 1, found);
    }
}
