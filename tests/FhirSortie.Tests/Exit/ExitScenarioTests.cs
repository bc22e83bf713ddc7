using System.Net;
using System.Text.Json.Nodes;
using FhirSortie.Server.Audit;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using HandoffTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Tests.Exit;

/// <summary>
/// Scenarios 1, 3 and 5 of the domain brief (../shared/domain.md) end to end through HTTP, with the demo clients'
/// identities: what the receiving side sees, and what it must not see.
/// </summary>
public abstract class ExitScenarioTests(Gateway gateway)
{
    private const string Buprenorphine = "N07BC01";
    private const string ExitTaskTypes = "https://fhirsortie.fr/fhir/CodeSystem/exit-task-type";
    private const string PackageStatus = "https://fhirsortie.fr/fhir/CodeSystem/exit-package-status";

    private readonly HttpClient _usmp = gateway.Fhir(ExitPackages.Usmp);
    private readonly HttpClient _csapaA = gateway.Fhir(ExitPackages.CsapaA);
    private readonly HttpClient _csapaB = gateway.Fhir(ExitPackages.CsapaB);

    private static string PullPrescriptions(string? patientId) =>
        $"MedicationRequest?patient={patientId}&status=active&_revinclude=Provenance:target&_include=MedicationRequest:requester";

    private async Task<List<AuditEvent>> AuditEventsAsync(string? patientId)
    {
        var auditor = gateway.Fhir(ExitPackages.Auditor);
        return (await auditor.SearchAsync($"AuditEvent?patient={patientId}&_count=500")).Entry
            .Select(e => Assert.IsType<AuditEvent>(e.Resource)).ToList();
    }

    private static bool By(AuditEvent audit, string clientId) => audit.Agent.Any(a => a.Who?.Identifier?.Value == clientId);

    private static bool About(AuditEvent audit, string reference) =>
        audit.Entity.Any(e => e.What?.Reference is { } r && (r == reference || r.StartsWith(reference + "/_history/", StringComparison.Ordinal)));

    [Fact]
    public async Task Scenario1_planned_exit_CSAPA_A_pulls_the_prescriptions_CSAPA_B_sees_nothing_and_the_USMP_sees_the_handoff()
    {
        var posted = await ExitPackages.PostAsync(_usmp, ExitPackages.Full("scenario1"));
        var patientId = posted.Single<Patient>().Id;
        var buprenorphine = posted.Prescription(Buprenorphine);
        var task = posted.Single<HandoffTask>();

        // CSAPA A, named by the consent, sees the dose, the prescriber, the bridging supply and the provenance.
        var pulled = await _csapaA.SearchAsync(PullPrescriptions(patientId));
        Assert.Equal(3, pulled.Matches().Count);
        var seen = pulled.Entry.Select(e => e.Resource).OfType<MedicationRequest>().Single(m => m.Id == buprenorphine.Id);
        Assert.Equal("8 mg par voie sublinguale une fois par jour", seen.DosageInstruction[0].Text);
        Assert.Contains(pulled.Entry, e => e.Resource is Practitioner p && seen.Requester!.Reference == $"Practitioner/{p.Id}");
        Assert.Equal(28m, seen.DispenseRequest!.Quantity!.Value);
        var bridging = seen.GetExtension("https://fhirsortie.fr/fhir/StructureDefinition/bridging-supply");
        Assert.Equal(7m, Assert.IsType<Duration>(bridging!.GetExtension("daysSupply")!.Value).Value);
        var provenance = pulled.Entry.Select(e => e.Resource).OfType<Provenance>().Single();
        Assert.Contains(provenance.Target, t => t.Reference == $"MedicationRequest/{seen.Id}/_history/1");
        Assert.Contains(ExitPackages.UsmpFiness, string.Join(" ", provenance.Agent.Select(a => a.Who?.Identifier?.Value ?? a.OnBehalfOf?.Identifier?.Value)));

        // CSAPA B, same scopes but not named, sees nothing, by search or by read.
        Assert.Empty((await _csapaB.SearchAsync(PullPrescriptions(patientId))).Entry);
        Assert.Equal(HttpStatusCode.NotFound, (await _csapaB.GetAsync($"MedicationRequest/{buprenorphine.Id}")).StatusCode);

        // CSAPA A finds its hand-off and moves it; the USMP sees each step.
        var mine = await _csapaA.SearchAsync($"Task?patient={patientId}&code={ExitTaskTypes}|handoff");
        var handoff = Assert.IsType<HandoffTask>(Assert.Single(mine.Entry).Resource);
        Assert.Equal(task.Id, handoff.Id);
        foreach (var (status, business) in new[] { (HandoffTask.TaskStatus.Received, "received"), (HandoffTask.TaskStatus.Accepted, "accepted"), (HandoffTask.TaskStatus.InProgress, "appointment-booked") })
        {
            handoff.Status = status;
            handoff.BusinessStatus = new CodeableConcept("https://fhirsortie.fr/fhir/CodeSystem/exit-handoff-status", business);
            var put = await _csapaA.PutAsync($"Task/{handoff.Id}", FhirHttp.Json(handoff));
            Assert.True(put.StatusCode == HttpStatusCode.OK, await put.Content.ReadAsStringAsync());
            handoff = await put.ReadAs<HandoffTask>();
        }
        var usmpView = await (await _usmp.GetAsync($"Task/{task.Id}")).ReadAs<HandoffTask>();
        Assert.Equal(HandoffTask.TaskStatus.InProgress, usmpView.Status);
        Assert.Equal(4, (await _usmp.SearchAsync($"Task/{task.Id}/_history")).Entry.Count);
        Assert.Single((await _usmp.SearchAsync($"Task?patient={patientId}&status=in-progress")).Entry);

        // CSAPA B's attempts are audited: the refused read names the prescription and the patient.
        var audits = await AuditEventsAsync(patientId);
        var refused = Assert.Single(audits, a => By(a, "csapa2-demo") && About(a, $"MedicationRequest/{buprenorphine.Id}"));
        Assert.Equal(AuditEvent.AuditEventOutcome.N4, refused.Outcome);
        Assert.StartsWith("denied: ", refused.OutcomeDesc, StringComparison.Ordinal);
        Assert.Contains(audits, a => By(a, "csapa-demo") && About(a, $"Task/{task.Id}") && a.Action == AuditEvent.AuditEventAction.U);
    }

    [Fact]
    public async Task Scenario3_unannounced_release_shares_nothing_until_the_consent_arrives()
    {
        var posted = await ExitPackages.PostAsync(_usmp, ExitPackages.Reduced("scenario3"));
        var patientId = posted.Single<Patient>().Id;
        var stay = posted.Single<Encounter>();
        var prescription = posted.Prescription(Buprenorphine);

        // Marked incomplete, released (the actual date), and nothing goes to the CSAPA: no consent names it.
        Assert.Contains(stay.Meta!.Tag, t => t.System == PackageStatus && t.Code == "incomplete");
        Assert.Equal(Encounter.EncounterStatus.Finished, stay.Status);
        Assert.Empty((await _csapaA.SearchAsync(PullPrescriptions(patientId))).Entry);
        Assert.Equal(HttpStatusCode.NotFound, (await _csapaA.GetAsync($"Patient/{patientId}/$everything")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _csapaA.GetAsync($"Encounter/{stay.Id}")).StatusCode);

        // The USMP finds its incomplete packages and the Task asking the référent to collect consent.
        var incomplete = await _usmp.SearchAsync($"Encounter?_tag={PackageStatus}|incomplete&patient={patientId}");
        Assert.Equal([stay.Id!], incomplete.Matches());
        var ask = await _usmp.SearchAsync($"Task?patient={patientId}&code={ExitTaskTypes}|collect-consent&status=requested");
        var collect = Assert.IsType<HandoffTask>(Assert.Single(ask.Entry).Resource);
        Assert.Equal($"Encounter/{stay.Id}", collect.Focus!.Reference);
        Assert.StartsWith("Practitioner/", collect.Owner!.Reference, StringComparison.Ordinal);

        // The consent arrives (recorded electronically), naming the chosen CSAPA: it can read.
        var consent = ExitPackages.Resource(ExitPackages.Full("scenario3"), "Consent").DeepClone();
        consent["patient"] = new JsonObject { ["reference"] = $"Patient/{patientId}" };
        consent.AsObject().Remove("organization");
        consent["provision"]!["actor"]![0]!["reference"] = new JsonObject
        {
            ["identifier"] = new JsonObject { ["system"] = "https://finess.esante.gouv.fr", ["value"] = ExitPackages.CsapaAFiness },
        };
        var created = await _usmp.PostAsync("Consent", FhirHttp.Json(consent.ToJsonString()));
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        collect.Status = HandoffTask.TaskStatus.Completed;
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"Task/{collect.Id}", FhirHttp.Json(collect))).StatusCode);

        Assert.Equal([prescription.Id!], (await _csapaA.SearchAsync(PullPrescriptions(patientId))).Matches());
        Assert.Equal(HttpStatusCode.OK, (await _csapaA.GetAsync($"Encounter/{stay.Id}")).StatusCode);
        // Still nobody else.
        Assert.Empty((await _csapaB.SearchAsync(PullPrescriptions(patientId))).Entry);
    }

    [Fact]
    public async Task Scenario5_withdrawn_consent_hides_the_next_read_and_both_are_audited()
    {
        var posted = await ExitPackages.PostAsync(_usmp, ExitPackages.Full("scenario5"));
        var patientId = posted.Single<Patient>().Id;
        var prescription = posted.Prescription(Buprenorphine);
        var consent = posted.Single<Hl7.Fhir.Model.Consent>();
        Assert.Equal(HttpStatusCode.OK, (await _csapaA.GetAsync($"MedicationRequest/{prescription.Id}")).StatusCode);

        // The person withdraws consent for CSAPA A (recorded by the USMP): status inactive.
        consent.Status = Hl7.Fhir.Model.Consent.ConsentState.Inactive;
        var withdrawn = await _usmp.PutAsync($"Consent/{consent.Id}", FhirHttp.Json(consent));
        Assert.True(withdrawn.StatusCode == HttpStatusCode.OK, await withdrawn.Content.ReadAsStringAsync());

        // The next read is refused (404: not even confirmed to exist), and searches come back empty.
        Assert.Equal(HttpStatusCode.NotFound, (await _csapaA.GetAsync($"MedicationRequest/{prescription.Id}")).StatusCode);
        Assert.Empty((await _csapaA.SearchAsync(PullPrescriptions(patientId))).Entry);

        var audits = await AuditEventsAsync(patientId);
        var withdrawal = Assert.Single(audits, a => By(a, "usmp-demo") && a.Entity.Any(e => e.What?.Reference == $"Consent/{consent.Id}/_history/2"));
        Assert.Equal(AuditEvent.AuditEventAction.U, withdrawal.Action);
        var reads = audits.Where(a => By(a, "csapa-demo") && About(a, $"MedicationRequest/{prescription.Id}")).OrderBy(a => a.Recorded).ToList();
        Assert.Equal(2, reads.Count);
        Assert.StartsWith("permitted: ", reads[0].OutcomeDesc, StringComparison.Ordinal);
        Assert.StartsWith("denied: ", reads[1].OutcomeDesc, StringComparison.Ordinal);
        Assert.Equal(AuditEvent.AuditEventOutcome.N4, reads[1].Outcome);
    }
}

public sealed class SqliteExitScenarioTests(SqliteGateway gateway) : ExitScenarioTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresExitScenarioTests(PostgresGateway gateway) : ExitScenarioTests(gateway), IClassFixture<PostgresGateway>;
