#nullable disable warnings
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// AuditEvents served from the append-only audit store (Audit/AuditStore.cs, AuditSearch.cs): each search parameter
/// and its prefixes or modifiers, the result parameters, keyset paging while records keep arriving, read = search,
/// what is refused (writes, _include, chains, unknown parameters under strict handling) and the CapabilityStatement.
/// </summary>
public abstract class AuditStoreTests(Gateway gateway)
{
    private const string ClientIds = "https://fhirsortie.fr/fhir/sid/client-id";
    private const string Finess = "https://finess.esante.gouv.fr";
    private readonly HttpClient _fhir = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-store", ActorKind.Auditor, null, "system/AuditEvent.rs system/Patient.rs"));

    /// <summary>
    /// A patient, then: a USMP read (with a practitioner user), a CSAPA read refused (hidden: 404), and a USMP search naming the
    /// patient. Returns the patient id and the AuditEvents of that patient, oldest first.
    /// </summary>
    private async Task<(string Patient, string UsmpClient, List<AuditEvent> Audits)> ScenarioAsync()
    {
        var run = NewRun();
        var patient = await _fhir.CreateAsync(new Patient { Meta = Tagged(run), Name = [new HumanName { Family = "Store" }] });
        var usmpClient = "usmp-" + run;
        var usmp = gateway.Fhir(TestAuthenticationHandler.Describe(usmpClient, ActorKind.Usmp, "750000010", "system/*.rs") + ";fhirUser=Practitioner/pr-" + run);
        Assert.Equal(HttpStatusCode.OK, (await usmp.GetAsync($"Patient/{patient.Id}")).StatusCode);
        var csapa = gateway.Fhir(TestAuthenticationHandler.Describe("csapa-" + run, ActorKind.Csapa, "750000028", "system/*.rs"));
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"Patient/{patient.Id}")).StatusCode); // hidden: 404
        Assert.Equal(HttpStatusCode.OK, (await usmp.GetAsync($"Observation?patient={patient.Id}")).StatusCode);
        var audits = (await _auditor.SearchAsync($"AuditEvent?patient={patient.Id}&_count=100")).Entry.Select(e => (AuditEvent)e.Resource)
            .Where(a => a.Agent[0].Who.Identifier.Value != "dpo-store").ToList();
        Assert.Equal(["create", "read", "read", "search-type"], audits.Select(a => a.Subtype.Single().Code).ToArray());
        return (patient.Id, usmpClient, audits);
    }

    /// <summary>
    /// The ids found, leaving out the auditor's own searches: a search naming a patient is audited with that patient,
    /// so each of the auditor's searches adds a record the next one finds.
    /// </summary>
    private async Task<List<string>> FoundAsync(string query) => NotTheAuditors(await _auditor.SearchAsync($"AuditEvent?{query}&_count=100"));

    private static List<string> NotTheAuditors(Bundle bundle) =>
        bundle.Entry.Where(e => e.Search?.Mode == Bundle.SearchEntryMode.Match && ((AuditEvent)e.Resource).Agent[0].Who.Identifier.Value != "dpo-store")
            .Select(e => e.Resource.Id).ToList();

    [Fact]
    public async Task A_reads_audit_record_is_durable_when_the_response_arrives_and_found_at_once()
    {
        var patient = await _fhir.CreateAsync(new Patient { Meta = Tagged(NewRun()), Name = [new HumanName { Family = "Durable" }] });
        Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
        // On other connections as soon as the response is here: committed (in the store, or on SQLite in the audit
        // journal on its way there), not waiting in memory.
        var dialect = gateway.Services.GetRequiredService<StorageDialect>();
        Assert.Equal(2, (await DurableAuditRecords.WithKeyAsync(dialect, "patient", patient.Id)).Count);
        Assert.Equal(2, (await FoundAsync($"patient={patient.Id}")).Count);
    }

    [Fact]
    public async Task Each_reference_and_token_parameter_finds_exactly_its_records()
    {
        var (patient, usmpClient, audits) = await ScenarioAsync();
        var (create, read, refused, search) = (audits[0].Id, audits[1].Id, audits[2].Id, audits[3].Id);
        var all = new[] { create, read, refused, search };

        Assert.Equal(all, await FoundAsync($"patient=Patient/{patient}"));
        Assert.Equal(all, await FoundAsync($"patient:Patient={patient}"));
        Assert.Empty(await FoundAsync($"patient=Group/{patient}"));
        // entity: the resources named (a create names the version it wrote).
        Assert.Equal([read, refused], await FoundAsync($"entity=Patient/{patient}&subtype=read"));
        Assert.Equal(all, await FoundAsync($"entity={patient}"));
        Assert.Equal([create], await FoundAsync($"entity=Patient/{patient}&action=C"));
        Assert.Empty(await FoundAsync($"entity:Observation={patient}"));
        // agent: the user reference; agent:identifier: the client id or the organisation's FINESS.
        Assert.Equal([read, search], await FoundAsync($"patient={patient}&agent=Practitioner/pr-{usmpClient[5..]}"));
        Assert.Equal([read, search], await FoundAsync($"patient={patient}&agent:identifier={ClientIds}|{usmpClient}"));
        Assert.Equal([read, search], await FoundAsync($"agent:identifier={usmpClient}"));
        Assert.Equal([refused], await FoundAsync($"patient={patient}&agent:identifier={Finess}|750000028"));
        Assert.Empty(await FoundAsync($"patient={patient}&agent:identifier={Finess}|{usmpClient}"));
        // Tokens, with comma = OR and :not.
        Assert.Equal([refused], await FoundAsync($"patient={patient}&outcome=4"));
        Assert.Equal([create, read, search], await FoundAsync($"patient={patient}&outcome:not=4"));
        Assert.Equal([read, refused, search], await FoundAsync($"patient={patient}&action=R"));
        Assert.Equal(all, await FoundAsync($"patient={patient}&action=C,R"));
        Assert.Equal([search], await FoundAsync($"patient={patient}&subtype=http://hl7.org/fhir/restful-interaction|search-type"));
        Assert.Empty(await FoundAsync($"patient={patient}&subtype=http://example.org|read"));
        Assert.Equal(all, await FoundAsync($"patient={patient}&type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest"));
        Assert.Empty(await FoundAsync($"patient={patient}&type=other"));
        Assert.Equal([read, search], await FoundAsync($"_id={read},{search}"));
        Assert.Equal([read], await FoundAsync($"_id={read},{search}&subtype=read"));
    }

    [Fact]
    public async Task Date_and_lastUpdated_take_every_prefix()
    {
        var (patient, _, audits) = await ScenarioAsync();
        var ids = audits.Select(a => a.Id).ToList();
        var first = audits[0].Recorded.Value;
        var last = audits[^1].Recorded.Value;
        string At(DateTimeOffset t) => Uri.EscapeDataString(t.ToString("yyyy-MM-ddTHH:mm:ss.fffzzz", CultureInfo.InvariantCulture));
        var before = first.AddSeconds(-1);
        var after = last.AddSeconds(1);
        Assert.Equal(ids, await FoundAsync($"patient={patient}&date=ge{At(before)}"));
        Assert.Equal(ids, await FoundAsync($"patient={patient}&date=gt{At(before)}&date=lt{At(after)}"));
        Assert.Equal(ids, await FoundAsync($"patient={patient}&date=le{At(after)}"));
        Assert.Empty(await FoundAsync($"patient={patient}&date=lt{At(before)}"));
        Assert.Empty(await FoundAsync($"patient={patient}&date=sa{At(after)}"));
        Assert.Equal(ids, await FoundAsync($"patient={patient}&date=sa{At(before)}"));
        Assert.Equal(ids, await FoundAsync($"patient={patient}&date=eb{At(after)}"));
        Assert.Equal([ids[0]], await FoundAsync($"patient={patient}&date=eq{At(first)}&_id={ids[0]}"));
        Assert.Equal(ids, await FoundAsync($"patient={patient}&date={first.UtcDateTime:yyyy}"));
        Assert.Empty(await FoundAsync($"patient={patient}&date=ne{first.UtcDateTime:yyyy}"));
        Assert.Equal(ids, await FoundAsync($"patient={patient}&date=ap{At(first)}"));
        Assert.Equal(ids, await FoundAsync($"patient={patient}&_lastUpdated=ge{At(before)}"));
        Assert.Empty(await FoundAsync($"patient={patient}&_lastUpdated=gt{At(after)}"));
        await _auditor.SearchFailsAsync($"AuditEvent?date=xx2024", HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Sort_count_total_summary_and_elements_shape_the_answer()
    {
        var (patient, _, audits) = await ScenarioAsync();
        var ids = audits.Select(a => a.Id).ToList();
        patient += "&_id=" + string.Join(',', ids); // the scenario's records only, not the auditor's searches
        Assert.Equal(ids.AsEnumerable().Reverse(), await FoundAsync($"patient={patient}&_sort=-date"));
        Assert.Equal(ids, await FoundAsync($"patient={patient}&_sort=date"));
        Assert.Equal(ids.AsEnumerable().Reverse(), await FoundAsync($"patient={patient}&_sort=-_lastUpdated"));

        var counted = await _auditor.SearchAsync($"AuditEvent?patient={patient}&_summary=count");
        Assert.Equal(4, counted.Total);
        Assert.Empty(counted.Entry);
        var page = await _auditor.SearchAsync($"AuditEvent?patient={patient}&_count=2");
        Assert.Equal(4, page.Total);
        Assert.Equal(2, page.Entry.Count);
        Assert.Null((await _auditor.SearchAsync($"AuditEvent?patient={patient}&_total=none")).Total);
        var zero = await _auditor.SearchAsync($"AuditEvent?patient={patient}&_count=0");
        Assert.Equal(4, zero.Total);
        Assert.Empty(zero.Entry);

        // _elements as the generic search applies it (the SDK's filter; the entries are subsetted, not valid AuditEvents).
        using var elements = JsonDocument.Parse(await (await _auditor.GetAsync($"AuditEvent?patient={patient}&_elements=outcome")).Content.ReadAsStringAsync());
        var shaped = elements.RootElement.GetProperty("entry")[0].GetProperty("resource");
        Assert.Equal("0", shaped.GetProperty("outcome").GetString());
        Assert.False(shaped.TryGetProperty("entity", out _));
        Assert.Contains("SUBSETTED", shaped.GetProperty("meta").GetRawText(), StringComparison.Ordinal);
        using var summarised = JsonDocument.Parse(await (await _auditor.GetAsync($"AuditEvent?patient={patient}&_summary=true")).Content.ReadAsStringAsync());
        Assert.Equal(4, summarised.RootElement.GetProperty("entry").GetArrayLength());
        await _auditor.SearchFailsAsync($"AuditEvent?patient={patient}&_sort=outcome", HttpStatusCode.BadRequest);
        await _auditor.SearchFailsAsync($"AuditEvent?patient={patient}&_total=maybe", HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Paging_follows_a_cursor_that_records_arriving_meanwhile_never_shift()
    {
        var patient = await _fhir.CreateAsync(new Patient { Meta = Tagged(NewRun()), Name = [new HumanName { Family = "Pages" }] });
        for (var i = 0; i < 6; i++) Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
        var expected = await FoundAsync($"patient={patient.Id}");
        Assert.Equal(7, expected.Count);

        foreach (var sort in new[] { "date", "-date" })
        {
            var seen = new List<string>();
            var page = await _auditor.SearchAsync($"AuditEvent?patient={patient.Id}&_count=3&_sort={sort}");
            Assert.True(page.Total >= 7);
            Assert.Null(page.Link("previous"));
            while (true)
            {
                seen.AddRange(NotTheAuditors(page));
                // More records of this patient arrive while the auditor pages (their own searches are not about the patient).
                Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
                if (page.Link("next") is not { } next) break;
                Assert.Contains("_cursor=", next, StringComparison.Ordinal);
                page = await _auditor.SearchAsync(SearchHttp.Relative(next));
                Assert.NotNull(page.Link("first"));
            }
            Assert.Equal(seen.Count, seen.Distinct().Count());
            if (sort == "date")
            {
                // Oldest first: the first 7 are the ones there at the start, in order; later arrivals follow them.
                Assert.Equal(expected, seen.Take(7));
            }
            else
            {
                // Newest first from the start instant: exactly what was there, newest first, nothing twice, nothing later.
                Assert.Equal(Enumerable.Reverse(expected).ToList(), seen);
            }
            expected = await FoundAsync($"patient={patient.Id}&_count=1000");
        }
        await _auditor.SearchFailsAsync($"AuditEvent?patient={patient.Id}&_cursor=abc", HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Previous_links_walk_back_through_the_same_pages()
    {
        var patient = await _fhir.CreateAsync(new Patient { Meta = Tagged(NewRun()), Name = [new HumanName { Family = "Backwards" }] });
        for (var i = 0; i < 7; i++) Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);

        foreach (var sort in new[] { "date", "-date" })
        {
            var forward = new List<List<string>>();
            var page = await _auditor.SearchAsync($"AuditEvent?patient={patient.Id}&_count=3&_sort={sort}");
            Assert.Null(page.Link("previous"));
            while (true)
            {
                forward.Add(page.Entry.Select(e => e.Resource.Id).ToList());
                if (page.Link("next") is not { } next) break;
                page = await _auditor.SearchAsync(SearchHttp.Relative(next));
                Assert.NotNull(page.Link("previous"));
            }
            Assert.True(forward.Count >= 3, $"{forward.Count} pages");

            // From the last page back: the same pages, each with the entries and order it had going forwards, and a
            // next link that leads forwards again.
            for (var back = forward.Count - 2; back >= 0; back--)
            {
                var previous = page.Link("previous");
                Assert.NotNull(previous);
                Assert.Contains("_cursor=b", previous, StringComparison.Ordinal);
                page = await _auditor.SearchAsync(SearchHttp.Relative(previous));
                Assert.Equal(forward[back], page.Entry.Select(e => e.Resource.Id).ToList());
                Assert.NotNull(page.Link("first"));
                var again = await _auditor.SearchAsync(SearchHttp.Relative(page.Link("next")!));
                // (The last page may have grown since, oldest first: the auditor's own searches come after it.)
                Assert.Equal(forward[back + 1], again.Entry.Select(e => e.Resource.Id).Take(forward[back + 1].Count).ToList());
            }
            // Oldest first, nothing comes before the first page. Newest first, the auditor's own searches of this
            // patient arrived meanwhile, and are newer than what the first page held.
            if (sort == "date") Assert.Null(page.Link("previous"));
        }
    }

    [Fact]
    public async Task An_AuditEvent_read_by_id_is_byte_for_byte_what_the_search_returns()
    {
        var (patient, _, audits) = await ScenarioAsync();
        using var searched = await _auditor.GetAsync($"AuditEvent?patient={patient}");
        using var document = JsonDocument.Parse(await searched.Content.ReadAsStringAsync());
        foreach (var entry in document.RootElement.GetProperty("entry").EnumerateArray())
        {
            var resource = entry.GetProperty("resource");
            var id = resource.GetProperty("id").GetString();
            using var read = await _auditor.GetAsync($"AuditEvent/{id}");
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            Assert.Equal(resource.GetRawText(), await read.Content.ReadAsStringAsync());
            Assert.Equal("W/\"1\"", read.Headers.ETag?.ToString());
            using var vread = await _auditor.GetAsync($"AuditEvent/{id}/_history/1");
            Assert.Equal(resource.GetRawText(), await vread.Content.ReadAsStringAsync());
            Assert.Equal(HttpStatusCode.NotFound, (await _auditor.GetAsync($"AuditEvent/{id}/_history/2")).StatusCode);
            var history = await (await _auditor.GetAsync($"AuditEvent/{id}/_history")).ReadAs<Bundle>();
            Assert.Equal(Bundle.BundleType.History, history.Type);
            Assert.Equal(id, Assert.Single(history.Entry).Resource.Id);
            // Version 1, last updated when it was recorded.
            if (audits.SingleOrDefault(a => a.Id == id) is not { } audit) continue; // one of the auditor's own searches
            Assert.Equal("1", audit.Meta.VersionId);
            Assert.Equal(audit.Recorded, audit.Meta.LastUpdated);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await _auditor.GetAsync($"AuditEvent/{NewRun()}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotModified, (await _auditor.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"AuditEvent/{audits[0].Id}")
        {
            Headers = { { "If-None-Match", "W/\"1\"" } },
        })).StatusCode);
        var typeHistory = await (await _auditor.GetAsync("AuditEvent/_history?_count=2")).ReadAs<Bundle>();
        Assert.Equal(2, typeHistory.Entry.Count);
        Assert.NotNull(typeHistory.Link.FirstOrDefault(l => l.Relation == "next"));
    }

    [Fact]
    public async Task Audit_history_previous_links_lead_back_to_the_pages_the_next_links_gave()
    {
        await ScenarioAsync();
        // _at keeps the records of the requests made while paging (each is audited) out of the pages compared.
        var at = Uri.EscapeDataString(DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffzzz", System.Globalization.CultureInfo.InvariantCulture));
        await Task.Delay(5);
        async Task<Bundle> PageAsync(string url) => await (await _auditor.GetAsync(url)).ReadAs<Bundle>();
        List<string> Ids(Bundle page) => page.Entry.Select(e => e.Resource.Id).ToList();

        var first = await PageAsync($"AuditEvent/_history?_count=2&_at={at}");
        Assert.Null(first.PreviousLink);
        var second = await PageAsync(first.NextLink!.ToString());
        var third = await PageAsync(second.NextLink!.ToString());
        Assert.NotEmpty(third.Entry);

        var back2 = await PageAsync(third.PreviousLink!.ToString());
        Assert.Equal(Ids(second), Ids(back2));
        var back1 = await PageAsync(back2.PreviousLink!.ToString());
        Assert.Equal(Ids(first), Ids(back1));
        Assert.Null(back1.PreviousLink);
        Assert.Equal(Ids(second), Ids(await PageAsync(back1.NextLink!.ToString())));
        Assert.Equal(HttpStatusCode.BadRequest, (await _auditor.GetAsync("AuditEvent/_history?_cursor=9&_before=3")).StatusCode);
    }

    [Theory]
    [InlineData(Bundle.BundleType.Batch)]
    [InlineData(Bundle.BundleType.Transaction)]
    public async Task Batch_and_transaction_GET_entries_read_an_AuditEvent_as_GET_AuditEvent_id_does(Bundle.BundleType kind)
    {
        var (_, _, audits) = await ScenarioAsync();
        var id = audits[0].Id;
        using var direct = await _auditor.GetAsync($"AuditEvent/{id}");
        Assert.Equal(HttpStatusCode.OK, direct.StatusCode);
        var expected = await direct.ReadAs<AuditEvent>();
        Bundle.EntryComponent Get(string url) => new() { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.GET, Url = url } };
        var response = await _auditor.PostAsync("", FhirHttp.Json(new Bundle
        {
            Type = kind,
            Entry = [Get($"AuditEvent/{id}"), Get($"AuditEvent/{id}/_history/1"), .. kind == Bundle.BundleType.Batch
                ? new[] { Get($"AuditEvent/{NewRun()}"), Get($"AuditEvent/{id}/_history/2") } : []],
        }));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var answer = await response.ReadAs<Bundle>();
        foreach (var entry in answer.Entry.Take(2))
        {
            Assert.StartsWith("200", entry.Response.Status);
            Assert.True(expected.IsExactly(entry.Resource), "the entry differs from GET AuditEvent/{id}");
        }
        foreach (var entry in answer.Entry.Skip(2)) Assert.StartsWith("404", entry.Response.Status);
    }

    [Fact]
    public async Task Unsupported_parameters_are_refused_or_ignored_as_the_generic_search_does()
    {
        var (patient, _, audits) = await ScenarioAsync();
        var strict = await _auditor.SearchFailsAsync($"AuditEvent?patient={patient}&site=x", HttpStatusCode.BadRequest, "handling=strict");
        Assert.Contains("site", strict.Issue[0].Diagnostics, StringComparison.Ordinal);
        await _auditor.SearchFailsAsync($"AuditEvent?patient={patient}&patient:missing=true", HttpStatusCode.BadRequest, "handling=strict");
        var lenient = await _auditor.SearchAsync($"AuditEvent?patient={patient}&site=x", ("Prefer", "handling=lenient"));
        Assert.Equal(audits.Select(a => a.Id), NotTheAuditors(lenient));
        Assert.DoesNotContain("site", lenient.Link("self"), StringComparison.Ordinal);
        // Never served on the audit store, whatever the handling.
        foreach (var query in new[] { "_include=AuditEvent:patient", "_revinclude=AuditEvent:entity", "patient.name=Store", "_has:AuditEvent:entity:outcome=4" })
        {
            var outcome = await _auditor.SearchFailsAsync($"AuditEvent?patient={patient}&{query}", HttpStatusCode.BadRequest);
            Assert.Equal(OperationOutcome.IssueType.NotSupported, outcome.Issue[0].Code);
        }
    }

    [Fact]
    public async Task Only_auditors_search_and_no_client_writes_an_AuditEvent()
    {
        var (patient, _, audits) = await ScenarioAsync();
        var usmp = gateway.Fhir(TestAuthenticationHandler.Describe("usmp-nosy", ActorKind.Usmp, "750000010", "system/*.cruds"));
        Assert.Equal(HttpStatusCode.Forbidden, (await usmp.GetAsync($"AuditEvent?patient={patient}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await usmp.GetAsync($"AuditEvent/{audits[0].Id}")).StatusCode);
        // AuditEvents are in no answer of a care client: not in $everything, not in a system search.
        var everything = await _fhir.SearchAsync($"Patient/{patient}/$everything");
        Assert.DoesNotContain(everything.Entry, e => e.Resource is AuditEvent);
        Assert.DoesNotContain((await _fhir.SearchAsync($"?_id={audits[0].Id},{patient}")).Entry, e => e.Resource is AuditEvent);

        var forged = new AuditEvent
        {
            Type = new Coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest"),
            Recorded = DateTimeOffset.UtcNow,
            Agent = [new AuditEvent.AgentComponent { Who = new ResourceReference { Display = "forger" }, Requestor = true }],
            Source = new AuditEvent.SourceComponent { Observer = new ResourceReference { Display = "forger" } },
        };
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await _fhir.PostAsync("AuditEvent", FhirHttp.Json(forged))).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await _fhir.PutAsync($"AuditEvent/{NewRun()}", FhirHttp.Json(forged))).StatusCode);
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        bundle.Entry.Add(new Bundle.EntryComponent { Resource = forged, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "AuditEvent" } });
        var transaction = await _fhir.PostAsync("", FhirHttp.Json(bundle));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, transaction.StatusCode);
        // The compartment search of an auditor is the patient search.
        // (Oldest first: the scenario's four, then what this test did since, such as the refused AuditEvent searches.)
        Assert.Equal(audits.Select(a => a.Id), NotTheAuditors(await _auditor.SearchAsync($"Patient/{patient}/AuditEvent?_count=100")).Take(audits.Count));
        // POST _search is served too.
        var posted = await _auditor.PostAsync("AuditEvent/_search", new FormUrlEncodedContent([new("patient", patient), new("outcome", "4"), new("agent:identifier", audits[2].Agent[0].Who.Identifier.Value)]));
        Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        Assert.Equal([audits[2].Id], (await posted.ReadAs<Bundle>()).Matches());
    }

    [Fact]
    public async Task The_capability_statement_lists_for_AuditEvent_only_what_the_audit_store_serves()
    {
        var statement = await (await _fhir.GetAsync("metadata")).ReadAs<CapabilityStatement>();
        var audit = statement.Rest[0].Resource.Single(r => r.Type == "AuditEvent");
        Assert.Equal(["history-instance", "history-type", "read", "search-type", "vread"],
            audit.Interaction.Select(i => Hl7.Fhir.Utility.EnumUtility.GetLiteral(i.Code)).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(["_id", "_lastUpdated", "action", "address", "agent", "date", "entity", "outcome", "patient", "subtype", "type"],
            audit.SearchParam.Select(p => p.Name).Order(StringComparer.Ordinal).ToArray());
        Assert.False(audit.ConditionalCreate ?? false);
    }
}

public sealed class SqliteAuditStoreTests(SqliteGateway gateway) : AuditStoreTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresAuditStoreTests(PostgresGateway gateway) : AuditStoreTests(gateway), IClassFixture<PostgresGateway>;
