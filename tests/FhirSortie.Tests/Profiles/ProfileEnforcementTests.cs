using System.Net;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Profiles;

/// <summary>Writes of resources that claim a profile are validated; failures are 422 with the issues.</summary>
public abstract class ProfileEnforcementTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private static string Example(string kind, string name) => File.ReadAllText(Path.Combine(ProfileFixture.Folder, "examples", kind, name + ".json"));

    [Fact]
    public async Task Create_claiming_a_profile_with_a_wrong_NIR_key_returns_422_with_the_issue()
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(Example("invalid", "Patient-ins-wrong-nir-key")));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        var issue = Assert.Single(outcome.Issue);
        Assert.Equal(OperationOutcome.IssueSeverity.Error, issue.Severity);
        Assert.Equal(["Patient.identifier[0].value"], issue.Expression);
        Assert.StartsWith("fs-nir-key:", issue.Diagnostics);
    }

    [Fact]
    public async Task Create_of_a_conforming_resource_returns_201()
    {
        var response = await _fhir.PostAsync("MedicationRequest", FhirHttp.Json(Example("valid", "MedicationRequest-exit-buprenorphine")));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Create_claiming_an_unknown_profile_returns_422()
    {
        var response = await _fhir.PostAsync("Consent", FhirHttp.Json(Example("invalid", "Consent-unknown-profile")));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Expression.Contains("Consent.meta.profile") && i.Diagnostics!.Contains("not known"));
    }

    [Fact]
    public async Task Update_that_breaks_a_claimed_profile_returns_422_and_keeps_the_current_version()
    {
        var created = await (await _fhir.PostAsync("Practitioner", FhirHttp.Json(Example("valid", "Practitioner-usmp-physician")))).ReadAs<Practitioner>();
        created.Identifier[1].Value = "10001234566";
        var response = await _fhir.PutAsync($"Practitioner/{created.Id}", FhirHttp.Json(created));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Expression.Contains("Practitioner.identifier[1].value") && i.Diagnostics!.StartsWith("fs-rpps-key:"));
        var current = await (await _fhir.GetAsync($"Practitioner/{created.Id}")).ReadAs<Practitioner>();
        Assert.Equal("1", current.Meta!.VersionId);
        Assert.Equal("10001234565", current.Identifier[1].Value);
    }

    [Fact]
    public async Task Resource_claiming_no_profile_is_not_checked_against_ours()
    {
        // A wrong INS key, but nothing claims fr-core-patient-ins and nothing is mandatory for Patient by default.
        var patient = new Patient { Identifier = [new Identifier("urn:oid:1.2.250.1.213.1.4.8", "180027512345677")] };
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(patient));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Profiled_resource_with_a_reference_to_a_type_R4_does_not_allow_returns_422()
    {
        // R4: ServiceRequest.reasonReference is Reference(Condition | Observation | DiagnosticReport | DocumentReference);
        // ExitReferral says nothing about it, the base rule still holds.
        var referral = (ServiceRequest)ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", "valid", "ServiceRequest-exit-referral-csapa.json"));
        referral.ReasonReference = [new ResourceReference("MedicationRequest/example-exit-buprenorphine")];

        var response = await _fhir.PostAsync("ServiceRequest", FhirHttp.Json(referral));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var issue = Assert.Single((await response.ReadAs<OperationOutcome>()).Issue);
        Assert.Equal(["ServiceRequest.reasonReference[0].reference"], issue.Expression);
        Assert.StartsWith("ServiceRequest.reasonReference: R4 does not allow a reference to MedicationRequest here", issue.Diagnostics);
    }

    [Fact]
    public async Task Plain_R4_resource_with_a_reference_to_a_type_R4_does_not_allow_is_refused_with_422_on_every_write()
    {
        // R4: Appointment.participant.actor is Reference(Patient | Practitioner | PractitionerRole | RelatedPerson | Device
        // | HealthcareService | Location), never an Organization; nothing is claimed and nothing is mandatory for Appointment.
        static Appointment With(string actor) => new()
        {
            Status = Appointment.AppointmentStatus.Booked,
            Participant = [new Appointment.ParticipantComponent { Actor = new ResourceReference(actor), Status = ParticipationStatus.Accepted }],
        };
        static async Task AssertRefusedAsync(HttpResponseMessage response)
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            var issue = Assert.Single((await response.ReadAs<OperationOutcome>()).Issue);
            Assert.Equal(["Appointment.participant[0].actor.reference"], issue.Expression);
            Assert.Equal("Appointment.participant.actor: R4 does not allow a reference to Organization here (allowed: Patient, Practitioner, "
                + "PractitionerRole, RelatedPerson, Device, HealthcareService, Location) (profile http://hl7.org/fhir/StructureDefinition/Appointment)", issue.Diagnostics);
        }

        await AssertRefusedAsync(await _fhir.PostAsync("Appointment", FhirHttp.Json(With("Organization/csapa"))));

        var stored = await _fhir.CreateAsync(With("Location/csapa-room"));
        var moved = With("Organization/csapa");
        moved.Id = stored.Id;
        await AssertRefusedAsync(await _fhir.PutAsync($"Appointment/{stored.Id}", FhirHttp.Json(moved)));
        var patch = new HttpRequestMessage(HttpMethod.Patch, $"Appointment/{stored.Id}")
        {
            Content = new StringContent("""[{"op":"replace","path":"/participant/0/actor/reference","value":"Organization/csapa"}]""",
                System.Text.Encoding.UTF8, "application/json-patch+json"),
        };
        await AssertRefusedAsync(await _fhir.SendAsync(patch));
        Assert.Equal("1", (await (await _fhir.GetAsync($"Appointment/{stored.Id}")).ReadAs<Appointment>()).Meta!.VersionId);

        var transaction = new Bundle
        {
            Type = Bundle.BundleType.Transaction,
            Entry = [new Bundle.EntryComponent { FullUrl = "urn:uuid:" + Guid.NewGuid(), Resource = With("Organization/csapa"), Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Appointment" } }],
        };
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await _fhir.PostAsync("", FhirHttp.Json(transaction))).StatusCode);
    }

    [Fact]
    public async Task Resource_claiming_a_core_FHIR_profile_we_do_not_ship_is_accepted()
    {
        // As the official R4 example valueset-example.json does.
        var valueSet = new ValueSet { Url = "http://example.org/vs", Status = PublicationStatus.Draft, Meta = new Meta { Profile = ["http://hl7.org/fhir/StructureDefinition/shareablevalueset"] } };
        var response = await _fhir.PostAsync("ValueSet", FhirHttp.Json(valueSet));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Conditional_create_is_checked_too()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "Organization") { Content = FhirHttp.Json(Example("invalid", "Organization-wrong-finess-key")) };
        request.Headers.TryAddWithoutValidation("If-None-Exist", "identifier=https://finess.esante.gouv.fr|130781231");
        var response = await _fhir.SendAsync(request);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
    }
}

public sealed class SqliteProfileEnforcementTests(SqliteGateway gateway) : ProfileEnforcementTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresProfileEnforcementTests(PostgresGateway gateway) : ProfileEnforcementTests(gateway), IClassFixture<PostgresGateway>;

/// <summary>With FhirSortie:Profiles:Required:MedicationRequest set, every MedicationRequest must be an ExitPrescription.</summary>
public abstract class RequiredProfileTests(Gateway gateway)
{
    public const string ExitPrescription = "https://fhirsortie.fr/fhir/StructureDefinition/ExitPrescription";

    private readonly HttpClient _fhir = gateway.Fhir();

    [Fact]
    public async Task MedicationRequest_claiming_nothing_is_checked_against_the_mandatory_profile()
    {
        var request = new MedicationRequest
        {
            Status = MedicationRequest.MedicationrequestStatus.Active,
            Intent = MedicationRequest.MedicationRequestIntent.Order,
            Medication = new CodeableConcept("http://www.whocc.no/atc", "N07BC02"),
            Subject = new ResourceReference("Patient/p1"),
        };
        var response = await _fhir.PostAsync("MedicationRequest", FhirHttp.Json(request));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Expression.Contains("MedicationRequest.requester") && i.Diagnostics!.Contains(ExitPrescription));
    }

    [Fact]
    public async Task Conforming_MedicationRequest_without_claim_is_accepted()
    {
        var rx = (MedicationRequest)ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", "valid", "MedicationRequest-exit-buprenorphine.json"));
        rx.Meta = null;
        var response = await _fhir.PostAsync("MedicationRequest", FhirHttp.Json(rx));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Other_types_stay_unconstrained()
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(new Patient { Gender = AdministrativeGender.Other }));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }
}

public sealed class SqliteRequiredProfileGateway : Gateway
{
    public SqliteRequiredProfileGateway() => Settings["FhirSortie:Profiles:Required:MedicationRequest"] = RequiredProfileTests.ExitPrescription;

    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Sqlite",
        ["FhirSortie:DataDirectory"] = dataDirectory,
    };
}

public sealed class PostgresRequiredProfileGateway : Gateway
{
    public PostgresRequiredProfileGateway() => Settings["FhirSortie:Profiles:Required:MedicationRequest"] = RequiredProfileTests.ExitPrescription;

    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Postgres",
        ["FhirSortie:Storage:ConnectionString"] = TestPostgres.CreateDatabase(),
    };
}

public sealed class SqliteRequiredProfileTests(SqliteRequiredProfileGateway gateway) : RequiredProfileTests(gateway), IClassFixture<SqliteRequiredProfileGateway>;

public sealed class PostgresRequiredProfileTests(PostgresRequiredProfileGateway gateway) : RequiredProfileTests(gateway), IClassFixture<PostgresRequiredProfileGateway>;
