#nullable disable warnings
using System.Net;
using System.Net.Http.Headers;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Rest;

/// <summary>HTTP details real clients trip on: _elements and includes, conditional vread, Accept q-values, DELETE of an unknown id.</summary>
public abstract class HttpDetailsTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private const string ObservationValue = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

    private async Task<(Patient Patient, MedicationRequest Request)> RecordAsync()
    {
        var run = NewRun();
        var patient = await _fhir.CreateAsync(Patient(run, "1" + Random.Shared.NextInt64(10_000_000_000_000, 99_999_999_999_999), "Details"));
        return (patient, await _fhir.CreateAsync(Buprenorphine(run, patient.Id)));
    }

    [Fact]
    public async Task Elements_shapes_the_matches_and_not_the_included_resources()
    {
        var (patient, request) = await RecordAsync();
        var bundle = await _fhir.SearchAsync($"MedicationRequest?_id={request.Id}&_include=MedicationRequest:subject&_elements=status");
        var match = (MedicationRequest)bundle.Entry.Single(e => e.Search.Mode == Bundle.SearchEntryMode.Match).Resource;
        Assert.NotNull(match.Status);
        Assert.Null(match.AuthoredOn);
        Assert.NotNull(match.Subject); // mandatory (1..1): R4 search.html, servers SHOULD return mandatory elements anyway
        var subsetted = Assert.Single(match.Meta.Tag, t => t.Code == "SUBSETTED");
        Assert.Equal(ObservationValue, subsetted.System);
        var included = (Patient)bundle.Entry.Single(e => e.Search.Mode == Bundle.SearchEntryMode.Include).Resource;
        Assert.Equal(patient.Id, included.Id);
        Assert.Equal("Details", included.Name[0].Family); // whole
        Assert.DoesNotContain(included.Meta?.Tag ?? [], t => t.Code == "SUBSETTED");
    }

    [Theory]
    [InlineData("json")]
    [InlineData("xml")]
    public async Task SUBSETTED_tags_carry_only_the_R4_system(string format)
    {
        var (patient, _) = await RecordAsync();
        var response = await _fhir.GetAsync($"Patient/{patient.Id}?_summary=true&_format={format}");
        var body = await response.Content.ReadAsStringAsync();
        Resource parsed;
        if (format == "xml")
        {
            using var reader = System.Xml.XmlReader.Create(new StringReader(body));
            parsed = new Hl7.Fhir.Serialization.FhirXmlDeserializer(new Hl7.Fhir.Serialization.DeserializerSettings()).DeserializeResource(reader);
        }
        else
        {
            parsed = new Hl7.Fhir.Serialization.FhirJsonDeserializer(new Hl7.Fhir.Serialization.DeserializerSettings()).DeserializeResource(body);
        }
        var read = (Patient)parsed;
        var subsetted = Assert.Single(read.Meta.Tag, t => t.Code == "SUBSETTED");
        Assert.Equal(ObservationValue, subsetted.System);
        Assert.DoesNotContain("hl7.org/fhir/v3/ObservationValue", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Vread_honours_IfNoneMatch_and_IfModifiedSince_like_read()
    {
        var (patient, _) = await RecordAsync();
        var url = $"Patient/{patient.Id}/_history/1";

        var matching = new HttpRequestMessage(HttpMethod.Get, url);
        matching.Headers.TryAddWithoutValidation("If-None-Match", "W/\"1\"");
        var notModified = await _fhir.SendAsync(matching);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Equal("W/\"1\"", notModified.Headers.ETag?.ToString());

        var other = new HttpRequestMessage(HttpMethod.Get, url);
        other.Headers.TryAddWithoutValidation("If-None-Match", "W/\"2\"");
        Assert.Equal(HttpStatusCode.OK, (await _fhir.SendAsync(other)).StatusCode);

        var since = new HttpRequestMessage(HttpMethod.Get, url);
        since.Headers.IfModifiedSince = DateTimeOffset.UtcNow.AddMinutes(1);
        Assert.Equal(HttpStatusCode.NotModified, (await _fhir.SendAsync(since)).StatusCode);
        var before = new HttpRequestMessage(HttpMethod.Get, url);
        before.Headers.IfModifiedSince = DateTimeOffset.UtcNow.AddDays(-1);
        Assert.Equal(HttpStatusCode.OK, (await _fhir.SendAsync(before)).StatusCode);
    }

    private async Task<HttpResponseMessage> ReadWithAcceptAsync(string id, string accept)
    {
        var client = gateway.CreateClient(new() { BaseAddress = new Uri("http://localhost/fhir/") });
        var request = new HttpRequestMessage(HttpMethod.Get, $"Patient/{id}");
        request.Headers.TryAddWithoutValidation("Accept", accept);
        return await client.SendAsync(request);
    }

    [Theory]
    [InlineData("application/fhir+xml;q=0.5, application/fhir+json", "application/fhir+json")]
    [InlineData("application/fhir+json;q=0.2, application/fhir+xml;q=0.9", "application/fhir+xml")]
    [InlineData("application/fhir+json;q=0, */*", "application/fhir+xml")]
    [InlineData("text/html, application/xhtml+xml, application/xml;q=0.9, */*;q=0.8", "application/fhir+xml")]
    public async Task Accept_is_read_with_its_q_values(string accept, string expected)
    {
        var (patient, _) = await RecordAsync();
        var response = await ReadWithAcceptAsync(patient.Id, accept);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("application/fhir+json;q=0")]
    [InlineData("application/fhir+json;q=0, application/fhir+xml;q=0")]
    public async Task Accept_with_q_0_for_every_format_is_406(string accept)
    {
        var (patient, _) = await RecordAsync();
        var response = await ReadWithAcceptAsync(patient.Id, accept);
        Assert.Equal(HttpStatusCode.NotAcceptable, response.StatusCode);
        Assert.Equal(OperationOutcome.IssueType.NotSupported, (await response.ReadAs<OperationOutcome>()).Issue[0].Code);
    }


    [Fact]
    public async Task Delete_of_an_unknown_id_or_of_a_deleted_one_is_204_writes_nothing_and_is_audited_as_a_delete_of_nothing()
    {
        var id = "never-" + NewRun();
        var unknown = await _fhir.DeleteAsync($"Patient/{id}");
        Assert.Equal(HttpStatusCode.NoContent, unknown.StatusCode);
        Assert.Null(unknown.Headers.ETag);
        Assert.Equal(HttpStatusCode.NotFound, (await _fhir.GetAsync($"Patient/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _fhir.GetAsync($"Patient/{id}/_history/1")).StatusCode);

        var (patient, _) = await RecordAsync();
        Assert.Equal(HttpStatusCode.NoContent, (await _fhir.DeleteAsync($"Patient/{patient.Id}")).StatusCode);
        var again = await _fhir.DeleteAsync($"Patient/{patient.Id}");
        Assert.Equal(HttpStatusCode.NoContent, again.StatusCode);
        Assert.Null(again.Headers.ETag);
        Assert.Equal(2, (await _fhir.SearchAsync($"Patient/{patient.Id}/_history")).Entry.Count);

        var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-details", Server.Security.ActorKind.Auditor, null, "system/AuditEvent.rs"));
        foreach (var target in new[] { $"Patient/{id}", $"Patient/{patient.Id}" })
        {
            var deletes = (await auditor.SearchAsync($"AuditEvent?entity={target}&subtype=delete")).Entry.Select(e => (AuditEvent)e.Resource).ToList();
            var nothing = Assert.Single(deletes, a => a.OutcomeDesc == "permitted: nothing to delete: no current version");
            Assert.Equal(AuditEvent.AuditEventOutcome.N0, nothing.Outcome);
        }
    }

    [Theory]
    [InlineData(Bundle.BundleType.Batch)]
    [InlineData(Bundle.BundleType.Transaction)]
    public async Task A_DELETE_entry_of_an_unknown_id_is_204_in_a_batch_and_a_transaction(Bundle.BundleType kind)
    {
        var bundle = new Bundle
        {
            Type = kind,
            Entry = [new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.DELETE, Url = $"Patient/never-{NewRun()}" } }],
        };
        var response = await _fhir.PostAsync("", FhirHttp.Json(bundle));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("204", (await response.ReadAs<Bundle>()).Entry.Single().Response.Status, StringComparison.Ordinal);
    }
}

public sealed class SqliteHttpDetailsTests(SqliteGateway gateway) : HttpDetailsTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresHttpDetailsTests(PostgresGateway gateway) : HttpDetailsTests(gateway), IClassFixture<PostgresGateway>;
