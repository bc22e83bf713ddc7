using System.Net;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Measures.Prison;

namespace FhirSortie.Tests.Measures;

/// <summary>
/// Who may evaluate the indicators and what else they may see: a public-health observer evaluates for one prison or all
/// and reads no patient resource (403, even with broad scopes), cannot search audit records or export; a USMP evaluates
/// its own prison only; other actors are refused. Every evaluation leaves an AuditEvent naming the measure, the period and
/// the subject, and no patient. Bad parameters are 400s, unknown measures and organisations 404s.
/// </summary>
public abstract class EvaluateMeasureAccessTests<TGateway>(MeasureGateway<TGateway> fixture) where TGateway : Gateway, new()
{
    private readonly Gateway _gateway = fixture.Gateway;
    private readonly MovableClock _clock = fixture.Clock;

    private HttpClient Observer(string scopes = "system/Measure.rs system/MeasureReport.r") =>
        _gateway.Fhir(TestAuthenticationHandler.Describe("ars-test", ActorKind.Observer, "750000093", scopes));

    [Fact]
    public async Task An_observer_evaluates_one_prison_or_all_but_reads_no_patient_resource_searches_no_audit_and_exports_nothing()
    {
        var prison = await CreateAsync(_gateway, _clock, "USMP observée");
        var release = await prison.ReleaseAsync(Paris(2035, 6, 10), Paris(2035, 6, 1));
        var observer = Observer();
        var all = await SortieAvecPaquetTests<TGateway>.EvaluateAsync(observer, "sortie-avec-paquet", "2035-06-01", "2035-06-30");
        Assert.Null(all.Subject);
        Assert.Null(ReportChecks.Count(all.Group[0], "denominator")); // 1 release: masked
        var one = await SortieAvecPaquetTests<TGateway>.EvaluateAsync(observer, "sortie-avec-paquet", "2035-06-01", "2035-06-30", "Organization/" + prison.OrganizationId);
        Assert.Equal(prison.Finess, one.Subject!.Identifier!.Value);
        Assert.Equal(HttpStatusCode.OK, (await observer.GetAsync("Measure/sortie-avec-paquet")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await observer.GetAsync("Measure")).StatusCode);

        // Even granted every read scope, the actor kind keeps patient data out of reach.
        var broad = Observer("system/*.rs system/MeasureReport.r");
        foreach (var url in new[] { $"Patient/{release.PatientId}", $"Encounter/{release.Stay.Id}", "Patient?family=Sortant", $"Encounter?subject=Patient/{release.PatientId}",
                     "AuditEvent?entity=Measure/sortie-avec-paquet", "Composition", $"Patient/{release.PatientId}/$everything" })
        {
            var response = await broad.GetAsync(url);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{url}: {response.StatusCode}");
        }
        var system = await broad.GetAsync("?_type=Patient");
        Assert.True(system.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.BadRequest || (await system.ReadAs<Bundle>()).Entry.Count == 0, system.StatusCode.ToString());
        var export = new HttpRequestMessage(HttpMethod.Get, "$export");
        export.Headers.Add("Prefer", "respond-async");
        Assert.Equal(HttpStatusCode.Forbidden, (await broad.SendAsync(export)).StatusCode);
    }

    [Fact]
    public async Task A_USMP_evaluates_its_own_prison_only_and_other_actors_not_at_all()
    {
        var mine = await CreateAsync(_gateway, _clock, "USMP A (accès)");
        var other = await CreateAsync(_gateway, _clock, "USMP B (accès)");
        await mine.ReleaseAsync(Paris(2036, 2, 10), Paris(2036, 2, 1));
        await other.ReleaseAsync(Paris(2036, 2, 11), Paris(2036, 2, 1));

        var own = await SortieAvecPaquetTests<TGateway>.EvaluateAsync(mine.Usmp, "sortie-avec-paquet", "2036-02-01", "2036-02-29");
        Assert.Equal(mine.Finess, own.Subject!.Identifier!.Value); // no subject: its own prison
        Assert.Equal([mine.Finess], own.Group[0].Stratifier.Single(s => ReportChecks.CodeOf(s.Code[0]) == "usmp").Stratum.Select(s => s.Value!.Coding[0].Code));
        Assert.Equal(HttpStatusCode.OK, (await SortieAvecPaquetTests<TGateway>.EvaluateRawAsync(mine.Usmp, "sortie-avec-paquet", "2036-02-01", "2036-02-29", "Organization/" + mine.OrganizationId)).StatusCode);
        var refused = await SortieAvecPaquetTests<TGateway>.EvaluateRawAsync(mine.Usmp, "sortie-avec-paquet", "2036-02-01", "2036-02-29", "Organization/" + other.OrganizationId);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("OperationOutcome", (await refused.ReadAs<OperationOutcome>()).TypeName);

        foreach (var (kind, finess) in new[] { (ActorKind.Csapa, "750000028"), (ActorKind.Justice, "750000069"), (ActorKind.Auditor, "750000077"), (ActorKind.Social, "750000101") })
        {
            var client = _gateway.Fhir(TestAuthenticationHandler.Describe("other-" + kind, kind, finess, "system/*.rs system/MeasureReport.r"));
            var response = await SortieAvecPaquetTests<TGateway>.EvaluateRawAsync(client, "sortie-avec-paquet", "2036-02-01", "2036-02-29");
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{kind}: {response.StatusCode}");
        }
        // Without the MeasureReport scope an observer is refused too.
        var unscoped = Observer("system/Measure.rs");
        Assert.Equal(HttpStatusCode.Forbidden, (await SortieAvecPaquetTests<TGateway>.EvaluateRawAsync(unscoped, "sortie-avec-paquet", "2036-02-01", "2036-02-29")).StatusCode);
    }

    [Fact]
    public async Task Every_evaluation_is_audited_with_the_measure_period_and_subject_and_no_patient()
    {
        var prison = await CreateAsync(_gateway, _clock, "USMP auditée");
        await prison.ReleaseAsync(Paris(2037, 1, 10), Paris(2037, 1, 1));
        await SortieAvecPaquetTests<TGateway>.EvaluateAsync(Observer(), "sortie-avec-paquet", "2037-01-01", "2037-01-31", "Organization/" + prison.OrganizationId);
        var refused = await SortieAvecPaquetTests<TGateway>.EvaluateRawAsync(prison.Usmp, "sortie-avec-paquet", "2037-01-01", "2037-01-31", "Organization/" + (await CreateAsync(_gateway, _clock, "autre")).OrganizationId);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        var auditor = _gateway.Fhir(TestAuthenticationHandler.Describe("dpo-measures", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        var bundle = await auditor.SearchAsync("AuditEvent?entity=Measure/sortie-avec-paquet&_count=1000");
        var events = bundle.Entry.Select(e => (AuditEvent)e.Resource!).Where(a => a.Entity.Any(e => e.Query is { } q && System.Text.Encoding.UTF8.GetString(q).Contains("2037-01-01", StringComparison.Ordinal))).ToList();
        Assert.Equal(2, events.Count);
        foreach (var audit in events)
        {
            var query = System.Text.Encoding.UTF8.GetString(audit.Entity.First(e => e.Query is not null).Query!);
            Assert.Contains("periodStart=2037-01-01", query, StringComparison.Ordinal);
            Assert.Contains("periodEnd=2037-01-31", query, StringComparison.Ordinal);
            Assert.Contains("subject=Organization/", query, StringComparison.Ordinal);
            Assert.Contains(audit.Entity, e => e.What?.Reference == "Measure/sortie-avec-paquet");
            Assert.DoesNotContain(audit.Entity, e => e.What?.Reference?.StartsWith("Patient/", StringComparison.Ordinal) == true);
        }
        Assert.Contains(events, a => a.Outcome == AuditEvent.AuditEventOutcome.N0);
        Assert.Contains(events, a => a.Outcome != AuditEvent.AuditEventOutcome.N0);
    }

    [Theory]
    [InlineData("periodEnd=2026-01-31", HttpStatusCode.BadRequest)]
    [InlineData("periodStart=2026-13-01&periodEnd=2026-12-31", HttpStatusCode.BadRequest)]
    [InlineData("periodStart=2026-02-01&periodEnd=2026-01-31", HttpStatusCode.BadRequest)]
    [InlineData("periodStart=2026-01-01&periodEnd=2026-01-31&reportType=subject-list", HttpStatusCode.BadRequest)]
    [InlineData("periodStart=2026-01-01&periodEnd=2026-01-31&subject=Patient/p1", HttpStatusCode.BadRequest)]
    [InlineData("periodStart=2026-01-01&periodEnd=2026-01-31&measure=x", HttpStatusCode.BadRequest)]
    [InlineData("periodStart=2026-01-01&periodEnd=2026-01-31&subject=Organization/unknown-org", HttpStatusCode.NotFound)]
    [InlineData("periodStart=2000-01-01&periodEnd=2026-01-31", HttpStatusCode.BadRequest)]
    public async Task Bad_parameters_are_client_errors_with_an_OperationOutcome(string query, HttpStatusCode status)
    {
        var response = await Observer().GetAsync("Measure/sortie-avec-paquet/$evaluate-measure?" + query);
        Assert.Equal(status, response.StatusCode);
        Assert.NotEmpty((await response.ReadAs<OperationOutcome>()).Issue);
        Assert.Equal(HttpStatusCode.NotFound, (await Observer().GetAsync("Measure/unknown/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-01-31")).StatusCode);
    }

    [Fact]
    public async Task The_measures_are_shipped_read_only_and_the_operation_is_in_the_capability_statement()
    {
        var usmp = _gateway.Fhir(TestAuthenticationHandler.Describe("usmp-caps", ActorKind.Usmp, "750000010", "system/*.cruds"));
        var measure = await (await usmp.GetAsync("Measure/sortie-avec-paquet")).ReadAs<Measure>();
        var description = measure.Description!;
        Assert.Contains("Numérateur", description, StringComparison.Ordinal);
        Assert.Contains("Numerator", description, StringComparison.Ordinal);
        Assert.Contains("< 11", description, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await usmp.PutAsync("Measure/sortie-avec-paquet", FhirHttp.Json(measure))).StatusCode);
        var caps = await (await usmp.GetAsync("metadata")).ReadAs<CapabilityStatement>();
        var resource = caps.Rest[0].Resource.Single(r => r.Type == "Measure");
        Assert.Contains(resource.Operation, o => o.Name == "evaluate-measure" && o.Definition == "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure");
    }
}

[Collection(SqliteMeasureCollection.Name)]
public sealed class SqliteEvaluateMeasureAccessTests(MeasureGateway<SqliteGateway> fixture) : EvaluateMeasureAccessTests<SqliteGateway>(fixture);

[Collection(PostgresMeasureCollection.Name)]
public sealed class PostgresEvaluateMeasureAccessTests(MeasureGateway<PostgresGateway> fixture) : EvaluateMeasureAccessTests<PostgresGateway>(fixture);
