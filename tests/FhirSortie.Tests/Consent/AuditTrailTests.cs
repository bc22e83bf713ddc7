#nullable disable warnings
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Security;
using Microsoft.Extensions.DependencyInjection;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>Every interaction leaves an AuditEvent; writes get a Provenance; AuditEvents are append-only.</summary>
public abstract class AuditTrailTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));

    /// <summary>The AuditEvents of a patient (every request answered so far is in the audit store).</summary>
    private async Task<List<AuditEvent>> AuditsOf(string patientId)
    {
        return (await Search.SearchHttp.SearchAsync(_auditor, $"AuditEvent?patient={patientId}&_count=100")).Entry.Select(e => (AuditEvent)e.Resource).ToList();
    }

    private static string Subtype(AuditEvent a) => a.Subtype.Single().Code;

    [Fact]
    public async Task Create_and_read_are_audited_with_client_organisation_patient_and_purpose()
    {
        var patient = await Search.SearchHttp.CreateAsync(_fhir, Patient(NewRun(), "280021400003001", "Audite"));
        var read = await _fhir.GetAsync($"Patient/{patient.Id}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);

        var audits = await AuditsOf(patient.Id);
        var create = Assert.Single(audits, a => Subtype(a) == "create");
        Assert.Equal(AuditEvent.AuditEventAction.C, create.Action);
        Assert.Equal(AuditEvent.AuditEventOutcome.N0, create.Outcome);
        Assert.Contains(create.Entity, e => e.What?.Reference == $"Patient/{patient.Id}/_history/1");
        var readAudit = Assert.Single(audits, a => Subtype(a) == "read");
        Assert.Equal("rest", readAudit.Type.Code);
        Assert.Equal(AuditEvent.AuditEventAction.R, readAudit.Action);
        Assert.Contains(readAudit.Agent, a => a.Who.Identifier?.Value == "usmp-test" && a.Requestor == true);
        Assert.Contains(readAudit.Agent, a => a.Who.Identifier?.System == Search.Domain.Finess && a.Who.Identifier.Value == "750000010");
        Assert.Equal("TREAT", readAudit.PurposeOfEvent.Single().Coding.Single().Code);
        Assert.Equal("FhirSortie gateway", readAudit.Source.Observer.Display);
    }

    [Fact]
    public async Task A_HEAD_is_answered_decided_and_audited_as_the_read_it_mirrors()
    {
        var patient = await Search.SearchHttp.CreateAsync(_fhir, Patient(NewRun(), "280021400003002", "Entete"));
        using var head = await _fhir.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"Patient/{patient.Id}"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("W/\"1\"", head.Headers.ETag?.ToString());
        // Another organisation's client, not named by any consent: refused as its GET would be.
        using var other = gateway.Fhir(TestAuthenticationHandler.Describe("csapa-x", ActorKind.Csapa, "750000036", "system/*.rs"));
        using var refused = await other.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"Patient/{patient.Id}"));
        using var refusedGet = await other.GetAsync($"Patient/{patient.Id}");
        Assert.Equal(refusedGet.StatusCode, refused.StatusCode);
        Assert.NotEqual(HttpStatusCode.OK, refused.StatusCode);

        var reads = (await AuditsOf(patient.Id)).Where(a => Subtype(a) == "read").ToList();
        Assert.Equal(3, reads.Count);
        Assert.All(reads, a => Assert.Equal(AuditEvent.AuditEventAction.R, a.Action));
        Assert.Single(reads, a => a.Outcome == AuditEvent.AuditEventOutcome.N0);
    }

    [Fact]
    public async Task Failed_requests_are_audited_as_failures()
    {
        var missing = Guid.NewGuid().ToString();
        Assert.Equal(HttpStatusCode.NotFound, (await _fhir.GetAsync($"Patient/{missing}")).StatusCode);
        var audits = await AuditsOf(missing);
        var failed = Assert.Single(audits);
        Assert.Equal("read", Subtype(failed));
        Assert.Equal(AuditEvent.AuditEventOutcome.N4, failed.Outcome);

        // A refused write leaves no AuditEvent of success (its transaction rolled back) but one of failure.
        var bad = new Patient { Id = "bad" + missing[..8], BirthDate = "1980-02-14", Meta = Tagged(NewRun()) };
        var put = await _fhir.PutAsync($"Patient/{bad.Id}", FhirHttp.Json("""{"resourceType":"Patient","id":"X","gender":"nope"}""".Replace("\"X\"", $"\"{bad.Id}\"")));
        Assert.Equal(HttpStatusCode.BadRequest, put.StatusCode);
        var putAudit = Assert.Single(await AuditsOf(bad.Id));
        Assert.Equal(AuditEvent.AuditEventOutcome.N4, putAudit.Outcome);
    }

    [Fact]
    public async Task Writes_get_a_Provenance_unless_the_sender_supplied_one()
    {
        var run = NewRun();
        var request = await Search.SearchHttp.CreateAsync(_fhir, Buprenorphine(run, "p-prov"));
        var provenance = (Provenance)Assert.Single((await Search.SearchHttp.SearchAsync(_fhir, $"Provenance?target=MedicationRequest/{request.Id}")).Entry).Resource;
        Assert.Equal($"MedicationRequest/{request.Id}/_history/1", provenance.Target.Single().Reference);
        Assert.Equal("CREATE", provenance.Activity.Coding.Single().Code);
        Assert.Contains(provenance.Agent, a => a.Who.Identifier?.Value == "750000010");

        var supplied = new Provenance
        {
            Target = [new ResourceReference("MedicationRequest/placeholder")],
            Recorded = DateTimeOffset.UtcNow,
            Agent = [new Provenance.AgentComponent { Who = new ResourceReference { Display = "Dr Prescriber, USMP" } }],
            Activity = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE"),
        };
        var update = new HttpRequestMessage(HttpMethod.Put, $"MedicationRequest/{request.Id}") { Content = FhirHttp.Json(request) };
        update.Headers.Add("X-Provenance", await FhirHttp.Json(supplied).ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await _fhir.SendAsync(update)).StatusCode);
        var both = (await Search.SearchHttp.SearchAsync(_fhir, $"Provenance?target=MedicationRequest/{request.Id}")).Entry.Select(e => (Provenance)e.Resource).ToList();
        Assert.Equal(2, both.Count);
        var second = Assert.Single(both, p => p.Target.Single().Reference == $"MedicationRequest/{request.Id}/_history/2");
        Assert.Equal("Dr Prescriber, USMP", second.Agent.Single().Who.Display);
    }

    [Fact]
    public async Task A_transaction_gets_one_Provenance_with_all_targets_and_one_AuditEvent_with_all_entities()
    {
        var run = NewRun();
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        for (var i = 0; i < 3; i++)
            bundle.Entry.Add(new() { FullUrl = "urn:uuid:" + Guid.NewGuid(), Resource = new Patient { Meta = Tagged(run), Name = [new HumanName { Family = "Lot" + i }] }, Request = new() { Method = Bundle.HTTPVerb.POST, Url = "Patient" } });
        var response = await _fhir.PostAsync("", FhirHttp.Json(bundle));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var ids = (await response.ReadAs<Bundle>()).Entry.Select(e => e.Response.Location.Split("/Patient/")[1].Split('/')[0]).ToList();
        Assert.Equal(3, ids.Count);
        var targets = ids.Select(id => $"Patient/{id}/_history/1").Order().ToList();

        foreach (var id in ids)
        {
            var provenance = (Provenance)Assert.Single((await Search.SearchHttp.SearchAsync(_fhir, $"Provenance?target=Patient/{id}")).Entry).Resource;
            Assert.Equal(targets, provenance.Target.Select(t => t.Reference).Order().ToList());
            Assert.Equal("CREATE", provenance.Activity.Coding.Single().Code);
            // The Provenance searches name these patients too (a Provenance of a Patient is in its compartment, issue 26).
            var audit = Assert.Single(await AuditsOf(id), a => Subtype(a) != "search-type");
            Assert.Equal("transaction", Subtype(audit));
            Assert.Equal(targets, audit.Entity.Where(e => e.What?.Reference?.Contains("/_history/", StringComparison.Ordinal) == true).Select(e => e.What.Reference).Order().ToList());
        }
    }

    [Fact]
    public async Task AuditEvents_cannot_be_updated_patched_or_deleted()
    {
        var patient = await Search.SearchHttp.CreateAsync(_fhir, Patient(NewRun(), "280021400003002", "Immuable"));
        var audit = (await AuditsOf(patient.Id)).First();
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await _fhir.PutAsync($"AuditEvent/{audit.Id}", FhirHttp.Json(audit))).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await _fhir.DeleteAsync($"AuditEvent/{audit.Id}")).StatusCode);
        var patch = new HttpRequestMessage(HttpMethod.Patch, $"AuditEvent/{audit.Id}") { Content = FhirHttp.Json("[]") };
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await _fhir.SendAsync(patch)).StatusCode);
        var stored = await (await _auditor.GetAsync($"AuditEvent/{audit.Id}")).ReadAs<AuditEvent>();
        Assert.Equal("1", stored.Meta.VersionId);
    }
}

public sealed class SqliteAuditTrailTests(SqliteGateway gateway) : AuditTrailTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresAuditTrailTests(PostgresGateway gateway) : AuditTrailTests(gateway), IClassFixture<PostgresGateway>;
