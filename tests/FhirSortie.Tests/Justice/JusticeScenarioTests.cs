using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Consents;
using FhirSortie.Tests.Consents;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Justice;

/// <summary>
/// domain.md scenario 2 ("a counsellor asks for clinical data") and the attendance attestation of issue 6 §4: the SPIP
/// reads the appointment (redacted) and the attestation, never the Condition, MedicationRequest, letter or CarePlan, even
/// with a Consent naming it; every refusal is audited. Social actors need the person's consent even for those.
/// </summary>
public abstract class JusticeScenarioTests(Gateway gateway)
{
    [Fact]
    public async Task Scenario_2_a_counsellor_asking_for_clinical_data_is_refused_and_audited()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var client = "spip-scenario2-" + record.Run;
        var spip = JusticeRecord.Spip(gateway, client);
        var usmp = gateway.Fhir();
        // Even a Consent naming the SPIP for clinical classes widens nothing.
        await usmp.CreateAsync(TestConsents.Permit(record.PatientId, JusticeRecord.SpipFiness,
            "Condition", "MedicationRequest", "DocumentReference", "CarePlan", "Appointment", "Patient"));

        Assert.Equal(HttpStatusCode.Forbidden, (await spip.GetAsync($"Condition/{record.ConditionId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await spip.GetAsync($"MedicationRequest/{record.MedicationId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await spip.GetAsync($"CarePlan/{record.CarePlanId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await spip.GetAsync($"DocumentReference/{record.LetterId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await spip.GetAsync($"Condition?subject=Patient/{record.PatientId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await spip.GetAsync($"MedicationRequest?subject=Patient/{record.PatientId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await spip.GetAsync($"Patient/{record.PatientId}/Condition")).StatusCode);

        // What it may read: the appointment's date, place and status, and the attestation.
        record.AssertRedacted(await (await spip.GetAsync($"Appointment/{record.AppointmentId}")).ReadAs<Appointment>());
        var attestation = await (await spip.GetAsync($"DocumentReference/{record.AttestationId}")).ReadAs<DocumentReference>();
        Assert.Equal($"Appointment/{record.AppointmentId}", Assert.Single(attestation.Context?.Related ?? []).Reference);
        Assert.Equal([record.AttestationId], (await spip.SearchAsync($"DocumentReference?subject=Patient/{record.PatientId}")).Matches());
        var everything = await spip.SearchAsync($"Patient/{record.PatientId}/$everything");
        Assert.Equal(new[] { record.PatientId, record.AppointmentId, record.AttestationId }.Order(), everything.Matches().Order());

        var refused = (await JusticeRecord.Auditor(gateway).SearchAsync("AuditEvent?outcome=4&_sort=-date&_count=500")).Entry
            .Select(e => Assert.IsType<AuditEvent>(e.Resource))
            .Where(a => a.Agent.Any(g => g.Who?.Identifier?.Value == client)).ToList();
        Assert.Equal(7, refused.Count);
        foreach (var target in new[] { $"Condition/{record.ConditionId}", $"MedicationRequest/{record.MedicationId}", $"CarePlan/{record.CarePlanId}", $"DocumentReference/{record.LetterId}" })
            Assert.Contains(refused, a => a.Entity.Any(e => e.What?.Reference == target));
        // The hidden letter's refusal names the patient ("who tried to see my data").
        Assert.Contains(refused, a => a.Entity.Any(e => e.What?.Reference == $"Patient/{record.PatientId}"));
    }

    [Fact]
    public async Task An_attestation_is_recognised_by_its_category_only()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var csapa = JusticeRecord.CsapaClient(gateway);
        // Typed as an attestation but without the category: a document like any other, hidden from justice.
        var typedOnly = JusticeRecord.NewAttestation(record.PatientId, record.AppointmentId, record.CsapaId);
        typedOnly.Meta = null;
        typedOnly.Category = [];
        var hidden = (await csapa.CreateAsync(typedOnly)).Id!;
        var spip = JusticeRecord.Spip(gateway, "spip-category");
        Assert.Equal(HttpStatusCode.NotFound, (await spip.GetAsync($"DocumentReference/{hidden}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await spip.GetAsync($"DocumentReference/{record.AttestationId}")).StatusCode);
        Assert.DoesNotContain(hidden, (await spip.SearchAsync($"DocumentReference?subject=Patient/{record.PatientId}")).Matches());

        // A sensitivity label hides even an attestation (and the profile refuses one).
        var labelled = JusticeRecord.NewAttestation(record.PatientId, record.AppointmentId, record.CsapaId);
        labelled.Meta = new Meta { Security = [new Coding(SecurityLabels.ActCode, "PSY")] };
        var psy = (await csapa.CreateAsync(labelled)).Id!;
        Assert.Equal(HttpStatusCode.NotFound, (await spip.GetAsync($"DocumentReference/{psy}")).StatusCode);
        labelled.Meta.Profile = ["https://fhirsortie.fr/fhir/StructureDefinition/AttendanceAttestation"];
        var refused = await csapa.PostAsync("DocumentReference", FhirHttp.Json(labelled));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        Assert.Contains("fs-att-1", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_profile_requires_the_appointment_and_the_care_organisation()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var csapa = JusticeRecord.CsapaClient(gateway);
        var withoutAppointment = JusticeRecord.NewAttestation(record.PatientId, record.AppointmentId, record.CsapaId);
        withoutAppointment.Context = null;
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await csapa.PostAsync("DocumentReference", FhirHttp.Json(withoutAppointment))).StatusCode);
        var byPractitioner = JusticeRecord.NewAttestation(record.PatientId, record.AppointmentId, record.CsapaId);
        byPractitioner.Author = [new ResourceReference("Practitioner/" + record.PractitionerId)];
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await csapa.PostAsync("DocumentReference", FhirHttp.Json(byPractitioner))).StatusCode);
    }

    [Fact]
    public async Task A_social_actor_needs_the_persons_consent_and_never_gets_clinical_content()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var social = JusticeRecord.Social(gateway, "social-scenario");
        Assert.Equal(HttpStatusCode.NotFound, (await social.GetAsync($"DocumentReference/{record.AttestationId}")).StatusCode);
        Assert.Empty((await social.SearchAsync($"DocumentReference?subject=Patient/{record.PatientId}")).Entry);

        await gateway.Fhir().CreateAsync(TestConsents.Permit(record.PatientId, JusticeRecord.SocialFiness,
            "DocumentReference", "Appointment", "Condition", "MedicationRequest", "CarePlan"));
        Assert.Equal(HttpStatusCode.OK, (await social.GetAsync($"DocumentReference/{record.AttestationId}")).StatusCode);
        Assert.Equal([record.AttestationId], (await social.SearchAsync($"DocumentReference?subject=Patient/{record.PatientId}")).Matches());
        Assert.Equal(HttpStatusCode.NotFound, (await social.GetAsync($"DocumentReference/{record.LetterId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await social.GetAsync($"Condition/{record.ConditionId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await social.GetAsync($"MedicationRequest/{record.MedicationId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await social.GetAsync($"CarePlan/{record.CarePlanId}")).StatusCode);
    }
}

public sealed class SqliteJusticeScenarioTests(SqliteGateway gateway) : JusticeScenarioTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresJusticeScenarioTests(PostgresGateway gateway) : JusticeScenarioTests(gateway), IClassFixture<PostgresGateway>;
