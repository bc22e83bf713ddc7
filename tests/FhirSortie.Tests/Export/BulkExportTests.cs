using System.Net;
using System.Text.Json;
using FhirSortie.Server.Export;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Tests.Consents;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Export;

/// <summary>
/// FHIR Bulk Data $export over HTTP: the async pattern, consent filtering (a CSAPA exports only what it may see), _since
/// and _type, cancel, a job whose node died (its lease passes, another attempt finishes it without the half file),
/// justice refused, and the export's audit naming its patients.
/// </summary>
public abstract class BulkExportTests(Gateway gateway)
{
    private const string CsapaA = "750000028";
    private const string CsapaB = "750000036";
    private readonly HttpClient _usmp = gateway.Fhir();

    private HttpClient Csapa(string finess, string client) => gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Csapa, finess, "system/*.rs"));

    private static HttpRequestMessage Kickoff(string url)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Add("Prefer", "respond-async");
        return request;
    }

    /// <summary>Kicks off, polls to completion, and returns the manifest and every output line's (type, id).</summary>
    private static async Task<(JsonElement Manifest, List<(string Type, string Id)> Lines)> ExportAsync(HttpClient client, string url)
    {
        var kickoff = await client.SendAsync(Kickoff(url));
        Assert.Equal(HttpStatusCode.Accepted, kickoff.StatusCode);
        var status = kickoff.Content.Headers.ContentLocation ?? kickoff.Headers.GetValues("Content-Location").Select(v => new Uri(v)).First();
        return await CompletedAsync(client, status.ToString());
    }

    private static async Task<(JsonElement Manifest, List<(string Type, string Id)> Lines)> CompletedAsync(HttpClient client, string statusUrl)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var poll = await client.GetAsync(statusUrl);
            if (poll.StatusCode == HttpStatusCode.OK)
            {
                var manifest = JsonDocument.Parse(await poll.Content.ReadAsStringAsync()).RootElement;
                var lines = new List<(string, string)>();
                foreach (var output in manifest.GetProperty("output").EnumerateArray())
                {
                    var file = await client.GetAsync(output.GetProperty("url").GetString());
                    Assert.Equal(HttpStatusCode.OK, file.StatusCode);
                    Assert.Equal("application/fhir+ndjson", file.Content.Headers.ContentType?.MediaType);
                    var text = await file.Content.ReadAsStringAsync();
                    var count = 0;
                    foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    {
                        var resource = JsonDocument.Parse(line).RootElement;
                        Assert.Equal(output.GetProperty("type").GetString(), resource.GetProperty("resourceType").GetString());
                        lines.Add((resource.GetProperty("resourceType").GetString()!, resource.GetProperty("id").GetString()!));
                        count++;
                    }
                    Assert.Equal(output.GetProperty("count").GetInt32(), count);
                }
                return (manifest, lines);
            }
            Assert.Equal(HttpStatusCode.Accepted, poll.StatusCode);
            Assert.True(poll.Headers.Contains("X-Progress"));
            Assert.NotNull(poll.Headers.RetryAfter);
            Assert.True(DateTime.UtcNow < deadline, "the export did not complete in time");
            await Task.Delay(200);
        }
    }

    private async Task<(string Patient, string Request)> PatientWithPrescriptionAsync()
    {
        var run = NewRun();
        var patient = (await _usmp.CreateAsync(Patient(run, "180029900000003", "Export"))).Id!;
        var request = (await _usmp.CreateAsync(Plain(patient))).Id!;
        return (patient, request);
    }

    /// <summary>A prescription without sensitivity labels (a buprenorphine one is labelled ETH, which the test consents do not permit).</summary>
    private static MedicationRequest Plain(string patient) => new()
    {
        Status = MedicationRequest.MedicationrequestStatus.Active, Intent = MedicationRequest.MedicationRequestIntent.Order,
        Medication = new CodeableConcept { Text = "medication" }, Subject = new ResourceReference("Patient/" + patient),
    };

    [Fact]
    public async Task A_kickoff_without_respond_async_is_400()
    {
        var response = await _usmp.GetAsync("$export");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("respond-async", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(ActorKind.Justice)]
    [InlineData(ActorKind.Social)]
    [InlineData(ActorKind.Auditor)]
    public async Task Non_care_actors_get_403(ActorKind kind)
    {
        var client = gateway.Fhir(TestAuthenticationHandler.Describe("other-" + kind, kind, "750000077", "system/*.rs"));
        foreach (var url in new[] { "$export", "Patient/$export" })
        {
            var response = await client.SendAsync(Kickoff(url));
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
    }

    [Fact]
    public async Task A_bad_output_format_or_type_filter_is_400()
    {
        Assert.Equal(HttpStatusCode.BadRequest, (await _usmp.SendAsync(Kickoff("$export?_outputFormat=text/csv"))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _usmp.SendAsync(Kickoff("$export?_type=MedicationRequest&_typeFilter=MedicationRequest%3Fnot-a-parameter%3Dx"))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _usmp.SendAsync(Kickoff("$export?_type=NotAType"))).StatusCode);
    }

    [Fact]
    public async Task A_csapa_exports_what_its_consent_permits_and_another_csapa_nothing_of_it()
    {
        var (patient, request) = await PatientWithPrescriptionAsync();
        await _usmp.CreateAsync(TestConsents.Permit(patient, CsapaA, "MedicationRequest", "Patient"));

        var a = await ExportAsync(Csapa(CsapaA, "csapa-a-export"), "Patient/$export?_type=MedicationRequest,Patient&_outputFormat=application/fhir%2Bndjson");
        Assert.Contains(("MedicationRequest", request), a.Lines);
        Assert.True(a.Manifest.GetProperty("requiresAccessToken").GetBoolean());
        Assert.Contains("Patient/$export", a.Manifest.GetProperty("request").GetString());

        var b = await ExportAsync(Csapa(CsapaB, "csapa-b-export"), "Patient/$export?_type=MedicationRequest,Patient");
        Assert.DoesNotContain(b.Lines, l => l.Id == request || l.Id == patient);

        // The files are the kicking-off client's only.
        var url = a.Manifest.GetProperty("output")[0].GetProperty("url").GetString()!;
        Assert.Equal(HttpStatusCode.NotFound, (await Csapa(CsapaB, "csapa-b-export").GetAsync(url)).StatusCode);
    }

    [Fact]
    public async Task The_export_is_audited_naming_its_patients()
    {
        var (patient, _) = await PatientWithPrescriptionAsync();
        await _usmp.CreateAsync(TestConsents.Permit(patient, CsapaA, "MedicationRequest"));
        await ExportAsync(Csapa(CsapaA, "csapa-a-audited"), "$export?_type=MedicationRequest");

        var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("auditor-export", ActorKind.Auditor, null, "system/AuditEvent.rs system/Patient.rs"));
        var events = await auditor.SearchAsync($"AuditEvent?patient=Patient/{patient}&_count=100");
        var exports = events.Entry.Select(e => e.Resource).OfType<AuditEvent>()
            .Where(e => e.Agent.Any(a => a.Who?.Identifier?.Value == "csapa-a-audited") && e.Entity.Any(x => x.What?.Reference == "Patient/" + patient))
            .ToList();
        Assert.NotEmpty(exports);
    }

    [Fact]
    public async Task Since_and_type_narrow_the_export()
    {
        var (patient, before) = await PatientWithPrescriptionAsync();
        await Task.Delay(50);
        var since = DateTimeOffset.UtcNow;
        await Task.Delay(50);
        var after = (await _usmp.CreateAsync(Plain(patient))).Id!;

        var export = await ExportAsync(_usmp, $"$export?_type=MedicationRequest&_since={Uri.EscapeDataString(since.ToString("yyyy-MM-ddTHH:mm:ss.fffZ"))}");
        Assert.Contains(("MedicationRequest", after), export.Lines);
        Assert.DoesNotContain(("MedicationRequest", before), export.Lines);
        Assert.All(export.Lines, l => Assert.Equal("MedicationRequest", l.Type));
    }

    [Fact]
    public async Task Delete_cancels_and_the_status_is_then_404()
    {
        await PatientWithPrescriptionAsync();
        var kickoff = await _usmp.SendAsync(Kickoff("$export"));
        Assert.Equal(HttpStatusCode.Accepted, kickoff.StatusCode);
        var status = kickoff.Content.Headers.ContentLocation!.ToString();
        Assert.Equal(HttpStatusCode.Accepted, (await _usmp.DeleteAsync(status)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _usmp.GetAsync(status)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _usmp.DeleteAsync(status)).StatusCode);
    }

    [Fact]
    public async Task A_job_whose_node_died_is_finished_by_another_attempt_without_the_half_file()
    {
        var (_, request) = await PatientWithPrescriptionAsync();
        var services = gateway.Services;
        var jobs = services.GetRequiredService<ExportJobs>();
        var now = DateTimeOffset.UtcNow;
        var caller = new Caller("usmp-test", ActorKind.Usmp, "750000010", ["system/*.cruds"], null, null);
        var spec = new ExportSpec(caller, ExportLevel.System, null, ["MedicationRequest"], null, new Dictionary<string, List<List<KeyValuePair<string, string>>>>(),
            [], "http://localhost/fhir/$export?_type=MedicationRequest", "http://localhost/fhir", "_type=MedicationRequest");
        // A node claimed it (attempt 1), wrote half a file, and died: its lease runs out in a moment.
        var id = Guid.NewGuid().ToString("N");
        await jobs.CreateAsync(new ExportJob(id, "usmp-test", spec, ExportStatus.Running, now, "killed-node", now.AddMilliseconds(1500), 1, "MedicationRequest: 1 resources",
            now, null, null, null), CancellationToken.None);
        var dialect = services.GetRequiredService<StorageDialect>();
        await using (var unit = await dialect.BeginWriteAsync(CancellationToken.None))
        {
            await using var insert = Sql.Command(unit.Connection, unit.Transaction, "INSERT INTO export_chunks (job_id, file_no, chunk_no, data) VALUES (@j, 0, 0, @d)")
                .With("@j", id).With("@d", "{\"resourceType\":\"MedicationRequest\",\"id\":\"half-written\"}\n{\"resourceType\":\"Medic"u8.ToArray());
            await insert.ExecuteNonQueryAsync();
            await unit.CommitAsync(CancellationToken.None);
        }

        var status = await _usmp.GetAsync("$export-status/" + id);
        Assert.Equal(HttpStatusCode.Accepted, status.StatusCode); // never the half file as complete
        var done = await CompletedAsync(_usmp, "$export-status/" + id);
        Assert.Contains(("MedicationRequest", request), done.Lines);
        Assert.DoesNotContain(done.Lines, l => l.Id == "half-written");
        var job = await jobs.FindAsync(id, "usmp-test", CancellationToken.None);
        Assert.Equal(2, job!.Attempts);
    }

    [Fact]
    public async Task A_group_export_holds_its_members_data_the_caller_may_see_and_nothing_else()
    {
        var (seen, seenRequest) = await PatientWithPrescriptionAsync();
        var (hidden, hiddenRequest) = await PatientWithPrescriptionAsync();
        var (outsider, outsiderRequest) = await PatientWithPrescriptionAsync();
        // One member lets CSAPA A see her prescriptions, the other nothing (a Group is outside the Patient compartment:
        // any care actor with Group.rs reads it). The outsider permits everything but is not a member.
        await _usmp.CreateAsync(TestConsents.Permit(seen, CsapaA, "MedicationRequest", "Patient"));
        await _usmp.CreateAsync(TestConsents.Permit(outsider, CsapaA, "MedicationRequest", "Patient"));
        var group = (await _usmp.CreateAsync(new Group
        {
            Type = Group.GroupType.Person, Actual = true,
            Member = [new Group.MemberComponent { Entity = new ResourceReference("Patient/" + seen) }, new Group.MemberComponent { Entity = new ResourceReference("Patient/" + hidden) }],
        })).Id!;

        var csapa = await ExportAsync(Csapa(CsapaA, "csapa-a-group"), $"Group/{group}/$export?_type=MedicationRequest,Patient");
        Assert.Contains(("MedicationRequest", seenRequest), csapa.Lines);
        Assert.Contains(("Patient", seen), csapa.Lines);
        Assert.DoesNotContain(csapa.Lines, l => l.Id == hidden || l.Id == hiddenRequest);
        Assert.DoesNotContain(csapa.Lines, l => l.Id == outsider || l.Id == outsiderRequest);
        Assert.Contains($"Group/{group}/$export", csapa.Manifest.GetProperty("request").GetString());

        // The USMP sees both members, still not the outsider.
        var usmp = await ExportAsync(_usmp, $"Group/{group}/$export?_type=MedicationRequest");
        Assert.Contains(("MedicationRequest", seenRequest), usmp.Lines);
        Assert.Contains(("MedicationRequest", hiddenRequest), usmp.Lines);
        Assert.DoesNotContain(usmp.Lines, l => l.Id == outsiderRequest);
        Assert.All(usmp.Lines, l => Assert.Equal("MedicationRequest", l.Type));
    }

    [Fact]
    public async Task A_group_export_of_an_unknown_group_is_404_and_without_read_on_Group_403()
    {
        var (member, _) = await PatientWithPrescriptionAsync();
        var group = (await _usmp.CreateAsync(new Group
        {
            Type = Group.GroupType.Person, Actual = true, Member = [new Group.MemberComponent { Entity = new ResourceReference("Patient/" + member) }],
        })).Id!;
        var unknown = await _usmp.SendAsync(Kickoff("Group/no-such-group/$export"));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("OperationOutcome", await unknown.Content.ReadAsStringAsync());
        var withoutGroup = gateway.Fhir(TestAuthenticationHandler.Describe("csapa-a-no-group", ActorKind.Csapa, CsapaA, "system/Patient.rs system/MedicationRequest.rs"));
        Assert.Equal(HttpStatusCode.Forbidden, (await withoutGroup.SendAsync(Kickoff($"Group/{group}/$export"))).StatusCode);
    }

    [Fact]
    public async Task Type_filters_narrow_each_type_and_several_are_alternatives()
    {
        var (patient, active) = await PatientWithPrescriptionAsync();
        var stopped = Plain(patient);
        stopped.Status = MedicationRequest.MedicationrequestStatus.Stopped;
        var stoppedId = (await _usmp.CreateAsync(stopped)).Id!;
        var draft = Plain(patient);
        draft.Status = MedicationRequest.MedicationrequestStatus.Draft;
        var draftId = (await _usmp.CreateAsync(draft)).Id!;

        var one = await ExportAsync(_usmp, $"$export?_type=MedicationRequest,Patient&_typeFilter={Uri.EscapeDataString($"MedicationRequest?status=active&subject=Patient/{patient}")}");
        Assert.Contains(("MedicationRequest", active), one.Lines);
        Assert.DoesNotContain(one.Lines, l => l.Id == stoppedId || l.Id == draftId);
        Assert.Contains(("Patient", patient), one.Lines); // a type without a filter is exported whole

        var either = await ExportAsync(_usmp, "$export?_type=MedicationRequest"
            + $"&_typeFilter={Uri.EscapeDataString($"MedicationRequest?status=active&subject=Patient/{patient}")}"
            + $"&_typeFilter={Uri.EscapeDataString($"MedicationRequest?status=stopped&subject=Patient/{patient}")}");
        Assert.Contains(("MedicationRequest", active), either.Lines);
        Assert.Contains(("MedicationRequest", stoppedId), either.Lines);
        Assert.DoesNotContain(either.Lines, l => l.Id == draftId);
    }

    [Fact]
    public async Task Another_clients_token_cannot_fetch_the_files_nor_the_status_and_the_attempt_is_audited()
    {
        var (patient, request) = await PatientWithPrescriptionAsync();
        var export = await ExportAsync(_usmp, "$export?_type=MedicationRequest");
        Assert.Contains(("MedicationRequest", request), export.Lines);
        var file = new Uri(export.Manifest.GetProperty("output")[0].GetProperty("url").GetString()!);
        var status = "$export-status/" + file.Segments[^2].TrimEnd('/');

        var other = Csapa(CsapaA, "csapa-a-snooping");
        var refused = await other.GetAsync(file);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        Assert.DoesNotContain(request, await refused.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync(status)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync(status)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _usmp.GetAsync(file)).StatusCode); // still there for its own client

        var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("auditor-export-files", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        var events = await auditor.SearchAsync("AuditEvent?agent:identifier=" + Uri.EscapeDataString(Server.Audit.AuditRecords.ClientIds + "|csapa-a-snooping") + "&_count=50");
        var fileFetch = events.Entry.Select(e => e.Resource).OfType<AuditEvent>()
            .Single(e => e.Entity.Any(x => x.What?.Reference == file.AbsolutePath["/fhir/".Length..]));
        Assert.NotEqual(AuditEvent.AuditEventOutcome.N0, fileFetch.Outcome);
        Assert.DoesNotContain(fileFetch.Entity, x => x.What?.Reference == "Patient/" + patient);
    }

    [Fact]
    public async Task The_capability_statement_instantiates_bulk_data_and_lists_export()
    {
        var statement = await (await _usmp.GetAsync("metadata")).ReadAs<CapabilityStatement>();
        Assert.Contains(ExportKickoff.BulkDataCapabilities, statement.Instantiates);
        Assert.Contains(statement.Rest[0].Operation, o => o.Name == "export" && o.Definition == ExportKickoff.SystemDefinition);
        Assert.Contains(statement.Rest[0].Resource.Single(r => r.Type == "Group").Operation, o => o.Name == "export");
    }
}

public sealed class SqliteBulkExportTests(SqliteGateway gateway) : BulkExportTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresBulkExportTests(PostgresGateway gateway) : BulkExportTests(gateway), IClassFixture<PostgresGateway>;
