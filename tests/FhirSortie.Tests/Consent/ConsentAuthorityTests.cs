#nullable disable warnings
using System.Net;
using System.Text;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// Who may record a Consent (issue 21 §1): a write that widens access to a patient's record comes from the care team,
/// the référent holding an open collect-consent Task, or the person; anyone else gets 403, audited with the reason,
/// on create, update, patch, conditional writes, deletes and bundle entries.
/// </summary>
public abstract class ConsentAuthorityTests(Gateway gateway)
{
    private const string UsmpFiness = "750000010";
    private const string CsapaFiness = "750000028";
    private const string ReferentFiness = "750000044";
    private readonly HttpClient _usmp = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-authority", ActorKind.Auditor, null, "system/AuditEvent.rs"));

    private HttpClient Csapa() => gateway.Fhir(TestAuthenticationHandler.Describe("csapa-authority", ActorKind.Csapa, CsapaFiness, "system/*.cruds"));

    private HttpClient Referent() => gateway.Fhir(TestAuthenticationHandler.Describe("referent-authority", ActorKind.Csapa, ReferentFiness, "system/*.cruds"));

    private HttpClient Person(string patient) =>
        gateway.Fhir(TestAuthenticationHandler.Describe("person-authority", ActorKind.Care, null, "patient/*.cruds", patient) + ";fhirUser=Patient/" + patient);

    /// <summary>A patient managed by the USMP (its care team), with a buprenorphine prescription (labelled ETH on write).</summary>
    private async Task<(string Patient, string Prescription)> PatientWithPrescriptionAsync()
    {
        foreach (var (id, finess) in new[] { ("authority-usmp", UsmpFiness), ("authority-referent", ReferentFiness) })
        {
            var organisation = new Organization { Id = id, Name = id, Identifier = [new Identifier(Domain.Finess, finess)] };
            Assert.True((await _usmp.PutAsync($"Organization/{id}", FhirHttp.Json(organisation))).IsSuccessStatusCode);
        }
        var run = NewRun();
        var patient = Patient(run, "180029900000004", "Autorite");
        patient.ManagingOrganization = new ResourceReference("Organization/authority-usmp");
        var patientId = (await _usmp.CreateAsync(patient)).Id;
        var prescription = await _usmp.CreateAsync(Buprenorphine(run, patientId));
        return (patientId, prescription.Id);
    }

    /// <summary>A Consent naming <paramref name="finess"/> for prescriptions, its permit also naming ETH (so it opens them under any reading of labels).</summary>
    private static Hl7.Fhir.Model.Consent NamingPrescriptions(string patient, string finess)
    {
        var consent = TestConsents.Permit(patient, finess, "MedicationRequest");
        consent.Provision.Provision[0].SecurityLabel = [new Coding(SecurityLabels.ActCode, "ETH")];
        return consent;
    }

    /// <summary>The USMP asks <paramref name="owner"/> to collect the person's consent (an open collect-consent Task).</summary>
    private Task<Hl7.Fhir.Model.Task> CollectConsentTaskAsync(string patient, string owner) => _usmp.CreateAsync(new Hl7.Fhir.Model.Task
    {
        Status = Hl7.Fhir.Model.Task.TaskStatus.Requested,
        Intent = Hl7.Fhir.Model.Task.TaskIntent.Order,
        Code = new CodeableConcept("https://fhirsortie.fr/fhir/CodeSystem/exit-task-type", "collect-consent"),
        For = new ResourceReference("Patient/" + patient),
        Requester = new ResourceReference("Organization/authority-usmp"),
        Owner = new ResourceReference(owner),
    });

    private static async Task<int> PrescriptionsSeen(HttpClient client, string patient) =>
        (await client.SearchAsync($"MedicationRequest?patient={patient}")).Matches().Count;

    private async Task<List<AuditEvent>> RefusalsOf(string patient, string client) =>
        (await _auditor.SearchAsync($"AuditEvent?patient={patient}&_count=200")).Entry.Select(e => (AuditEvent)e.Resource)
            .Where(a => a.Agent.Any(g => g.Who.Identifier?.Value == client) && a.Outcome == AuditEvent.AuditEventOutcome.N4).ToList();

    [Fact]
    public async Task A_care_organisation_cannot_record_a_consent_naming_itself_and_still_reads_nothing()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        var csapa = Csapa();
        Assert.Equal(0, await PrescriptionsSeen(csapa, patient));

        var posted = await csapa.PostAsync("Consent", FhirHttp.Json(NamingPrescriptions(patient, CsapaFiness)));
        Assert.Equal(HttpStatusCode.Forbidden, posted.StatusCode);
        Assert.Contains("care team", (await posted.ReadAs<OperationOutcome>()).Issue[0].Diagnostics, StringComparison.Ordinal);

        var byId = NamingPrescriptions(patient, CsapaFiness);
        byId.Id = "self-" + NewRun();
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.PutAsync($"Consent/{byId.Id}", FhirHttp.Json(byId))).StatusCode);
        var conditional = new HttpRequestMessage(HttpMethod.Post, "Consent") { Content = FhirHttp.Json(NamingPrescriptions(patient, CsapaFiness)) };
        conditional.Headers.TryAddWithoutValidation("If-None-Exist", "_id=none-" + NewRun());
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.SendAsync(conditional)).StatusCode);

        Assert.Equal(0, await PrescriptionsSeen(csapa, patient));
        var refusals = await RefusalsOf(patient, "csapa-authority");
        Assert.True(refusals.Count(a => a.Subtype.Single().Code is "create" or "update") >= 3, $"{refusals.Count} refusals audited");
        Assert.All(refusals, a => Assert.Contains("denied: Only the patient's care team", a.OutcomeDesc, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Bundle_entries_that_widen_the_writers_access_are_refused()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        var csapa = Csapa();
        var entry = new Bundle.EntryComponent
        {
            FullUrl = "urn:uuid:" + Guid.NewGuid(),
            Resource = NamingPrescriptions(patient, CsapaFiness),
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Consent" },
        };
        var transaction = new Bundle { Type = Bundle.BundleType.Transaction, Entry = [entry] };
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.PostAsync("", FhirHttp.Json(transaction))).StatusCode);
        var batch = new Bundle { Type = Bundle.BundleType.Batch, Entry = [entry] };
        var answer = await (await csapa.PostAsync("", FhirHttp.Json(batch))).ReadAs<Bundle>();
        Assert.StartsWith("403", answer.Entry[0].Response.Status, StringComparison.Ordinal);
        Assert.Equal(0, await PrescriptionsSeen(csapa, patient));
    }

    [Fact]
    public async Task A_proposed_consent_grants_nothing_and_turning_it_active_by_update_or_patch_is_refused()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        var csapa = Csapa();
        // Recording what the person is asked to agree to widens nothing: the scopes decide.
        var proposed = NamingPrescriptions(patient, CsapaFiness);
        proposed.Status = Hl7.Fhir.Model.Consent.ConsentState.Proposed;
        var created = await csapa.CreateAsync(proposed);

        var patch = new HttpRequestMessage(HttpMethod.Patch, $"Consent/{created.Id}")
        {
            Content = new StringContent("""[{"op":"replace","path":"/status","value":"active"}]""", Encoding.UTF8, "application/json-patch+json"),
        };
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.SendAsync(patch)).StatusCode);
        created.Status = Hl7.Fhir.Model.Consent.ConsentState.Active;
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.PutAsync($"Consent/{created.Id}", FhirHttp.Json(created))).StatusCode);
        Assert.Equal(0, await PrescriptionsSeen(csapa, patient));

        // The care team confirms it: now it opens the prescriptions.
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"Consent/{created.Id}", FhirHttp.Json(created))).StatusCode);
        Assert.Equal(1, await PrescriptionsSeen(csapa, patient));
    }

    [Fact]
    public async Task The_referent_holding_an_open_collect_consent_task_and_the_person_may_record_it_and_withdraw()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        var referent = Referent();
        Assert.Equal(HttpStatusCode.Forbidden, (await referent.PostAsync("Consent", FhirHttp.Json(NamingPrescriptions(patient, ReferentFiness)))).StatusCode);

        var task = await CollectConsentTaskAsync(patient, "Organization/authority-referent");
        var recorded = await referent.CreateAsync(NamingPrescriptions(patient, ReferentFiness));
        Assert.Equal(1, await PrescriptionsSeen(referent, patient));

        // Once the task is done, the référent records no further consent.
        task.Status = Hl7.Fhir.Model.Task.TaskStatus.Completed;
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"Task/{task.Id}", FhirHttp.Json(task))).StatusCode);
        var again = NamingPrescriptions(patient, ReferentFiness);
        again.Provision.Provision[0].Class.Add(new Coding(ConsentGrants.ResourceTypes, "CarePlan"));
        Assert.Equal(HttpStatusCode.Forbidden, (await referent.PostAsync("Consent", FhirHttp.Json(again))).StatusCode);

        // The person withdraws it (and may record one), and the next read is refused.
        var person = Person(patient);
        recorded.Status = Hl7.Fhir.Model.Consent.ConsentState.Inactive;
        var withdrawn = await person.PutAsync($"Consent/{recorded.Id}", FhirHttp.Json(recorded));
        Assert.True(withdrawn.StatusCode == HttpStatusCode.OK, await withdrawn.Content.ReadAsStringAsync());
        Assert.Equal(0, await PrescriptionsSeen(referent, patient));
        Assert.Equal(HttpStatusCode.Created, (await person.PostAsync("Consent", FhirHttp.Json(NamingPrescriptions(patient, ReferentFiness)))).StatusCode);
        Assert.Equal(1, await PrescriptionsSeen(referent, patient));
    }

    [Fact]
    public async Task A_collect_consent_task_the_organisation_wrote_for_itself_does_not_entitle_it_to_record_a_consent()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        var referent = Referent();
        // The référent's client may create Tasks: it assigns itself the collect-consent task the care team never asked for.
        var self = await referent.PostAsync("Task", FhirHttp.Json(new Hl7.Fhir.Model.Task
        {
            Status = Hl7.Fhir.Model.Task.TaskStatus.Requested,
            Intent = Hl7.Fhir.Model.Task.TaskIntent.Order,
            Code = new CodeableConcept("https://fhirsortie.fr/fhir/CodeSystem/exit-task-type", "collect-consent"),
            For = new ResourceReference("Patient/" + patient),
            Requester = new ResourceReference("Organization/authority-usmp"),
            Owner = new ResourceReference("Organization/authority-referent"),
        }));
        Assert.Equal(HttpStatusCode.Created, self.StatusCode);

        var refused = await referent.PostAsync("Consent", FhirHttp.Json(NamingPrescriptions(patient, ReferentFiness)));
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal(0, await PrescriptionsSeen(referent, patient));
        Assert.NotEmpty(await RefusalsOf(patient, "referent-authority"));
    }

    [Fact]
    public async Task Withdrawing_an_objection_is_for_the_care_team_or_the_person_and_a_withdrawal_by_the_team_is_accepted()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        var csapa = Csapa();
        // The CSAPA records the person's objection to the USMP team (narrowing: accepted), then may not delete or withdraw it.
        var objection = TestConsents.Permit(patient, UsmpFiness, "MedicationRequest");
        objection.Provision.Provision[0].Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny;
        var recorded = await csapa.CreateAsync(objection);
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.DeleteAsync($"Consent/{recorded.Id}")).StatusCode);
        recorded.Status = Hl7.Fhir.Model.Consent.ConsentState.Inactive;
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.PutAsync($"Consent/{recorded.Id}", FhirHttp.Json(recorded))).StatusCode);
        Assert.Equal(2, (await RefusalsOf(patient, "csapa-authority")).Count);
        // The care team (the person's word, recorded by it) withdraws the objection.
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"Consent/{recorded.Id}", FhirHttp.Json(recorded))).StatusCode);
    }

    [Fact]
    public async Task Withdrawing_a_consent_whose_masks_hide_only_its_own_permits_is_a_narrowing_otherwise_it_widens()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        var collector = new Organization { Id = "authority-csapa", Name = "authority-csapa", Identifier = [new Identifier(Domain.Finess, CsapaFiness)] };
        Assert.True((await _usmp.PutAsync("Organization/authority-csapa", FhirHttp.Json(collector))).IsSuccessStatusCode);
        var task = await CollectConsentTaskAsync(patient, "Organization/authority-csapa");
        // The CSAPA collects a consent naming the référent organisation for prescriptions, addictions (ETH) masked.
        var csapa = Csapa();
        var masked = TestConsents.Permit(patient, ReferentFiness, "MedicationRequest");
        masked.Provision.Provision[0].Provision.Add(new Hl7.Fhir.Model.Consent.provisionComponent
        {
            Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny,
            SecurityLabel = [new Coding(SecurityLabels.ActCode, "ETH")],
        });
        var recorded = await csapa.CreateAsync(masked);
        // The care team shares prescriptions with the same organisation, unmasked: the CSAPA's mask still hides the ETH one.
        var unmasked = await _usmp.CreateAsync(TestConsents.Permit(patient, ReferentFiness, "MedicationRequest"));
        task.Status = Hl7.Fhir.Model.Task.TaskStatus.Completed;
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"Task/{task.Id}", FhirHttp.Json(task))).StatusCode);
        Assert.Equal(0, await PrescriptionsSeen(Referent(), patient));

        // Withdrawing the CSAPA's consent would lift the mask on the care team's permit: a widening, refused.
        recorded.Status = Hl7.Fhir.Model.Consent.ConsentState.Inactive;
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.PutAsync($"Consent/{recorded.Id}", FhirHttp.Json(recorded))).StatusCode);
        Assert.Equal(0, await PrescriptionsSeen(Referent(), patient));

        // Once the care team's permit is gone, the mask hides only the CSAPA consent's own permits: withdrawing it opens nothing.
        unmasked.Status = Hl7.Fhir.Model.Consent.ConsentState.Inactive;
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"Consent/{unmasked.Id}", FhirHttp.Json(unmasked))).StatusCode);
        var withdrawn = await csapa.PutAsync($"Consent/{recorded.Id}", FhirHttp.Json(recorded));
        Assert.True(withdrawn.StatusCode == HttpStatusCode.OK, await withdrawn.Content.ReadAsStringAsync());
        Assert.Equal(0, await PrescriptionsSeen(Referent(), patient));
    }

    [Fact]
    public async Task The_capability_statement_says_how_labels_and_consent_combine()
    {
        var statement = await (await gateway.CreateClient().GetAsync("/fhir/metadata")).ReadAs<CapabilityStatement>();
        var description = statement.Rest.Single().Security.Description;
        Assert.Contains("no securityLabel covers every resource of those classes", description, StringComparison.Ordinal);
        Assert.Contains("a deny naming labels masks them", description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_care_organisation_cannot_make_itself_the_patients_care_team()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        await _usmp.CreateAsync(TestConsents.Permit(patient, CsapaFiness, "Patient"));
        var csapa = Csapa();
        var stored = await (await csapa.GetAsync($"Patient/{patient}")).ReadAs<Patient>();
        stored.ManagingOrganization = new ResourceReference { Identifier = new Identifier(Domain.Finess, CsapaFiness) };
        Assert.Equal(HttpStatusCode.Forbidden, (await csapa.PutAsync($"Patient/{patient}", FhirHttp.Json(stored))).StatusCode);
        Assert.Equal(0, await PrescriptionsSeen(csapa, patient));
        // An update that keeps the care team is the scopes' business.
        stored.ManagingOrganization = new ResourceReference("Organization/authority-usmp");
        stored.Active = true;
        Assert.Equal(HttpStatusCode.OK, (await csapa.PutAsync($"Patient/{patient}", FhirHttp.Json(stored))).StatusCode);
    }
}

public sealed class SqliteConsentAuthorityTests(SqliteGateway gateway) : ConsentAuthorityTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresConsentAuthorityTests(PostgresGateway gateway) : ConsentAuthorityTests(gateway), IClassFixture<PostgresGateway>;
