using System.Net;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Tests.Rest;

/// <summary>transaction: POST [base] with a transaction Bundle, all or nothing, run against both dialects.</summary>
public abstract class TransactionTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();
    private const string Ins = "urn:oid:1.2.250.1.213.1.4.8";

    private static Patient NewPatient(string ins) => new()
    {
        Identifier = [new Identifier(Ins, ins)],
        Name = [new HumanName { Family = "Testsortie", Given = ["Jean"] }],
    };

    private static Bundle.EntryComponent Post(Resource resource, string? fullUrl = null, string? ifNoneExist = null) => new()
    {
        FullUrl = fullUrl,
        Resource = resource,
        Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = resource.TypeName, IfNoneExist = ifNoneExist },
    };

    private static Bundle.EntryComponent Put(Resource resource, string url, string? ifMatch = null) => new()
    {
        Resource = resource,
        Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PUT, Url = url, IfMatch = ifMatch },
    };

    private static Bundle.EntryComponent Request(Bundle.HTTPVerb method, string url) => new()
    {
        Request = new Bundle.RequestComponent { Method = method, Url = url },
    };

    private static Bundle Transaction(params Bundle.EntryComponent[] entries) => new() { Type = Bundle.BundleType.Transaction, Entry = [.. entries] };

    private async Task<HttpResponseMessage> PostBundleAsync(Bundle bundle, string? prefer = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "") { Content = FhirHttp.Json(bundle) };
        if (prefer is not null) request.Headers.TryAddWithoutValidation("Prefer", prefer);
        return await _fhir.SendAsync(request);
    }

    private async Task<Bundle> SucceedAsync(Bundle bundle, string? prefer = null)
    {
        var response = await PostBundleAsync(bundle, prefer);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.ReadAs<Bundle>();
    }

    private async Task<OperationOutcome> FailAsync(Bundle bundle, HttpStatusCode status)
    {
        var response = await PostBundleAsync(bundle);
        Assert.True(response.StatusCode == status, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.ReadAs<OperationOutcome>();
    }

    private async Task<Patient> CreateAsync(Patient patient)
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(patient));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return await response.ReadAs<Patient>();
    }

    private async Task<int> CountAsync(string type, string query)
    {
        var response = await _fhir.GetAsync($"{type}?{query}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.ReadAs<Bundle>()).Entry.Count;
    }

    [Fact]
    public async Task Transaction_resolves_urn_uuid_references_everywhere_and_answers_each_entry()
    {
        var patientUrl = "urn:uuid:" + Guid.NewGuid();
        var observation = new Observation
        {
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "29463-7"),
            Subject = new ResourceReference(patientUrl),
            Contained = [new Provenance { Id = "p1", Target = [new ResourceReference(patientUrl)], Recorded = DateTimeOffset.UtcNow, Agent = [new Provenance.AgentComponent { Who = new ResourceReference(patientUrl) }] }],
            Extension = [new Extension("http://example.org/about", new ResourceReference(patientUrl))],
            Text = new Narrative { Status = Narrative.NarrativeStatus.Generated, Div = $"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"{patientUrl}\">patient</a></div>" },
        };
        var response = await SucceedAsync(Transaction(Post(observation), Post(NewPatient("180020000000001"), patientUrl)));

        Assert.Equal(Bundle.BundleType.TransactionResponse, response.Type);
        Assert.Equal(2, response.Entry.Count);
        Assert.All(response.Entry, e => Assert.Equal("201 Created", e.Response!.Status));
        Assert.All(response.Entry, e => Assert.Equal("W/\"1\"", e.Response!.Etag));
        Assert.All(response.Entry, e => Assert.NotNull(e.Response!.LastModified));
        var patient = Assert.IsType<Patient>(response.Entry[1].Resource);
        Assert.EndsWith($"/Patient/{patient.Id}/_history/1", response.Entry[1].Response!.Location);

        var stored = await (await _fhir.GetAsync(response.Entry[0].Response!.Location)).ReadAs<Observation>();
        var expected = $"Patient/{patient.Id}";
        Assert.Equal(expected, stored.Subject!.Reference);
        Assert.Equal(expected, ((ResourceReference)stored.Extension[0].Value!).Reference);
        var contained = Assert.IsType<Provenance>(stored.Contained[0]);
        Assert.Equal(expected, contained.Target[0].Reference);
        Assert.Equal(expected, contained.Agent[0].Who.Reference);
        Assert.Contains($"href=\"{expected}\"", stored.Text!.Div);
    }

    [Fact]
    public async Task Transaction_whose_last_entry_fails_writes_nothing_and_names_the_entry()
    {
        var existing = await CreateAsync(NewPatient("180020000000002"));
        existing.Gender = AdministrativeGender.Female;
        var bundle = Transaction(
            Post(NewPatient("180020000000003")),
            Request(Bundle.HTTPVerb.DELETE, $"Patient/{(await CreateAsync(NewPatient("180020000000004"))).Id}"),
            Put(existing, $"Patient/{existing.Id}", ifMatch: "W/\"7\""));

        var outcome = await FailAsync(bundle, HttpStatusCode.PreconditionFailed);

        Assert.Contains("Bundle.entry[2]", outcome.Issue[0].Expression);
        Assert.Equal(0, await CountAsync("Patient", $"identifier={Ins}|180020000000003"));
        Assert.Equal(1, await CountAsync("Patient", $"identifier={Ins}|180020000000004"));
        var unchanged = await (await _fhir.GetAsync($"Patient/{existing.Id}")).ReadAs<Patient>();
        Assert.Equal("1", unchanged.Meta!.VersionId);
        Assert.Null(unchanged.Gender);
    }

    [Fact]
    public async Task Entries_run_delete_post_put_get_and_answer_in_the_original_order()
    {
        var kept = await CreateAsync(NewPatient("180020000000005"));
        var doomed = await CreateAsync(NewPatient("180020000000006"));
        kept.Gender = AdministrativeGender.Female;
        var response = await SucceedAsync(Transaction(
            Request(Bundle.HTTPVerb.GET, $"Patient/{kept.Id}"),
            Put(kept, $"Patient/{kept.Id}"),
            Request(Bundle.HTTPVerb.DELETE, $"Patient/{doomed.Id}"),
            Post(NewPatient("180020000000007"))));

        Assert.Equal(["200 OK", "200 OK", "204 No Content", "201 Created"], response.Entry.Select(e => e.Response!.Status));
        var read = Assert.IsType<Patient>(response.Entry[0].Resource);
        Assert.Equal(AdministrativeGender.Female, read.Gender); // the GET ran after the PUT
        Assert.Equal("2", read.Meta!.VersionId);
        Assert.Equal(HttpStatusCode.Gone, (await _fhir.GetAsync($"Patient/{doomed.Id}")).StatusCode);
    }

    [Fact]
    public async Task Conditional_reference_resolves_to_the_one_match()
    {
        var patient = await CreateAsync(NewPatient("180020000000008"));
        var observation = new Observation
        {
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "29463-7"),
            Subject = new ResourceReference($"Patient?identifier={Ins}|180020000000008"),
        };
        var response = await SucceedAsync(Transaction(Post(observation)));
        Assert.Equal($"Patient/{patient.Id}", Assert.IsType<Observation>(response.Entry[0].Resource).Subject!.Reference);

        observation.Subject = new ResourceReference($"Patient?identifier={Ins}|999999999999999");
        var outcome = await FailAsync(Transaction(Post(NewPatient("180020000000009")), Post(observation)), HttpStatusCode.BadRequest);
        Assert.Contains("Bundle.entry[1]", outcome.Issue[0].Expression);
        Assert.Equal(0, await CountAsync("Patient", $"identifier={Ins}|180020000000009"));
    }

    [Fact]
    public async Task Conditional_reference_with_several_matches_is_412()
    {
        await CreateAsync(NewPatient("180020000000010"));
        await CreateAsync(NewPatient("180020000000010"));
        var observation = new Observation
        {
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "29463-7"),
            Subject = new ResourceReference($"Patient?identifier={Ins}|180020000000010"),
        };
        var outcome = await FailAsync(Transaction(Post(observation)), HttpStatusCode.PreconditionFailed);
        Assert.Equal(OperationOutcome.IssueType.MultipleMatches, outcome.Issue[0].Code);
    }

    [Fact]
    public async Task Conditional_create_that_matches_points_references_at_the_existing_resource()
    {
        var existing = await CreateAsync(NewPatient("180020000000011"));
        var patientUrl = "urn:uuid:" + Guid.NewGuid();
        var observation = new Observation { Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "29463-7"), Subject = new ResourceReference(patientUrl) };
        var response = await SucceedAsync(Transaction(
            Post(NewPatient("180020000000011"), patientUrl, $"identifier={Ins}|180020000000011"),
            Post(observation)));

        Assert.Equal("200 OK", response.Entry[0].Response!.Status);
        Assert.Equal(existing.Id, response.Entry[0].Resource!.Id);
        Assert.Equal($"Patient/{existing.Id}", Assert.IsType<Observation>(response.Entry[1].Resource).Subject!.Reference);
        Assert.Equal(1, await CountAsync("Patient", $"identifier={Ins}|180020000000011"));
    }

    [Fact]
    public async Task Entries_answer_with_exactly_the_stored_versions()
    {
        // Written entries answer with the objects just saved, matched ones with what is stored: both must be what a read gives.
        var existing = await CreateAsync(NewPatient("180020000000031"));
        var updated = (Patient)(await CreateAsync(NewPatient("180020000000033"))).DeepCopy();
        updated.Name[0].Given = ["Paul"];
        var patientUrl = "urn:uuid:" + Guid.NewGuid();
        var response = await SucceedAsync(Transaction(
            Post(NewPatient("180020000000032"), patientUrl),
            Post(NewPatient("180020000000031"), null, $"identifier={Ins}|180020000000031"),
            Post(new Observation { Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "29463-7"), Subject = new ResourceReference(patientUrl) }),
            Put(updated, $"Patient/{updated.Id}")));

        Assert.Equal(["201 Created", "200 OK", "201 Created", "200 OK"], response.Entry.Select(e => e.Response!.Status));
        foreach (var entry in response.Entry.Where(e => e.Response!.Status != "200 OK" || e.Resource!.Meta!.VersionId == "2"))
        {
            var read = await _fhir.GetAsync(entry.Response!.Location);
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            var stored = await read.ReadAs<Resource>();
            Assert.True(stored.IsExactly(entry.Resource!), $"{entry.Response.Location}: the entry's resource differs from the stored version");
        }
        Assert.Equal(existing.Id, response.Entry[1].Resource!.Id);
        Assert.Equal("Paul", ((Patient)response.Entry[3].Resource!).Name[0].Given.Single());
    }

    [Fact]
    public async Task Unresolvable_urn_uuid_reference_is_400()
    {
        var observation = new Observation { Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "29463-7"), Subject = new ResourceReference("urn:uuid:" + Guid.NewGuid()) };
        var outcome = await FailAsync(Transaction(Post(observation)), HttpStatusCode.BadRequest);
        Assert.Contains("Bundle.entry[0]", outcome.Issue[0].Expression);
    }

    [Fact]
    public async Task Same_fullUrl_twice_or_same_resource_twice_is_400()
    {
        var fullUrl = "urn:uuid:" + Guid.NewGuid();
        var outcome = await FailAsync(Transaction(Post(NewPatient("180020000000012"), fullUrl), Post(NewPatient("180020000000013"), fullUrl)), HttpStatusCode.BadRequest);
        Assert.Contains("Bundle.entry[1].fullUrl", outcome.Issue[0].Expression);

        var twice = NewPatient("180020000000014");
        twice.Id = "twice-" + Guid.NewGuid().ToString("N")[..8];
        outcome = await FailAsync(Transaction(Put(twice, $"Patient/{twice.Id}"), Put(twice, $"Patient/{twice.Id}")), HttpStatusCode.BadRequest);
        Assert.Contains("Bundle.entry[1]", outcome.Issue[0].Expression);
        Assert.Equal(HttpStatusCode.NotFound, (await _fhir.GetAsync($"Patient/{twice.Id}")).StatusCode);
    }

    [Theory]
    [InlineData("{\"resourceType\":\"Bundle\",\"type\":\"collection\"}", "collection")]
    [InlineData("{\"resourceType\":\"Bundle\",\"id\":\"b1\"}", ".type")]
    [InlineData("{\"resourceType\":\"Patient\",\"active\":true}", "Bundle")]
    [InlineData("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":{\"resourceType\":\"Patient\",\"active\":true}}]}", "request")]
    [InlineData("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"GET\",\"url\":\"Nope/1\"}}]}", "resource type")]
    [InlineData("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"POST\",\"url\":\"Patient/1\"},\"resource\":{\"resourceType\":\"Patient\",\"active\":true}}]}", "POST")]
    [InlineData("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"PUT\",\"url\":\"Patient/1\"},\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}}]}", "Observation")]
    [InlineData("{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"DELETE\",\"url\":\"Patient\"}}]}", "DELETE")]
    public async Task Bad_bundles_are_400_with_a_precise_message(string body, string mentioned)
    {
        var response = await _fhir.PostAsync("", FhirHttp.Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.True(outcome.Issue.Count > 0 && (outcome.Issue[0].Diagnostics + string.Join(' ', outcome.Issue[0].Expression)).Contains(mentioned, StringComparison.Ordinal), await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Document_bundle_is_stored_at_Bundle_and_refused_at_base()
    {
        var document = new Bundle
        {
            Type = Bundle.BundleType.Document,
            Identifier = new Identifier("urn:ietf:rfc:3986", "urn:uuid:" + Guid.NewGuid()),
            Timestamp = DateTimeOffset.UtcNow,
            Entry =
            [
                new Bundle.EntryComponent
                {
                    FullUrl = "urn:uuid:" + Guid.NewGuid(),
                    Resource = new Composition
                    {
                        Status = CompositionStatus.Final,
                        Type = new CodeableConcept("http://loinc.org", "18842-5"),
                        Date = "2026-11-23",
                        Title = "Lettre de liaison",
                        Author = [new ResourceReference { Display = "USMP" }],
                    },
                },
            ],
        };
        var atBase = await _fhir.PostAsync("", FhirHttp.Json(document));
        Assert.Equal(HttpStatusCode.BadRequest, atBase.StatusCode);
        Assert.Contains("/Bundle", (await atBase.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);

        var stored = await _fhir.PostAsync("Bundle", FhirHttp.Json(document));
        Assert.Equal(HttpStatusCode.Created, stored.StatusCode);
        var read = await (await _fhir.GetAsync(stored.Headers.Location)).ReadAs<Bundle>();
        Assert.Equal(Bundle.BundleType.Document, read.Type);
        Assert.IsType<Composition>(read.Entry[0].Resource);
    }

    [Fact]
    public async Task Prefer_minimal_omits_resources_and_OperationOutcome_fills_response_outcome()
    {
        var minimal = await SucceedAsync(Transaction(Post(NewPatient("180020000000015"))), "return=minimal");
        Assert.Null(minimal.Entry[0].Resource);
        Assert.NotNull(minimal.Entry[0].Response!.Location);

        var outcome = await SucceedAsync(Transaction(Post(NewPatient("180020000000016"))), "return=OperationOutcome");
        Assert.Null(outcome.Entry[0].Resource);
        Assert.IsType<OperationOutcome>(outcome.Entry[0].Response!.Outcome);
    }

    [Fact]
    public async Task Patch_and_search_entries_run_inside_the_transaction()
    {
        var patient = await CreateAsync(NewPatient("180020000000017"));
        var patch = new Binary
        {
            ContentType = "application/json-patch+json",
            Data = System.Text.Encoding.UTF8.GetBytes("[{\"op\":\"add\",\"path\":\"/gender\",\"value\":\"male\"}]"),
        };
        var response = await SucceedAsync(Transaction(
            Request(Bundle.HTTPVerb.GET, $"Patient?identifier={Ins}|180020000000017"),
            new Bundle.EntryComponent { Resource = patch, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PATCH, Url = $"Patient/{patient.Id}" } }));

        Assert.Equal("200 OK", response.Entry[1].Response!.Status);
        Assert.Equal("W/\"2\"", response.Entry[1].Response!.Etag);
        var search = Assert.IsType<Bundle>(response.Entry[0].Resource);
        var found = Assert.IsType<Patient>(Assert.Single(search.Entry).Resource);
        Assert.Equal(AdministrativeGender.Male, found.Gender); // the search ran after the patch
    }

    [Fact]
    public async Task Exit_package_posted_twice_creates_each_resource_once()
    {
        var json = await File.ReadAllTextAsync(ScenarioFile("exit-package-transaction.json"));
        var first = await PostJsonAsync(json);
        Assert.Equal(16, first.Entry.Count);
        Assert.All(first.Entry, e => Assert.Equal("201 Created", e.Response!.Status));

        var second = await PostJsonAsync(json);
        Assert.All(second.Entry, e => Assert.Equal("200 OK", e.Response!.Status));
        Assert.Equal(first.Entry.Select(e => e.Resource!.Id), second.Entry.Select(e => e.Resource!.Id));

        var patientId = first.Entry.Select(e => e.Resource).OfType<Patient>().Single().Id;
        var scenario = new FhirJsonDeserializer(new DeserializerSettings()).Deserialize<Bundle>(json);
        foreach (var entry in scenario.Entry)
        {
            // Each resource exists once: searching by its conditional create or update identifier finds exactly one.
            Assert.Equal(1, await CountAsync(ConditionOf(entry).Type, ConditionOf(entry).Query));
        }
        var task = first.Entry.Select(e => e.Resource).OfType<Hl7.Fhir.Model.Task>().Single();
        Assert.Equal($"Patient/{patientId}", task.For!.Reference);
        var letter = first.Entry.Select(e => e.Resource).OfType<Composition>().Single();
        Assert.DoesNotContain("urn:uuid:", new BaseFhirJsonSerializer(ModelInfo.ModelInspector).SerializeToString(letter));
    }

    [Fact]
    public async Task Exit_package_posted_concurrently_creates_each_resource_once()
    {
        // Other identifiers than the sequential test, so both can share the database in any order.
        var json = (await File.ReadAllTextAsync(ScenarioFile("exit-package-transaction.json")))
            .Replace("/usmp-fleury/", "/usmp-concurrent/", StringComparison.Ordinal)
            // National identifiers are replaced by others whose control keys are right too (the resources claim FR Core profiles).
            .Replace("1910001239", "1910001247", StringComparison.Ordinal).Replace("1750004566", "1750004574", StringComparison.Ordinal)
            .Replace("810000123454", "810000123462", StringComparison.Ordinal).Replace("180029912345678", "180029912345679", StringComparison.Ordinal);

        var responses = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => PostJsonAsync(json)));

        Assert.Equal(16, responses.Sum(r => r.Entry.Count(e => e.Response!.Status == "201 Created")));
        var scenario = new FhirJsonDeserializer(new DeserializerSettings()).Deserialize<Bundle>(json);
        foreach (var entry in scenario.Entry)
            Assert.Equal(1, await CountAsync(ConditionOf(entry).Type, ConditionOf(entry).Query));
        // Every response points its references at the one surviving copy of each resource.
        var patientIds = responses.Select(r => r.Entry.Select(e => e.Resource).OfType<Patient>().Single().Id).Distinct();
        Assert.Single(patientIds);
    }

    private async Task<Bundle> PostJsonAsync(string json)
    {
        var response = await _fhir.PostAsync("", FhirHttp.Json(json));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.ReadAs<Bundle>();
    }

    /// <summary>The search of a conditional create (POST + ifNoneExist) or conditional update (PUT [type]?search) entry.</summary>
    internal static (string Type, string Query) ConditionOf(Bundle.EntryComponent entry) =>
        entry.Request!.IfNoneExist is { } condition
            ? (entry.Request.Url!, condition)
            : (entry.Request.Url!.Split('?')[0], entry.Request.Url.Split('?', 2)[1]);

    internal static string ScenarioFile(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "conformance", "scenarios", name);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"conformance/scenarios/{name} not found above {AppContext.BaseDirectory}");
    }
}

public sealed class SqliteTransactionTests(SqliteGateway gateway) : TransactionTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresTransactionTests(PostgresGateway gateway) : TransactionTests(gateway), IClassFixture<PostgresGateway>;
