using FhirSortie.Server.Profiles;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Profiles;

/// <summary>The R4 base reference targets, checked by our compiled validator whatever the profiles say.</summary>
public sealed class BaseReferencesTests
{
    private static ServiceRequest Referral() =>
        (ServiceRequest)ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", "valid", "ServiceRequest-exit-referral-csapa.json"));

    [Fact]
    public void Reference_to_a_type_the_base_element_does_not_allow_is_an_error_even_where_the_profile_says_nothing()
    {
        var referral = Referral();
        referral.ReasonReference = [new ResourceReference("Condition/hcv"), new ResourceReference("MedicationRequest/exit-buprenorphine")];

        var run = ProfileFixture.Validate(referral);

        var issue = Assert.Single(run.Issues);
        Assert.Equal(["ServiceRequest.reasonReference[1].reference"], issue.Expression);
        Assert.Equal("ServiceRequest.reasonReference: R4 does not allow a reference to MedicationRequest here "
            + "(allowed: Condition, Observation, DiagnosticReport, DocumentReference) (profile http://hl7.org/fhir/StructureDefinition/ServiceRequest)", issue.Diagnostics);
    }

    [Fact]
    public void Nested_references_are_checked_in_backbone_elements_and_data_types()
    {
        var appointment = new Appointment
        {
            Identifier = [new Identifier("urn:x", "1") { Assigner = new ResourceReference("Patient/p") }],
            Participant = [new Appointment.ParticipantComponent { Actor = new ResourceReference("https://other.example/fhir/Organization/o") }],
        };

        Assert.Equal(["Appointment.identifier[0].assigner.reference", "Appointment.participant[0].actor.reference"], TargetIssues(appointment));
    }

    [Fact]
    public void Allowed_any_and_unknown_targets_pass()
    {
        var task = new Hl7.Fhir.Model.Task
        {
            Focus = new ResourceReference("MedicationRequest/m"), // Reference(Any)
            For = new ResourceReference { Identifier = new Identifier("urn:oid:1.2.250.1.213.1.4.8", "1") }, // no type given
            Owner = new ResourceReference("Organization/o"),
            Input = [new Hl7.Fhir.Model.Task.ParameterComponent { Type = new CodeableConcept("urn:x", "x"), Value = new ResourceReference("Appointment/a") }],
        };
        var medication = new MedicationRequest { Medication = new ResourceReference("#med"), Contained = [new Medication { Id = "med" }] };

        Assert.Empty(TargetIssues(task));
        Assert.Empty(TargetIssues(medication));
        medication.Medication = new ResourceReference("Substance/s");
        Assert.Equal(["MedicationRequest.medication.reference"], TargetIssues(medication));
    }

    /// <summary>Where the base reference rule failed (other base rules, such as minimum cardinalities, left out).</summary>
    private static List<string> TargetIssues(Resource resource) =>
        ProfileFixture.Validator.Validate(resource, []).Issues.Where(i => i.Diagnostics!.Contains("R4 does not allow a reference", StringComparison.Ordinal))
            .SelectMany(i => i.Expression).OfType<string>().Order(StringComparer.Ordinal).ToList();
}
