using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Profiles;

/// <summary>$validate at type and instance level, with a resource body or a Parameters body.</summary>
public abstract class ValidateOperationTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private static Resource Example(string kind, string name) => ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", kind, name + ".json"));

    private static Parameters Parameters(params (string Name, DataType Value)[] values)
    {
        var parameters = new Parameters();
        foreach (var (name, value) in values) parameters.Add(name, value);
        return parameters;
    }

    [Fact]
    public async Task Validate_of_a_conforming_resource_answers_200_no_issues()
    {
        var response = await _fhir.PostAsync("Composition/$validate", FhirHttp.Json(Example("valid", "Composition-liaison-letter")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var issue = Assert.Single((await response.ReadAs<OperationOutcome>()).Issue);
        Assert.Equal(OperationOutcome.IssueSeverity.Information, issue.Severity);
        Assert.StartsWith("No issues detected", issue.Diagnostics);
        Assert.Null(response.Headers.Location);
    }

    [Fact]
    public async Task Validate_of_a_nonconforming_resource_answers_200_with_the_errors()
    {
        var response = await _fhir.PostAsync("Consent/$validate", FhirHttp.Json(Example("invalid", "Consent-sharing-without-category")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Severity == OperationOutcome.IssueSeverity.Error && i.Expression.Contains("Consent.category"));
    }

    [Fact]
    public async Task Validate_reports_a_reference_to_a_type_R4_does_not_allow_in_a_resource_claiming_nothing()
    {
        // R4: Appointment.participant.actor is Reference(Patient | Practitioner | PractitionerRole | RelatedPerson |
        // Device | HealthcareService | Location), not Organization (the exit package's mistake, now fixed).
        var appointment = new Appointment
        {
            Status = Appointment.AppointmentStatus.Booked,
            Participant = [new Appointment.ParticipantComponent { Actor = new ResourceReference("Organization/csapa"), Status = ParticipationStatus.Accepted }],
        };
        var response = await _fhir.PostAsync("Appointment/$validate", FhirHttp.Json(appointment));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var issue = Assert.Single((await response.ReadAs<OperationOutcome>()).Issue);
        Assert.Equal(OperationOutcome.IssueSeverity.Error, issue.Severity);
        Assert.Equal(["Appointment.participant[0].actor.reference"], issue.Expression);
        Assert.StartsWith("Appointment.participant.actor: R4 does not allow a reference to Organization here", issue.Diagnostics);
    }

    [Fact]
    public async Task Validate_with_Parameters_checks_against_the_given_profile()
    {
        // The patient claims nothing; the profile parameter asks for fr-core-patient-ins.
        var patient = new Patient { Identifier = [new Identifier("urn:oid:1.2.250.1.213.1.4.8", "180027512345677")], Gender = AdministrativeGender.Male };
        var parameters = new Parameters();
        parameters.Add("resource", patient);
        parameters.Add("profile", new FhirUri("https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"));
        parameters.Add("mode", new Code("create"));
        var response = await _fhir.PostAsync("Patient/$validate", FhirHttp.Json(parameters));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Expression.Contains("Patient.identifier[0].value") && i.Diagnostics!.StartsWith("fs-nir-key:"));
        Assert.Contains(outcome.Issue, i => i.Expression.Contains("Patient.birthDate"));
    }

    [Fact]
    public async Task Validate_with_a_profile_query_parameter_and_a_resource_body()
    {
        var organization = new Organization { Name = "CSAPA", Identifier = [new Identifier("https://finess.esante.gouv.fr", "130781231")] };
        var response = await _fhir.PostAsync("Organization/$validate?profile=https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-organization", FhirHttp.Json(organization));
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Diagnostics!.StartsWith("fs-finess-key:"));
    }

    [Fact]
    public async Task Instance_validate_for_update_reports_an_id_that_differs_from_the_url()
    {
        var practitioner = (Practitioner)Example("valid", "Practitioner-usmp-physician");
        practitioner.Id = "other";
        var response = await _fhir.PostAsync("Practitioner/abc/$validate?mode=update", FhirHttp.Json(practitioner));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Expression.Contains("Practitioner.id") && i.Severity == OperationOutcome.IssueSeverity.Error);
    }

    [Fact]
    public async Task Instance_validate_for_delete_of_an_unknown_resource_is_404()
    {
        var response = await _fhir.PostAsync("Patient/unknown-one/$validate", FhirHttp.Json(Parameters(("mode", new Code("delete")))));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Instance_validate_for_delete_of_an_existing_resource_answers_information()
    {
        var created = await (await _fhir.PostAsync("Patient", FhirHttp.Json(new Patient { Gender = AdministrativeGender.Female }))).ReadAs<Patient>();
        var response = await _fhir.PostAsync($"Patient/{created.Id}/$validate", FhirHttp.Json(Parameters(("mode", new Code("delete")))));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(OperationOutcome.IssueSeverity.Information, Assert.Single((await response.ReadAs<OperationOutcome>()).Issue).Severity);
    }

    [Fact]
    public async Task Body_that_is_not_valid_FHIR_is_reported_as_issues()
    {
        var response = await _fhir.PostAsync("Patient/$validate", FhirHttp.Json("""{"resourceType":"Patient","gender":"robot","nickname":"x"}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.NotEmpty(outcome.Issue);
        Assert.All(outcome.Issue, i => Assert.Equal(OperationOutcome.IssueSeverity.Error, i.Severity));
    }

    [Fact]
    public async Task CapabilityStatement_lists_the_profiles_and_validate()
    {
        var statement = await (await _fhir.GetAsync("metadata")).ReadAs<CapabilityStatement>();
        var patient = statement.Rest[0].Resource.Single(r => r.Type == "Patient");
        Assert.Contains("https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins", patient.SupportedProfile);
        Assert.Contains(patient.Operation, o => o.Name == "validate");
        var medicationRequest = statement.Rest[0].Resource.Single(r => r.Type == "MedicationRequest");
        Assert.Equal(
            ["https://fhirsortie.fr/fhir/StructureDefinition/ExitPrescription", "https://interop.esante.gouv.fr/ig/fhir/eprescription/StructureDefinition/fr-medicationrequest"],
            medicationRequest.SupportedProfile.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Unknown_mode_is_400()
    {
        var response = await _fhir.PostAsync("Patient/$validate?mode=merge", FhirHttp.Json(new Patient { Gender = AdministrativeGender.Female }));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Resource_of_another_type_is_reported()
    {
        var response = await _fhir.PostAsync("Patient/$validate", FhirHttp.Json(new Practitioner { Active = true }));
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Diagnostics!.Contains("not a Patient"));
    }
}

public sealed class SqliteValidateOperationTests(SqliteGateway gateway) : ValidateOperationTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresValidateOperationTests(PostgresGateway gateway) : ValidateOperationTests(gateway), IClassFixture<PostgresGateway>;
