using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Justice;

/// <summary>
/// One person's record as the USMP and the CSAPA write it, with everything a justice or social actor must not read:
/// an Appointment carrying clinical details, a Patient with an extension and a GP, a Condition, a MedicationRequest,
/// a liaison letter, a CarePlan, and the attendance attestation the CSAPA issues (profile AttendanceAttestation).
/// </summary>
public sealed record JusticeRecord(string Run, string Ins, string PatientId, string AppointmentId, string LocationId, string CsapaId, string PractitionerId,
    string ConditionId, string MedicationId, string LetterId, string CarePlanId, string AttestationId)
{
    public const string CsapaFiness = "750000028";
    public const string SpipFiness = "750000069";
    public const string SocialFiness = "750000093";
    public const string CsapaName = "CSAPA Les Tilleuls (test)";

    public static HttpClient Spip(Gateway gateway, string client) =>
        gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Justice, SpipFiness, "system/*.rs"));

    public static HttpClient Social(Gateway gateway, string client) =>
        gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Social, SocialFiness, "system/*.rs"));

    public static HttpClient CsapaClient(Gateway gateway, string client = "csapa-justice") =>
        gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Csapa, CsapaFiness, "system/*.cruds"));

    public static HttpClient Auditor(Gateway gateway, string client = "dpo-justice") =>
        gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Auditor, null, "system/AuditEvent.rs system/Patient.rs"));

    public static async Task<JusticeRecord> CreateAsync(Gateway gateway)
    {
        var usmp = gateway.Fhir();
        var csapa = CsapaClient(gateway);
        var run = Domain.NewRun();
        var ins = "1800299" + Random.Shared.NextInt64(10_000_000, 99_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var organisation = await usmp.CreateAsync(new Organization { Identifier = [new Identifier(Domain.Finess, CsapaFiness)], Name = CsapaName });
        var location = await usmp.CreateAsync(new Location { Name = "CSAPA Les Tilleuls, 12 rue des Lilas" });
        var practitioner = await usmp.CreateAsync(new Practitioner { Name = [new HumanName { Family = "Addictologue", Prefix = ["Dr"] }] });
        var patientResource = Domain.Patient(run, ins, "Suivi");
        patientResource.Extension.Add(new Extension("https://fhirsortie.fr/fhir/StructureDefinition/test-clinical-fact", new FhirString("handicap psychique")));
        patientResource.GeneralPractitioner = [new ResourceReference("Practitioner/" + practitioner.Id)];
        patientResource.Gender = AdministrativeGender.Male;
        var patient = (await usmp.CreateAsync(patientResource)).Id!;
        var subject = new ResourceReference("Patient/" + patient);
        var condition = (await usmp.CreateAsync(new Condition { Code = new CodeableConcept { Text = "trouble lié aux opiacés" }, Subject = subject })).Id!;
        var medication = (await usmp.CreateAsync(new MedicationRequest
        {
            Status = MedicationRequest.MedicationrequestStatus.Active, Intent = MedicationRequest.MedicationRequestIntent.Order,
            Medication = new CodeableConcept { Text = "méthadone" }, Subject = subject,
        })).Id!;
        var letter = (await usmp.CreateAsync(new DocumentReference
        {
            Status = DocumentReferenceStatus.Current, Type = new CodeableConcept(Domain.Loinc, "34133-9"), Subject = subject,
            Content = [new DocumentReference.ContentComponent { Attachment = new Attachment { ContentType = "text/plain", Url = "urn:uuid:" + Guid.NewGuid() } }],
        })).Id!;
        var carePlan = (await usmp.CreateAsync(new CarePlan { Status = RequestStatus.Active, Intent = CarePlan.CarePlanIntent.Plan, Subject = subject })).Id!;
        var appointment = (await usmp.CreateAsync(ClinicalAppointment(patient, location.Id!, organisation.Id!, practitioner.Id!, condition))).Id!;
        var attestation = (await csapa.CreateAsync(NewAttestation(patient, appointment, organisation.Id!))).Id!;
        return new JusticeRecord(run, ins, patient, appointment, location.Id!, organisation.Id!, practitioner.Id!, condition, medication, letter, carePlan, attestation);
    }

    /// <summary>An Appointment as a care organisation writes it: every element a justice actor must not read is set.</summary>
    public static Appointment ClinicalAppointment(string patient, string location, string organisation, string practitioner, string condition) => new()
    {
        Status = Appointment.AppointmentStatus.Booked,
        Start = new DateTimeOffset(2026, 11, 28, 14, 0, 0, TimeSpan.FromHours(1)),
        End = new DateTimeOffset(2026, 11, 28, 14, 45, 0, TimeSpan.FromHours(1)),
        Description = "Consultation addictologie : ajustement méthadone",
        Comment = "Patient ayant rechuté en détention",
        PatientInstruction = "Venir à jeun pour le bilan hépatique",
        ReasonCode = [new CodeableConcept { Text = "dépendance aux opiacés" }],
        ReasonReference = [new ResourceReference("Condition/" + condition)],
        ServiceType = [new CodeableConcept { Text = "addictologie" }],
        Specialty = [new CodeableConcept { Text = "psychiatrie" }],
        AppointmentType = new CodeableConcept { Text = "suivi TSO" },
        SupportingInformation = [new ResourceReference("Condition/" + condition)],
        BasedOn = [new ResourceReference("ServiceRequest/unknown-referral")],
        Participant =
        [
            new Appointment.ParticipantComponent { Actor = new ResourceReference("Patient/" + patient), Status = ParticipationStatus.Accepted },
            new Appointment.ParticipantComponent { Actor = new ResourceReference("Location/" + location), Status = ParticipationStatus.Accepted },
            // The care organisation's service: R4 allows no Organization as a participant's actor (every write checks it).
            new Appointment.ParticipantComponent { Actor = new ResourceReference("HealthcareService/" + organisation), Status = ParticipationStatus.Accepted },
            new Appointment.ParticipantComponent
            {
                Actor = new ResourceReference("Practitioner/" + practitioner) { Display = "Dr Addictologue" }, Status = ParticipationStatus.Accepted,
                Type = [new CodeableConcept { Text = "addictologue" }],
            },
        ],
    };

    /// <summary>An attendance attestation as the CSAPA issues it (profile AttendanceAttestation).</summary>
    public static DocumentReference NewAttestation(string patient, string appointment, string organisation) => new()
    {
        Meta = new Meta { Profile = ["https://fhirsortie.fr/fhir/StructureDefinition/AttendanceAttestation"] },
        Status = DocumentReferenceStatus.Current,
        Type = new CodeableConcept(AccessRules.DocumentTypes, AccessRules.AttendanceAttestationCode),
        Category = [new CodeableConcept(AccessRules.DocumentCategories, AccessRules.AttendanceAttestationCategory)],
        Subject = new ResourceReference("Patient/" + patient),
        Date = new DateTimeOffset(2026, 11, 28, 15, 0, 0, TimeSpan.FromHours(1)),
        Author = [new ResourceReference("Organization/" + organisation)],
        Content = [new DocumentReference.ContentComponent { Attachment = new Attachment { ContentType = "text/plain", Title = "Attestation de présence", Url = "urn:uuid:" + Guid.NewGuid() } }],
        Context = new DocumentReference.ContextComponent { Related = [new ResourceReference("Appointment/" + appointment)] },
    };

    /// <summary>What a justice or social actor may read of an Appointment, and the REDACTED flag.</summary>
    public void AssertRedacted(Appointment appointment)
    {
        Assert.Equal(AppointmentId, appointment.Id);
        Assert.Equal(Appointment.AppointmentStatus.Booked, appointment.Status);
        Assert.NotNull(appointment.Start);
        Assert.NotNull(appointment.End);
        Assert.Equal(new[] { "Patient/" + PatientId, "Location/" + LocationId, "HealthcareService/" + CsapaId }.Order(),
            appointment.Participant.Select(p => p.Actor?.Reference).Order());
        Assert.All(appointment.Participant, p => Assert.Empty(p.Type));
        Assert.Null(appointment.Description);
        Assert.Null(appointment.Comment);
        Assert.Null(appointment.PatientInstruction);
        Assert.Empty(appointment.ReasonCode);
        Assert.Empty(appointment.ReasonReference);
        Assert.Empty(appointment.ServiceType);
        Assert.Empty(appointment.Specialty);
        Assert.Null(appointment.AppointmentType);
        Assert.Empty(appointment.SupportingInformation);
        Assert.Empty(appointment.BasedOn);
        Assert.Contains(appointment.Meta?.Security ?? [], c => c.System == Redaction.ObservationValue && c.Code == Redaction.RedactedCode);
    }

    public void AssertRedacted(Patient patient)
    {
        Assert.Equal(PatientId, patient.Id);
        Assert.Equal(Ins, Assert.Single(patient.Identifier).Value);
        Assert.Equal("Suivi", Assert.Single(patient.Name).Family);
        Assert.Equal("1980-02-14", patient.BirthDate);
        Assert.Equal(AdministrativeGender.Male, patient.Gender);
        Assert.Empty(patient.Extension);
        Assert.Empty(patient.GeneralPractitioner);
        Assert.Contains(patient.Meta?.Security ?? [], c => c.System == Redaction.ObservationValue && c.Code == Redaction.RedactedCode);
    }
}
