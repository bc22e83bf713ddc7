using System.Net;
using System.Net.Http.Headers;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Rest;

/// <summary>read, vread, create, update, delete and conditional create, run against both dialects.</summary>
public abstract class CrudTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private static Patient NewPatient(string ins) => new()
    {
        Identifier = [new Identifier("urn:oid:1.2.250.1.213.1.4.8", ins)],
        Name = [new HumanName { Family = "Hélène", Given = ["Marie"] }],
        BirthDate = "1980-02-14",
    };

    private async Task<Patient> CreateAsync(Patient p)
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(p));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return await response.ReadAs<Patient>();
    }

    [Fact]
    public async Task Create_returns_201_with_location_etag_and_meta()
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(NewPatient("180021400000123")));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = await response.ReadAs<Patient>();
        Assert.Equal("1", created.Meta!.VersionId);
        Assert.NotNull(created.Meta.LastUpdated);
        Assert.Equal("W/\"1\"", response.Headers.ETag?.ToString());
        Assert.EndsWith($"/fhir/Patient/{created.Id}/_history/1", response.Headers.Location?.ToString());
        Assert.NotNull(response.Content.Headers.LastModified);
    }

    [Fact]
    public async Task Read_returns_what_was_created()
    {
        var created = await CreateAsync(NewPatient("180021400000124"));
        var read = await _fhir.GetAsync($"Patient/{created.Id}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        var patient = await read.ReadAs<Patient>();
        Assert.Equal("Hélène", patient.Name[0].Family);
        Assert.Equal("application/fhir+json", read.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Read_of_unknown_id_is_404_with_OperationOutcome()
    {
        var read = await _fhir.GetAsync("Patient/does-not-exist");
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        var outcome = await read.ReadAs<OperationOutcome>();
        Assert.Equal(OperationOutcome.IssueType.NotFound, outcome.Issue[0].Code);
    }

    [Fact]
    public async Task Unknown_resource_type_is_404()
    {
        var read = await _fhir.GetAsync("Patientt/1");
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        Assert.Equal(OperationOutcome.IssueType.NotSupported, (await read.ReadAs<OperationOutcome>()).Issue[0].Code);
    }

    [Fact]
    public async Task Update_creates_a_new_version_and_vread_returns_each()
    {
        var created = await CreateAsync(NewPatient("180021400000125"));
        created.Gender = AdministrativeGender.Female;
        var update = await _fhir.PutAsync($"Patient/{created.Id}", FhirHttp.Json(created));
        Assert.Equal(HttpStatusCode.OK, update.StatusCode);
        Assert.Equal("W/\"2\"", update.Headers.ETag?.ToString());
        var v1 = await (await _fhir.GetAsync($"Patient/{created.Id}/_history/1")).ReadAs<Patient>();
        var v2 = await (await _fhir.GetAsync($"Patient/{created.Id}/_history/2")).ReadAs<Patient>();
        Assert.Null(v1.Gender);
        Assert.Equal(AdministrativeGender.Female, v2.Gender);
        Assert.Equal(HttpStatusCode.NotFound, (await _fhir.GetAsync($"Patient/{created.Id}/_history/3")).StatusCode);
    }

    [Fact]
    public async Task Update_as_create_with_client_id_returns_201()
    {
        var patient = NewPatient("180021400000126");
        patient.Id = "client-chosen-" + Guid.NewGuid().ToString("N")[..8];
        var response = await _fhir.PutAsync($"Patient/{patient.Id}", FhirHttp.Json(patient));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
    }

    [Fact]
    public async Task Update_with_stale_IfMatch_returns_412()
    {
        var created = await CreateAsync(NewPatient("180021400000127"));
        var first = new HttpRequestMessage(HttpMethod.Put, $"Patient/{created.Id}") { Content = FhirHttp.Json(created) };
        first.Headers.TryAddWithoutValidation("If-Match", "W/\"1\"");
        Assert.Equal(HttpStatusCode.OK, (await _fhir.SendAsync(first)).StatusCode);
        var stale = new HttpRequestMessage(HttpMethod.Put, $"Patient/{created.Id}") { Content = FhirHttp.Json(created) };
        stale.Headers.TryAddWithoutValidation("If-Match", "W/\"1\"");
        var response = await _fhir.SendAsync(stale);
        Assert.Equal(HttpStatusCode.PreconditionFailed, response.StatusCode);
        Assert.Equal(OperationOutcome.IssueType.Conflict, (await response.ReadAs<OperationOutcome>()).Issue[0].Code);
    }

    [Fact]
    public async Task Concurrent_updates_with_the_same_IfMatch_let_exactly_one_win()
    {
        var created = await CreateAsync(NewPatient("180021400000128"));
        var attempts = Enumerable.Range(0, 8).Select(async i =>
        {
            var p = (Patient)created.DeepCopy();
            p.Gender = i % 2 == 0 ? AdministrativeGender.Male : AdministrativeGender.Female;
            var request = new HttpRequestMessage(HttpMethod.Put, $"Patient/{created.Id}") { Content = FhirHttp.Json(p) };
            request.Headers.TryAddWithoutValidation("If-Match", "W/\"1\"");
            return (await _fhir.SendAsync(request)).StatusCode;
        });
        var statuses = await Task.WhenAll(attempts);
        Assert.Equal(1, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(7, statuses.Count(s => s == HttpStatusCode.PreconditionFailed));
        var current = await (await _fhir.GetAsync($"Patient/{created.Id}")).ReadAs<Patient>();
        Assert.Equal("2", current.Meta!.VersionId);
    }

    [Fact]
    public async Task Update_with_id_mismatch_is_400()
    {
        var created = await CreateAsync(NewPatient("180021400000129"));
        var response = await _fhir.PutAsync("Patient/other-id", FhirHttp.Json(created));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("id", (await response.ReadAs<OperationOutcome>()).Issue[0].Expression);
    }

    [Fact]
    public async Task Body_type_not_matching_the_url_is_400()
    {
        var response = await _fhir.PostAsync("Observation", FhirHttp.Json(NewPatient("180021400000130")));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Delete_then_read_is_410_and_history_keeps_versions()
    {
        var created = await CreateAsync(NewPatient("180021400000131"));
        var delete = await _fhir.DeleteAsync($"Patient/{created.Id}");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        Assert.Equal(HttpStatusCode.Gone, (await _fhir.GetAsync($"Patient/{created.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient/{created.Id}/_history/1")).StatusCode);
        Assert.Equal(HttpStatusCode.Gone, (await _fhir.GetAsync($"Patient/{created.Id}/_history/2")).StatusCode);
        // Updating after a delete brings it back as version 3.
        var revive = await _fhir.PutAsync($"Patient/{created.Id}", FhirHttp.Json(created));
        Assert.Equal(HttpStatusCode.Created, revive.StatusCode);
        Assert.Equal("W/\"3\"", revive.Headers.ETag?.ToString());
    }

    [Fact]
    public async Task IfNoneMatch_on_current_version_is_304()
    {
        var created = await CreateAsync(NewPatient("180021400000132"));
        var request = new HttpRequestMessage(HttpMethod.Get, $"Patient/{created.Id}");
        request.Headers.TryAddWithoutValidation("If-None-Match", "W/\"1\"");
        Assert.Equal(HttpStatusCode.NotModified, (await _fhir.SendAsync(request)).StatusCode);
    }

    [Fact]
    public async Task IfModifiedSince_is_304_from_the_last_modified_second_on_and_200_before_it()
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(NewPatient("180021400000134")));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = await response.ReadAs<Patient>();
        var lastModified = response.Content.Headers.LastModified ?? throw new InvalidOperationException("no Last-Modified");
        async Task<HttpStatusCode> ReadSinceAsync(DateTimeOffset since)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, $"Patient/{created.Id}");
            request.Headers.IfModifiedSince = since;
            return (await _fhir.SendAsync(request)).StatusCode;
        }
        Assert.Equal(HttpStatusCode.NotModified, await ReadSinceAsync(lastModified)); // HTTP dates have whole seconds
        Assert.Equal(HttpStatusCode.NotModified, await ReadSinceAsync(lastModified.AddDays(1)));
        Assert.Equal(HttpStatusCode.OK, await ReadSinceAsync(lastModified.AddSeconds(-1)));
        // The capability statement says so.
        var statement = await (await _fhir.GetAsync("metadata")).ReadAs<CapabilityStatement>();
        Assert.Equal(CapabilityStatement.ConditionalReadStatus.FullSupport, statement.Rest[0].Resource.Single(r => r.Type == "Patient").ConditionalRead);
    }

    [Fact]
    public async Task Conditional_create_returns_the_existing_match()
    {
        var ins = "180021400000133";
        var first = new HttpRequestMessage(HttpMethod.Post, "Patient") { Content = FhirHttp.Json(NewPatient(ins)) };
        first.Headers.TryAddWithoutValidation("If-None-Exist", $"identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}");
        var created = await _fhir.SendAsync(first);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var second = new HttpRequestMessage(HttpMethod.Post, "Patient") { Content = FhirHttp.Json(NewPatient(ins)) };
        second.Headers.TryAddWithoutValidation("If-None-Exist", $"identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}");
        var again = await _fhir.SendAsync(second);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal((await created.ReadAs<Patient>()).Id, (await again.ReadAs<Patient>()).Id);
    }

    [Fact]
    public async Task Conditional_interactions_with_only_result_parameters_are_400_and_change_nothing()
    {
        // Such a condition selects every resource of the type: with one visible resource, it would be the one deleted.
        var basic = await (await _fhir.PostAsync("Basic", FhirHttp.Json(new Basic { Code = new CodeableConcept("urn:test", "only-one") }))).ReadAs<Basic>();
        var delete = await _fhir.DeleteAsync("Basic?_format=json");
        var update = await _fhir.PutAsync("Basic?_count=1&_pretty=true", FhirHttp.Json(new Basic { Code = new CodeableConcept("urn:test", "other") }));
        var create = new HttpRequestMessage(HttpMethod.Post, "Basic") { Content = FhirHttp.Json(new Basic { Code = new CodeableConcept("urn:test", "other") }) };
        create.Headers.TryAddWithoutValidation("If-None-Exist", "_summary=true");
        foreach (var response in new[] { delete, update, await _fhir.SendAsync(create) })
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("select resources", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
        }
        var read = await _fhir.GetAsync($"Basic/{basic.Id}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal("W/\"1\"", read.Headers.ETag!.ToString());
    }

    [Fact]
    public async Task Concurrent_conditional_creates_on_one_identifier_make_exactly_one_resource()
    {
        var ins = "18002140000" + Random.Shared.Next(1000, 9999);
        var attempts = Enumerable.Range(0, 10).Select(async _ =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "Patient") { Content = FhirHttp.Json(NewPatient(ins)) };
            request.Headers.TryAddWithoutValidation("If-None-Exist", $"identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}");
            var response = await _fhir.SendAsync(request);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            return (response.StatusCode, (await response.ReadAs<Patient>()).Id);
        });
        var results = await Task.WhenAll(attempts);
        Assert.Equal(1, results.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.Equal(9, results.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Single(results.Select(r => r.Id).Distinct());
        var search = await (await _fhir.GetAsync($"Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|{ins}")).ReadAs<Bundle>();
        Assert.Equal(1, search.Total);
    }

    [Fact]
    public async Task Prefer_return_minimal_sends_no_body_and_OperationOutcome_sends_an_outcome()
    {
        var minimal = new HttpRequestMessage(HttpMethod.Post, "Patient") { Content = FhirHttp.Json(NewPatient("180021400000134")) };
        minimal.Headers.TryAddWithoutValidation("Prefer", "return=minimal");
        var response = await _fhir.SendAsync(minimal);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        Assert.NotNull(response.Headers.Location);

        var outcome = new HttpRequestMessage(HttpMethod.Post, "Patient") { Content = FhirHttp.Json(NewPatient("180021400000135")) };
        outcome.Headers.TryAddWithoutValidation("Prefer", "return=OperationOutcome");
        var withOutcome = await _fhir.SendAsync(outcome);
        Assert.IsType<OperationOutcome>(await withOutcome.ReadAs<OperationOutcome>());
    }
}

public sealed class SqliteCrudTests(SqliteGateway gateway) : CrudTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresCrudTests(PostgresGateway gateway) : CrudTests(gateway), IClassFixture<PostgresGateway>;
