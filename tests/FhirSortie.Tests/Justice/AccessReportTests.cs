using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Consents;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Justice;

/// <summary>
/// Patient/{id}/$access-report ("who saw my data"): each access to the patient's data with when, client, organisation
/// (FINESS and name), actor kind, interaction, resources, outcome and reason, purpose and break-the-glass reason;
/// for auditors and the patient in person only.
/// </summary>
public abstract class AccessReportTests(Gateway gateway)
{
    private const string Csapa2Finess = "930000039";
    private const string Csapa2Name = "CSAPA Bastide (test)";

    private static List<Parameters.ParameterComponent> Accesses(Parameters report) => report.Parameter.Where(p => p.Name == "access").ToList();

    private static string? Text(Parameters.ParameterComponent access, string part) => access.Part.FirstOrDefault(p => p.Name == part)?.Value switch
    {
        PrimitiveType primitive => primitive.ToString(),
        ResourceReference reference => reference.Reference,
        Identifier identifier => identifier.Value,
        Coding coding => coding.Code,
        _ => null,
    };

    private static IEnumerable<string?> All(Parameters.ParameterComponent access, string part) =>
        access.Part.Where(p => p.Name == part).Select(p => (p.Value as ResourceReference)?.Reference);

    private async Task<Parameters> ReportAsync(HttpClient client, string patient, string query = "")
    {
        var response = await client.GetAsync($"Patient/{patient}/$access-report{query}");
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.ReadAs<Parameters>();
    }

    [Fact]
    public async Task An_auditor_sees_each_access_permitted_or_refused_with_organisation_reason_and_break_the_glass()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var usmp = gateway.Fhir();
        await usmp.CreateAsync(new Organization { Identifier = [new Identifier(Domain.Finess, Csapa2Finess)], Name = Csapa2Name });
        var consent = await usmp.CreateAsync(TestConsents.Permit(record.PatientId, Csapa2Finess, "MedicationRequest"));
        var client = "csapa2-report-" + record.Run;
        var csapa2 = gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Csapa, Csapa2Finess, "system/*.rs"));
        var spipClient = "spip-report-" + record.Run;

        Assert.Equal(HttpStatusCode.OK, (await csapa2.GetAsync($"MedicationRequest/{record.MedicationId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await csapa2.GetAsync($"Condition/{record.ConditionId}")).StatusCode);
        var emergency = new HttpRequestMessage(HttpMethod.Get, $"Condition/{record.ConditionId}");
        emergency.Headers.Add(PurposeOfUse.Header, "ETREAT");
        emergency.Headers.Add(PurposeOfUse.ReasonHeader, "overdose aux urgences");
        Assert.Equal(HttpStatusCode.OK, (await csapa2.SendAsync(emergency)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await JusticeRecord.Spip(gateway, spipClient).GetAsync($"DocumentReference/{record.LetterId}")).StatusCode);
        // Refused by type before the Condition is loaded: the attempt still names the patient, so it is in the report.
        var spipTypeClient = "spip-type-report-" + record.Run;
        Assert.Equal(HttpStatusCode.Forbidden, (await JusticeRecord.Spip(gateway, spipTypeClient).GetAsync($"Condition/{record.ConditionId}")).StatusCode);

        var report = await ReportAsync(JusticeRecord.Auditor(gateway), record.PatientId);
        Assert.Equal($"Patient/{record.PatientId}", (report.Parameter.Single(p => p.Name == "patient").Value as ResourceReference)?.Reference);
        var accesses = Accesses(report);
        Assert.Equal(accesses.Count, Assert.IsType<Integer>(report.Parameter.Single(p => p.Name == "count").Value).Value);
        var times = accesses.Select(a => Assert.IsType<Instant>(a.Part.Single(p => p.Name == "when").Value).Value!.Value).ToList();
        Assert.Equal(times.OrderDescending(), times);

        var mine = accesses.Where(a => Text(a, "client") == client).ToList();
        Assert.Equal(3, mine.Count);
        var permitted = Assert.Single(mine, a => All(a, "resource").Contains($"MedicationRequest/{record.MedicationId}"));
        Assert.Equal("permitted", Text(permitted, "outcome"));
        Assert.Equal("consent", Text(permitted, "reason"));
        Assert.Equal("read", Text(permitted, "interaction"));
        Assert.Equal("Csapa", Text(permitted, "actorKind"));
        Assert.Equal(Csapa2Finess, Text(permitted, "organization"));
        Assert.Equal(Csapa2Name, Text(permitted, "organizationName"));
        Assert.Equal("TREAT", Text(permitted, "purpose"));
        Assert.Equal($"Consent/{consent.Id}", Text(permitted, "consent"));
        Assert.StartsWith("AuditEvent/", Text(permitted, "auditEvent"), StringComparison.Ordinal);

        var onCondition = mine.Where(a => All(a, "resource").Contains($"Condition/{record.ConditionId}")).ToList();
        var refused = Assert.Single(onCondition, a => Text(a, "outcome") == "refused");
        Assert.Contains("no active consent", Text(refused, "reason"), StringComparison.Ordinal);
        var breakGlass = Assert.Single(onCondition, a => Text(a, "outcome") == "permitted");
        Assert.Equal("ETREAT", Text(breakGlass, "purpose"));
        Assert.Equal("overdose aux urgences", Text(breakGlass, "breakGlassReason"));

        var spip = Assert.Single(accesses, a => Text(a, "client") == spipClient);
        Assert.Equal("refused", Text(spip, "outcome"));
        Assert.Equal("Justice", Text(spip, "actorKind"));
        Assert.Equal($"DocumentReference/{record.LetterId}", Assert.Single(All(spip, "resource")));
        var byType = Assert.Single(accesses, a => Text(a, "client") == spipTypeClient);
        Assert.Equal("refused", Text(byType, "outcome"));
        Assert.Equal($"Condition/{record.ConditionId}", Assert.Single(All(byType, "resource")));
    }

    [Fact]
    public async Task The_patient_reads_their_own_report_and_nobody_else_but_auditors_does()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var other = await JusticeRecord.CreateAsync(gateway);
        var self = gateway.Fhir(TestAuthenticationHandler.Describe("patient-app", ActorKind.Care, null, "patient/*.rs", record.PatientId)
            + $";{Caller.Claims.FhirUser}=Patient/{record.PatientId}");
        var report = await ReportAsync(self, record.PatientId);
        Assert.NotEmpty(Accesses(report));
        Assert.Equal(HttpStatusCode.Forbidden, (await self.GetAsync($"Patient/{other.PatientId}/$access-report")).StatusCode);

        foreach (var caller in new[]
        {
            gateway.Fhir(),
            JusticeRecord.CsapaClient(gateway),
            JusticeRecord.Spip(gateway, "spip-report-denied"),
            gateway.Fhir(TestAuthenticationHandler.Describe("practitioner-app", ActorKind.Care, JusticeRecord.CsapaFiness, "user/*.rs")
                + $";{Caller.Claims.FhirUser}=Practitioner/{record.PractitionerId}"),
        })
        {
            var outcome = await caller.SearchFailsAsync($"Patient/{record.PatientId}/$access-report", HttpStatusCode.Forbidden);
            Assert.Contains(outcome.Issue, i => i.Code == OperationOutcome.IssueType.Forbidden);
        }
        // Refused before the existence check: an unknown patient is 403 to them, 404 to an auditor.
        Assert.Equal(HttpStatusCode.Forbidden, (await gateway.Fhir().GetAsync("Patient/no-such-patient/$access-report")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await JusticeRecord.Auditor(gateway).GetAsync("Patient/no-such-patient/$access-report")).StatusCode);
    }

    [Fact]
    public async Task Since_and_until_bound_the_period()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var auditor = JusticeRecord.Auditor(gateway);
        await JusticeRecord.Spip(gateway, "spip-period").GetAsync($"Appointment/{record.AppointmentId}");
        Assert.NotEmpty(Accesses(await ReportAsync(auditor, record.PatientId, "?_since=2020-01-01T00:00:00Z")));
        var future = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(1).ToString("o", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Empty(Accesses(await ReportAsync(auditor, record.PatientId, $"?_since={future}")));
        Assert.Empty(Accesses(await ReportAsync(auditor, record.PatientId, "?_until=2020-01-01T00:00:00Z")));
        Assert.Equal(HttpStatusCode.BadRequest, (await auditor.GetAsync($"Patient/{record.PatientId}/$access-report?_since=yesterday")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await auditor.GetAsync($"Patient/{record.PatientId}/$access-report?client=x")).StatusCode);
    }

    [Fact]
    public async Task The_capability_statement_lists_the_operation()
    {
        var capabilities = await (await gateway.Fhir().GetAsync("metadata")).ReadAs<CapabilityStatement>();
        var patient = capabilities.Rest.Single().Resource.Single(r => r.Type == "Patient");
        var operation = Assert.Single(patient.Operation, o => o.Name == "access-report");
        Assert.Equal(AccessReport.OperationUrl, operation.Definition);
    }
}

public sealed class SqliteAccessReportTests(SqliteGateway gateway) : AccessReportTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresAccessReportTests(PostgresGateway gateway) : AccessReportTests(gateway), IClassFixture<PostgresGateway>;
