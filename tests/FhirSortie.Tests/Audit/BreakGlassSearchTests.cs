using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// Issue 26: break-the-glass stated on a search (X-Purpose-Of-Use: ETREAT + X-Break-Glass-Reason) opens the grant when
/// the search is about one patient, audited and flagged like a read's opening; any other search with a reason is refused
/// with a 4xx OperationOutcome saying how to open it (it used to answer total 0 silently).
/// </summary>
public abstract class BreakGlassSearchTests(Gateway gateway)
{
    private const string CsapaFiness = "750000028";
    private const string Reason = "overdose aux urgences";
    private readonly HttpClient _usmp = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-break-glass", ActorKind.Auditor, null, "system/AuditEvent.rs system/Patient.rs"));

    private HttpClient Csapa(string client) => gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Csapa, CsapaFiness, "system/*.rs"));

    /// <summary>A patient of the USMP with two MedicationRequests (one ETH-labelled); the CSAPA has no consent.</summary>
    private async Task<(string Patient, string Run)> SetUpAsync()
    {
        var run = NewRun();
        var patient = (await _usmp.CreateAsync(Patient(run, "180029900000003", "Urgence"))).Id!;
        await _usmp.CreateAsync(Buprenorphine(run, patient));
        var labelled = Buprenorphine(run, patient);
        labelled.Meta!.Security = [new Coding(SecurityLabels.ActCode, "ETH")];
        await _usmp.CreateAsync(labelled);
        return (patient, run);
    }

    private static HttpRequestMessage Emergency(string url, bool withReason = true)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Add(PurposeOfUse.Header, "ETREAT");
        if (withReason) request.Headers.Add(PurposeOfUse.ReasonHeader, Reason);
        return request;
    }

    [Theory]
    [InlineData("MedicationRequest?patient={0}&_total=accurate", 2)]
    [InlineData("MedicationRequest?subject=Patient/{0}&_total=accurate", 2)]
    [InlineData("Patient/{0}/MedicationRequest?_total=accurate", 2)]
    [InlineData("Patient?_id={0}&_total=accurate", 1)]
    public async Task A_search_about_one_patient_opens_the_grant_flagged_and_audited_like_a_read(string search, int expected)
    {
        var (patient, run) = await SetUpAsync();
        var client = "csapa-bg-" + run;
        var csapa = Csapa(client);
        var url = string.Format(System.Globalization.CultureInfo.InvariantCulture, search, patient);
        // Before: nothing shared with the CSAPA.
        Assert.Equal(0, (await csapa.SearchAsync(url)).Total);

        using var opened = await csapa.SendAsync(Emergency(url));
        Assert.Equal(HttpStatusCode.OK, opened.StatusCode);
        Assert.Equal(expected, (await opened.ReadAs<Bundle>()).Total);
        Assert.True(opened.Headers.Contains(PurposeOfUse.BreakGlassResponseHeader));
        // The grant then widens the client's ETREAT searches for that patient, as one opened by a read does.
        Assert.Equal(2, (await csapa.SearchAsync($"MedicationRequest?patient={patient}&_total=accurate", (PurposeOfUse.Header, "ETREAT"))).Total);

        var record = Assert.Single((await _auditor.SearchAsync($"AuditEvent?patient={patient}&_count=100")).Entry.Select(e => (AuditEvent)e.Resource!),
            a => a.Agent.Any(g => g.Who?.Identifier?.Value == client) && a.Entity.Any(e => e.Detail.Any(d => d.Type == AuditRecords.BreakGlassReasonDetail)));
        Assert.Equal("permitted: break-the-glass emergency access", record.OutcomeDesc);
        Assert.Equal("ETREAT", record.PurposeOfEvent.Single().Coding.Single().Code);
        var detail = record.Entity.Single(e => e.What?.Reference == $"Patient/{patient}").Detail.Single(d => d.Type == AuditRecords.BreakGlassReasonDetail);
        Assert.Equal(Reason, ((FhirString)detail.Value).Value);
        var report = await (await _auditor.GetAsync($"Patient/{patient}/$access-report")).ReadAs<Parameters>();
        var access = Assert.Single(report.Parameter, p => p.Name == "access" && p.Part.Any(x => x.Name == "auditEvent" && ((ResourceReference)x.Value!).Reference == $"AuditEvent/{record.Id}"));
        Assert.Equal(Reason, access.Part.Single(p => p.Name == "breakGlassReason").Value!.ToString());
    }

    [Fact]
    public async Task Any_other_search_with_a_reason_is_refused_saying_how_and_opens_nothing()
    {
        var (patient, run) = await SetUpAsync();
        var (other, _) = await SetUpAsync();
        var csapa = Csapa("csapa-bg-refused-" + run);
        foreach (var url in new[] { $"MedicationRequest?patient={patient},{other}", $"MedicationRequest?_tag={RunTag}|{run}", $"MedicationRequest?patient={patient}&subject=Patient/{other}", $"MedicationRequest?patient.name=Urgence" })
        {
            using var refused = await csapa.SendAsync(Emergency(url));
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            var outcome = await refused.ReadAs<OperationOutcome>();
            Assert.Contains("compartment search (GET Patient/{id}/{type}", outcome.Issue.Single().Diagnostics, StringComparison.Ordinal);
        }
        using (var unknown = await csapa.SendAsync(Emergency($"MedicationRequest?patient=unknown-{run}")))
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        // Justice actors and auditors never break the glass.
        var justice = gateway.Fhir(TestAuthenticationHandler.Describe("spip-bg-" + run, ActorKind.Justice, "750000077", "system/*.rs"));
        using (var spip = await justice.SendAsync(Emergency($"Appointment?patient={patient}")))
            Assert.Equal(HttpStatusCode.Forbidden, spip.StatusCode);
        // Nothing was opened: the ETREAT search of that client still sees nothing.
        Assert.Equal(0, (await csapa.SearchAsync($"MedicationRequest?patient={patient}&_total=accurate", (PurposeOfUse.Header, "ETREAT"))).Total);
        // ETREAT without a reason is no request to open a grant: answered as before.
        using var plain = await csapa.SendAsync(Emergency($"MedicationRequest?patient={patient},{other}", withReason: false));
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
    }
}

public sealed class SqliteBreakGlassSearchTests(SqliteGateway gateway) : BreakGlassSearchTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresBreakGlassSearchTests(PostgresGateway gateway) : BreakGlassSearchTests(gateway), IClassFixture<PostgresGateway>;
