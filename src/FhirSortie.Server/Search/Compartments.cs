using Hl7.Fhir.Model;

namespace FhirSortie.Server.Search;

/// <summary>
/// Patient compartment membership, from conformance/compartment-patient.json (a CompartmentDefinition):
/// for each resource type, the reference parameters that put it in a patient's compartment.
/// Kept as rows so that compartment search and the per-request access filter are plain joins.
/// </summary>
public sealed class Compartments
{
    private readonly Dictionary<string, string[]> _patientParams;

    public Compartments(Dictionary<string, string[]> patientParams) => _patientParams = patientParams;

    public static Compartments Load(string? conformanceFolder)
    {
        var map = new Dictionary<string, string[]>();
        var file = conformanceFolder is null ? null : Path.Combine(conformanceFolder, "compartment-patient.json");
        if (file is not null && File.Exists(file))
        {
            var def = (CompartmentDefinition)Rest.FhirFormat.Parse(File.ReadAllBytes(file), Rest.WireFormat.Json);
            foreach (var r in def.Resource)
            {
                if (r.Code is { } code && r.Param.Any()) map[code.ToString()] = r.Param.Where(p => p is not null).Select(p => p!).ToArray();
            }
        }
        return new Compartments(map);
    }

    public bool IsInPatientCompartment(string resourceType) => resourceType == "Patient" || _patientParams.ContainsKey(resourceType);

    public IReadOnlyList<string> PatientParams(string resourceType) =>
        _patientParams.TryGetValue(resourceType, out var p) ? p : [];

    public void AddMemberships(Resource resource, IndexEntries entries)
    {
        if (resource is Patient p && p.Id is not null)
        {
            entries.Compartments.Add(new CompartmentEntry("Patient", p.Id));
            return;
        }
        if (!_patientParams.TryGetValue(resource.TypeName, out var parameters)) return;
        foreach (var reference in entries.References)
        {
            if (reference.TargetType == "Patient" && reference.TargetId is { } id && parameters.Contains(reference.Param)
                && !entries.Compartments.Any(c => c.CompartmentId == id))
            {
                entries.Compartments.Add(new CompartmentEntry("Patient", id));
            }
        }
    }
}
