#nullable disable warnings
using System.Net;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// Who sees a Provenance (issue 21 §3): whoever may see every one of its targets (a named CSAPA reading a prescription
/// sees who wrote it, domain scenario 1), and the auditors, who read the trace of writes.
/// </summary>
public abstract class ProvenanceAccessTests(Gateway gateway)
{
    private const string CsapaFiness = "750000028";
    private readonly HttpClient _usmp = gateway.Fhir();

    private HttpClient Csapa(string finess = CsapaFiness) =>
        gateway.Fhir(TestAuthenticationHandler.Describe("csapa-provenance-" + finess, ActorKind.Csapa, finess, "system/*.rs"));

    private static Bundle.EntryComponent Post(Resource resource) => new()
    {
        FullUrl = "urn:uuid:" + Guid.NewGuid(),
        Resource = resource,
        Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = resource.TypeName },
    };

    [Fact]
    public async Task A_named_csapa_sees_the_provenance_of_the_prescriptions_it_reads_and_only_of_those()
    {
        var run = NewRun();
        var patient = (await _usmp.CreateAsync(Patient(run, "180029900000006", "Provenance"))).Id;
        var prescription = await _usmp.CreateAsync(Buprenorphine(run, patient));
        // One transaction writes a prescription and a diagnosis: its Provenance names both.
        var condition = new Condition { Code = new CodeableConcept { Text = "hépatite C" }, Subject = new ResourceReference("Patient/" + patient) };
        var transaction = new Bundle { Type = Bundle.BundleType.Transaction, Entry = [Post(Buprenorphine(run, patient)), Post(condition)] };
        var written = await (await _usmp.PostAsync("", FhirHttp.Json(transaction))).ReadAs<Bundle>();
        var location = written.Entry[0].Response.Location.Split('/');
        var paired = location[Array.IndexOf(location, "MedicationRequest") + 1];
        await _usmp.CreateAsync(TestConsents.Permit(patient, CsapaFiness, "MedicationRequest"));

        var csapa = Csapa();
        var provenances = await csapa.SearchAsync($"Provenance?target=MedicationRequest/{prescription.Id}");
        var provenance = Assert.IsType<Provenance>(Assert.Single(provenances.Entry).Resource);
        Assert.Equal(HttpStatusCode.OK, (await csapa.GetAsync($"Provenance/{provenance.Id}")).StatusCode);

        // The transaction's Provenance also names the Condition, which the consent does not cover: hidden.
        var hidden = await _usmp.SearchAsync($"Provenance?target=MedicationRequest/{paired}");
        var both = Assert.Single(hidden.Entry).Resource.Id;
        Assert.Empty((await csapa.SearchAsync($"Provenance?target=MedicationRequest/{paired}")).Entry);
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"Provenance/{both}")).StatusCode);

        // Another CSAPA, not named, sees neither.
        var other = Csapa("750000044");
        Assert.Empty((await other.SearchAsync($"Provenance?target=MedicationRequest/{prescription.Id}")).Entry);
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"Provenance/{provenance.Id}")).StatusCode);
    }

    [Fact]
    public async Task Auditors_read_and_search_provenance()
    {
        var run = NewRun();
        var patient = (await _usmp.CreateAsync(Patient(run, "180029900000007", "Trace"))).Id;
        var prescription = await _usmp.CreateAsync(Buprenorphine(run, patient));
        var provenance = Assert.Single((await _usmp.SearchAsync($"Provenance?target=MedicationRequest/{prescription.Id}")).Entry).Resource;

        var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-provenance", ActorKind.Auditor, null, "system/AuditEvent.rs system/Provenance.rs"));
        Assert.Equal(HttpStatusCode.OK, (await auditor.GetAsync($"Provenance/{provenance.Id}")).StatusCode);
        Assert.Equal([provenance.Id], (await auditor.SearchAsync($"Provenance?target=MedicationRequest/{prescription.Id}")).Matches());
        // The trace of writes, not the writes: the prescription itself stays out of an auditor's reach.
        Assert.Equal(HttpStatusCode.Forbidden, (await auditor.GetAsync($"MedicationRequest/{prescription.Id}")).StatusCode);
    }
}

public sealed class SqliteProvenanceAccessTests(SqliteGateway gateway) : ProvenanceAccessTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresProvenanceAccessTests(PostgresGateway gateway) : ProvenanceAccessTests(gateway), IClassFixture<PostgresGateway>;
