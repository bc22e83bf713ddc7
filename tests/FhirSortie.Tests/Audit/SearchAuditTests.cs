using System.Net;
using System.Text;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Microsoft.Extensions.DependencyInjection;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// Issue 26: a search names on its audit row every patient it returned (Patients matched or included, and the patients
/// whose compartment holds the other resources returned), so that an identity lookup shows in AuditEvent?patient= and in
/// the person's $access-report; each page of a paged search names the patients of that page.
/// </summary>
public abstract class SearchAuditTests(Gateway gateway)
{
    private readonly HttpClient _usmp = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-search-audit", ActorKind.Auditor, null, "system/AuditEvent.rs system/Patient.rs"));

    /// <summary>A valid INS-NIR unique to the run: 13 digits and their key (97 - n mod 97).</summary>
    private static string UniqueIns()
    {
        var digits = "18002" + Random.Shared.NextInt64(10_000_000, 99_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var key = 97 - long.Parse(digits, System.Globalization.CultureInfo.InvariantCulture) % 97;
        return digits + key.ToString("D2", System.Globalization.CultureInfo.InvariantCulture);
    }

    private async Task<List<AuditEvent>> AuditsOf(string patient) =>
        (await _auditor.SearchAsync($"AuditEvent?patient=Patient/{patient}&_count=200")).Entry.Select(e => (AuditEvent)e.Resource!).ToList();

    /// <summary>The query a search's record carries (entity of role Query), or null.</summary>
    private static string? QueryOf(AuditEvent audit) =>
        audit.Entity.FirstOrDefault(e => e.Query is not null)?.Query is { } bytes ? Encoding.UTF8.GetString(bytes) : null;

    private async Task<HashSet<string>> ReportedAuditEvents(string patient)
    {
        var response = await _auditor.GetAsync($"Patient/{patient}/$access-report");
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var report = await response.ReadAs<Parameters>();
        return report.Parameter.Where(p => p.Name == "access")
            .SelectMany(a => a.Part.Where(p => p.Name == "auditEvent").Select(p => ((ResourceReference)p.Value!).Reference!))
            .ToHashSet(StringComparer.Ordinal);
    }

    [Fact]
    public async Task Each_kind_of_search_that_returns_a_patient_is_in_that_persons_audit_and_access_report()
    {
        var run = NewRun();
        var ins = UniqueIns();
        var organization = await _usmp.CreateAsync(new Organization { Meta = Tagged(run), Name = "Tracee" + run });
        var patientResource = Patient(run, ins, "Trace" + run);
        patientResource.ManagingOrganization = new ResourceReference("Organization/" + organization.Id);
        var patient = (await _usmp.CreateAsync(patientResource)).Id!;
        var prescription = (await _usmp.CreateAsync(Buprenorphine(run, patient))).Id!;

        // Each search below returns the Patient (or a resource of its compartment); the query identifies its record.
        string[] searches =
        [
            $"Patient?identifier={Ins}|{ins}",
            $"Patient?name=trace{run}",
            $"Patient?_id={patient}",
            $"Patient?organization.name=Tracee{run}",
            $"MedicationRequest?_id={prescription}&_include=MedicationRequest:subject",
            $"Organization?_id={organization.Id}&_revinclude=Patient:organization",
            $"MedicationRequest?_tag={RunTag}|{run}",
        ];
        foreach (var search in searches)
        {
            var bundle = await _usmp.SearchAsync(search);
            Assert.True(bundle.Entry.Count > 0, search);
        }
        Assert.Single((await _usmp.SearchAsync($"Patient/{patient}/MedicationRequest?status=active")).Matches());
        using (var posted = await _usmp.PostAsync("Patient/_search", new FormUrlEncodedContent([new("identifier", $"{Ins}|{ins}"), new("_count", "7")])))
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        var batch = new Bundle
        {
            Type = Bundle.BundleType.Batch,
            Entry = [new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.GET, Url = $"Patient?identifier={Ins}|{ins}&_count=3" } }],
        };
        var batchAnswer = await (await _usmp.PostAsync("", FhirHttp.Json(batch))).ReadAs<Bundle>();
        Assert.Equal([patient], Assert.IsType<Bundle>(batchAnswer.Entry.Single().Resource).Matches());

        var audits = await AuditsOf(patient);
        var reported = await ReportedAuditEvents(patient);
        string[] queries = [.. searches.Select(s => s[(s.IndexOf('?') + 1)..]), "status=active"];
        foreach (var query in queries)
        {
            var found = audits.Where(a => QueryOf(a) is { } q && Uri.UnescapeDataString(q) == Uri.UnescapeDataString(query)).ToList();
            var record = Assert.Single(found);
            Assert.Equal("search-type", record.Subtype.Single().Code);
            Assert.Contains($"AuditEvent/{record.Id}", reported);
        }
        // POST _search: its parameters are in the body, so its record has no query.
        var form = Assert.Single(audits, a => a.Subtype.Single().Code == "search-type" && QueryOf(a) is null);
        Assert.Contains($"AuditEvent/{form.Id}", reported);
        // The batch's record names the patients its GET searches returned.
        var batchRecord = Assert.Single(audits, a => a.Subtype.Single().Code == "transaction");
        Assert.Contains($"AuditEvent/{batchRecord.Id}", reported);
    }

    [Fact]
    public async Task A_resource_of_two_patients_names_both_and_each_page_names_its_own_patients()
    {
        var run = NewRun();
        var first = (await _usmp.CreateAsync(Patient(run, UniqueIns(), "Pages" + run))).Id!;
        var second = (await _usmp.CreateAsync(Patient(run, UniqueIns(), "Pages" + run))).Id!;
        // An Observation in both compartments (subject one, performer the other), found through $everything of the first.
        var observation = await _usmp.CreateAsync(new Observation
        {
            Meta = Tagged(run), Status = ObservationStatus.Final, Code = new CodeableConcept(Loinc, "29463-7"),
            Subject = new ResourceReference("Patient/" + first), Performer = [new ResourceReference("Patient/" + second)],
        });
        var everything = await _usmp.SearchAsync($"Patient/{first}/$everything");
        Assert.Contains(observation.Id, everything.Matches());
        var everythingRecord = Assert.Single(await AuditsOf(second), a => a.Subtype.Single().Code == "operation");
        Assert.Contains($"AuditEvent/{everythingRecord.Id}", await ReportedAuditEvents(second));

        // Two pages of one Patient each: each page's record names the patient it returned, not the other.
        var page1 = await _usmp.SearchAsync($"Patient?name=pages{run}&_count=1&_sort=_id");
        var page2 = await _usmp.SearchAsync(SearchHttp.Relative(page1.Link("next")!));
        var shown1 = Assert.Single(page1.Matches());
        var shown2 = Assert.Single(page2.Matches());
        Assert.Equal(new[] { first, second }.Order(), new[] { shown1, shown2 }.Order());
        var pages1 = (await AuditsOf(shown1)).Where(a => QueryOf(a) is { } q && (q.Contains("_getpages", StringComparison.Ordinal) || q.Contains($"pages{run}", StringComparison.Ordinal))).ToList();
        var pages2 = (await AuditsOf(shown2)).Where(a => QueryOf(a) is { } q && (q.Contains("_getpages", StringComparison.Ordinal) || q.Contains($"pages{run}", StringComparison.Ordinal))).ToList();
        Assert.Contains($"name=pages{run}", QueryOf(Assert.Single(pages1)), StringComparison.Ordinal);
        Assert.Contains("_getpages=", QueryOf(Assert.Single(pages2)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Records_naming_hundreds_of_patients_each_are_stored_in_one_batch()
    {
        // 40 records of 500 patients each: about 120,000 values, more than one statement may bind on either database.
        var run = NewRun();
        var entries = Enumerable.Range(0, 40).Select(i =>
        {
            var entry = new FhirSortie.Server.Audit.AuditEntry { Id = Guid.NewGuid().ToString(), Recorded = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), Interaction = "search-type", Status = 200, ClientId = "many-" + run };
            entry.Patients.AddRange(Enumerable.Range(0, 500).Select(p => $"many-{run}-{i}-{p}"));
            return entry;
        }).ToList();
        var dialect = gateway.Services.GetRequiredService<FhirSortie.Server.Storage.StorageDialect>();
        await using (var unit = await dialect.BeginWriteAsync(CancellationToken.None))
        {
            await FhirSortie.Server.Audit.AuditStore.AppendAsync(unit.Connection, unit.Transaction, entries, CancellationToken.None);
            await unit.CommitAsync(CancellationToken.None);
        }
        Assert.Equal(entries[39].Id, Assert.Single(await AuditsOf($"many-{run}-39-499")).Id);
        Assert.Equal(entries[0].Id, Assert.Single(await AuditsOf($"many-{run}-0-0")).Id);
    }
}

public sealed class SqliteSearchAuditTests(SqliteGateway gateway) : SearchAuditTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresSearchAuditTests(PostgresGateway gateway) : SearchAuditTests(gateway), IClassFixture<PostgresGateway>;
