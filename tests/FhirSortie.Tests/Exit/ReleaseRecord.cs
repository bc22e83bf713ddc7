using System.Globalization;
using FhirSortie.Server.Exit;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Consents;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Exit;

/// <summary>
/// A person in detention as the USMP (the default test caller, FINESS 750000010) records them for the release-date tests:
/// the USMP, SPIP and CSAPA Organizations, the DetentionStay (in progress, planned release in <c>releaseInDays</c>,
/// estimated, the SPIP named in justice-follow-up) and a Consent letting the CSAPA see the stay, its alerts (Flag),
/// appointments and hand-off Tasks. Each record has its own patient, so tests share one gateway.
/// </summary>
public sealed record ReleaseRecord(string Run, string PatientId, string StayId, string CsapaOrganizationId, DateTimeOffset PlannedRelease)
{
    public const string UsmpFiness = "750000010";
    public const string SpipFiness = "750000069";
    public const string OtherSpipFiness = "930000013";
    public const string CsapaFiness = "750000028";

    public static HttpClient Spip(Gateway gateway, string client, string finess = SpipFiness) =>
        gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Justice, finess, "system/*.rs system/Encounter.u"));

    public static HttpClient Csapa(Gateway gateway, string client = "csapa-release") =>
        gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Csapa, CsapaFiness, "system/*.rs system/Task.u system/Subscription.cruds"));

    public static HttpClient Usmp(Gateway gateway, string client = "usmp-release") =>
        gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Usmp, UsmpFiness, "system/*.cruds"));

    public static HttpClient Auditor(Gateway gateway) =>
        gateway.Fhir(TestAuthenticationHandler.Describe("dpo-release", ActorKind.Auditor, null, "system/AuditEvent.rs system/Patient.rs"));

    public static async Task<ReleaseRecord> CreateAsync(Gateway gateway, int releaseInDays, string followedBy = SpipFiness)
    {
        var usmp = Usmp(gateway);
        var run = Domain.NewRun();
        var ins = "1800299" + Random.Shared.NextInt64(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);
        var hospital = await usmp.CreateAsync(new Organization { Identifier = [new Identifier(Domain.Finess, UsmpFiness)], Name = "USMP (test)" });
        var spip = await usmp.CreateAsync(new Organization { Identifier = [new Identifier(Domain.Finess, followedBy)], Name = "SPIP (test)" });
        var csapa = await usmp.CreateAsync(new Organization { Identifier = [new Identifier(Domain.Finess, CsapaFiness)], Name = "CSAPA (test)" });
        var patient = (await usmp.CreateAsync(Domain.Patient(run, ins, "Sortant"))).Id!;
        await usmp.CreateAsync(TestConsents.Permit(patient, CsapaFiness, "Encounter", "Flag", "Appointment", "Task", "MedicationRequest"));
        var release = Day(releaseInDays);
        var stay = await usmp.CreateAsync(Stay(run, patient, hospital.Id!, spip.Id!, release));
        return new ReleaseRecord(run, patient, stay.Id!, csapa.Id!, release);
    }

    /// <summary>Noon UTC <paramref name="days"/> from now, at second precision.</summary>
    public static DateTimeOffset Day(double days) => new DateTimeOffset(DateTime.UtcNow.Date, TimeSpan.Zero).AddHours(12).AddDays(days);

    public static string Text(DateTimeOffset instant) => instant.ToString("yyyy-MM-ddTHH:mm:ssK", CultureInfo.InvariantCulture).Replace("+00:00", "Z", StringComparison.Ordinal);

    public static Encounter Stay(string run, string patient, string hospital, string spip, DateTimeOffset release) => new()
    {
        Meta = new Meta
        {
            Profile = [ReleaseDates.Profile],
            Tag = [new Coding("https://fhirsortie.fr/fhir/CodeSystem/exit-package-status", "complete")],
        },
        Extension =
        [
            new Extension(ReleaseDates.CertaintyUrl, new Code(ReleaseDates.Estimated)),
            new Extension(ReleaseDates.FollowUpUrl, new ResourceReference("Organization/" + spip)),
        ],
        Identifier = [new Identifier("https://fhirsortie.example.fr/usmp-test/encounter", "SEJ-" + run)],
        Status = Encounter.EncounterStatus.InProgress,
        Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
        Type = [new CodeableConcept(ReleaseDates.EncounterTypes, ReleaseDates.DetentionStayCode) { Text = "Suivi sanitaire pendant la détention" }],
        Subject = new ResourceReference("Patient/" + patient),
        Participant = [new Encounter.ParticipantComponent { Individual = new ResourceReference { Display = "Dr Médecin USMP" } }],
        ReasonCode = [new CodeableConcept { Text = "TSO buprénorphine (texte clinique)" }],
        Period = new Period { Start = "2026-03-02T08:00:00+01:00", End = Text(release) },
        Hospitalization = new Encounter.HospitalizationComponent
        {
            DischargeDisposition = new CodeableConcept(ReleaseDates.ExitKinds, "fin-de-peine"),
            SpecialArrangement = [new CodeableConcept { Text = "fauteuil roulant" }],
        },
        Location = [new Encounter.LocationComponent { Location = new ResourceReference { Display = "Centre pénitentiaire (test)" } }],
        ServiceProvider = new ResourceReference("Organization/" + hospital),
    };

    public static Parameters SetDate(DateTimeOffset date, string certainty, DateTimeOffset? earliest = null, DateTimeOffset? latest = null, string? exitKind = null)
    {
        var parameters = new Parameters();
        parameters.Add("releaseDate", new FhirDateTime(Text(date)));
        parameters.Add("certainty", new Code(certainty));
        if (earliest is { } e) parameters.Add("earliest", new FhirDateTime(Text(e)));
        if (latest is { } l) parameters.Add("latest", new FhirDateTime(Text(l)));
        if (exitKind is not null) parameters.Add("exitKind", new Code(exitKind));
        return parameters;
    }

    public Appointment Appointment(DateTimeOffset start) => new()
    {
        Status = Hl7.Fhir.Model.Appointment.AppointmentStatus.Booked,
        Start = start,
        End = start.AddMinutes(45),
        Participant =
        [
            new Appointment.ParticipantComponent { Actor = new ResourceReference("Patient/" + PatientId), Status = ParticipationStatus.Accepted },
            // The CSAPA's place (R4 allows no Organization as a participant's actor).
            new Appointment.ParticipantComponent { Actor = new ResourceReference("Location/csapa-" + Run), Status = ParticipationStatus.Accepted },
        ],
    };

    public Hl7.Fhir.Model.Task Handoff() => new()
    {
        Status = Hl7.Fhir.Model.Task.TaskStatus.Requested,
        Intent = Hl7.Fhir.Model.Task.TaskIntent.Order,
        Code = new CodeableConcept("https://fhirsortie.fr/fhir/CodeSystem/exit-task-type", "handoff"),
        For = new ResourceReference("Patient/" + PatientId),
        Owner = new ResourceReference("Organization/" + CsapaOrganizationId),
    };

    /// <summary>An active prescription whose bridging supply of <paramref name="days"/> days was handed over at <paramref name="handedOver"/>.</summary>
    public MedicationRequest BridgingSupply(int days, DateTimeOffset handedOver)
    {
        var supply = new Extension { Url = ReleaseAlerts.BridgingSupplyUrl };
        supply.Extension.Add(new Extension("daysSupply", new Duration { Value = days, Unit = "days", System = "http://unitsofmeasure.org", Code = "d" }));
        supply.Extension.Add(new Extension("handedOver", new FhirDateTime(Text(handedOver))));
        return new MedicationRequest
        {
            Extension = [supply],
            Status = MedicationRequest.MedicationrequestStatus.Active,
            Intent = MedicationRequest.MedicationRequestIntent.Order,
            Medication = new CodeableConcept("http://www.whocc.no/atc", "J04AM02") { Text = "rifampicine + isoniazide" },
            Subject = new ResourceReference("Patient/" + PatientId),
        };
    }

    /// <summary>The alert Flag of this stay and kind, or null when none was ever raised.</summary>
    public async Task<Flag?> AlertAsync(HttpClient client, string kind)
    {
        var response = await client.GetAsync($"Flag/{ReleaseAlerts.FlagId(StayId, kind)}");
        return response.StatusCode == System.Net.HttpStatusCode.NotFound ? null : await response.ReadAs<Flag>();
    }
}
