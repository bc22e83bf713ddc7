using System.Text;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Rest;
using FhirSortie.Tests.Rest;
using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// The patients a write's audit row names are found by walking the resource, not by the FHIRPath engine: they must be
/// exactly what the FHIRPath expression the walk replaces selects, on the official R4 examples and the exit package.
/// </summary>
public sealed class PatientReferencesTests
{
    private static readonly Hl7.FhirPath.CompiledExpression Expression =
        new Hl7.FhirPath.FhirPathCompiler().Compile("(subject | patient | beneficiary | for | participant.actor | entity.what).reference");

    static PatientReferencesTests() => ElementNavFhirExtensions.PrepareFhirSymbolTableFunctions();

    [OfficialExamplesTheory]
    [MemberData(nameof(OfficialJson))]
    public void Official_example_names_the_patients_fhirpath_names(string file)
    {
        Resource resource;
        try
        {
            resource = FhirFormat.Parse(File.ReadAllBytes(Path.Combine(OfficialExamples.Folder!, file)), WireFormat.Json);
        }
        catch (FhirException)
        {
            return; // refused by the strict parser: never saved
        }
        AssertSame(resource);
        if (resource is Bundle bundle)
            foreach (var entry in bundle.Entry)
                if (entry.Resource is { } r) AssertSame(r);
    }

    public static TheoryData<string> OfficialJson() => OfficialExamples.Files("json");

    [Fact]
    public void Resources_name_their_patients_once_in_document_order()
    {
        var careTeam = new CareTeam { Subject = new ResourceReference("Patient/p1") };
        careTeam.Participant.Add(new CareTeam.ParticipantComponent { Member = new ResourceReference("Practitioner/d1") });
        Assert.Equal(["p1"], PatientReferences.Of(careTeam));
        var appointment = new Appointment();
        appointment.Participant.Add(new Appointment.ParticipantComponent { Actor = new ResourceReference("Patient/p2/_history/3") });
        appointment.Participant.Add(new Appointment.ParticipantComponent { Actor = new ResourceReference("Location/l1") });
        appointment.Participant.Add(new Appointment.ParticipantComponent { Actor = new ResourceReference("Patient/p1") });
        appointment.Participant.Add(new Appointment.ParticipantComponent { Actor = new ResourceReference("Patient/p2") });
        Assert.Equal(["p2", "p1"], PatientReferences.Of(appointment));
        Assert.Equal(["p9"], PatientReferences.Of(new Patient { Id = "p9" }));
        Assert.Empty(PatientReferences.Of(new Observation { Subject = new ResourceReference("Group/g1") }));
        AssertSame(careTeam);
        AssertSame(appointment);
    }

    private static void AssertSame(Resource resource)
    {
        if (resource is Patient) return; // a Patient names itself
        PocoNode[] root = [resource.ToPocoNode(ModelInfo.ModelInspector, null)];
        var expected = Expression(root, new FhirEvaluationContext()).ToFhirValues()
            .Select(v => v is FhirString s ? s.Value : (v as IValue<string>)?.Value ?? v?.ToString())
            .Where(r => r is not null && r.StartsWith("Patient/", StringComparison.Ordinal))
            .Select(r => r!["Patient/".Length..].Split('/')[0])
            .Distinct(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, PatientReferences.Of(resource));
    }
}
