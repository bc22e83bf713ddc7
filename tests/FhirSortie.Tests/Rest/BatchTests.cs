using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Rest;

/// <summary>batch: POST [base] with a batch Bundle; each entry succeeds or fails on its own. Both dialects.</summary>
public abstract class BatchTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();
    private const string Ins = "urn:oid:1.2.250.1.213.1.4.8";

    private static Patient NewPatient(string ins) => new() { Identifier = [new Identifier(Ins, ins)], Active = true };

    private async Task<Bundle> BatchAsync(params Bundle.EntryComponent[] entries)
    {
        var response = await _fhir.PostAsync("", FhirHttp.Json(new Bundle { Type = Bundle.BundleType.Batch, Entry = [.. entries] }));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var bundle = await response.ReadAs<Bundle>();
        Assert.Equal(Bundle.BundleType.BatchResponse, bundle.Type);
        Assert.Equal(entries.Length, bundle.Entry.Count);
        return bundle;
    }

    private static Bundle.EntryComponent Entry(Bundle.HTTPVerb method, string url, Resource? resource = null) =>
        new() { Resource = resource, Request = new Bundle.RequestComponent { Method = method, Url = url } };

    [Fact]
    public async Task Failing_entries_get_their_own_outcome_and_the_others_are_written()
    {
        var existing = await (await _fhir.PostAsync("Patient", FhirHttp.Json(NewPatient("180030000000001")))).ReadAs<Patient>();
        var mismatched = NewPatient("180030000000002");
        mismatched.Id = "other-id";

        var response = await BatchAsync(
            Entry(Bundle.HTTPVerb.POST, "Patient", NewPatient("180030000000003")),
            Entry(Bundle.HTTPVerb.PUT, "Patient/some-id", mismatched),
            Entry(Bundle.HTTPVerb.GET, "Patient/unknown-id"),
            Entry(Bundle.HTTPVerb.GET, $"Patient/{existing.Id}"),
            Entry(Bundle.HTTPVerb.GET, "Nope/1"));

        Assert.Equal(["201 Created", "400 Bad Request", "404 Not Found", "200 OK", "400 Bad Request"], response.Entry.Select(e => e.Response!.Status));
        Assert.IsType<OperationOutcome>(response.Entry[1].Response!.Outcome);
        Assert.IsType<OperationOutcome>(response.Entry[2].Response!.Outcome);
        Assert.Equal(existing.Id, response.Entry[3].Resource!.Id);
        var created = Assert.IsType<Patient>(response.Entry[0].Resource);
        Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient/{created.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _fhir.GetAsync("Patient/some-id")).StatusCode);
    }

    [Fact]
    public async Task Search_and_vread_entries_return_bundles_and_versions()
    {
        var created = await (await _fhir.PostAsync("Patient", FhirHttp.Json(NewPatient("180030000000004")))).ReadAs<Patient>();
        var response = await BatchAsync(
            Entry(Bundle.HTTPVerb.GET, $"Patient?identifier={Ins}|180030000000004"),
            Entry(Bundle.HTTPVerb.GET, $"Patient/{created.Id}/_history/1"),
            Entry(Bundle.HTTPVerb.GET, $"Patient/{created.Id}/_history/9"));

        var search = Assert.IsType<Bundle>(response.Entry[0].Resource);
        Assert.Equal(Bundle.BundleType.Searchset, search.Type);
        Assert.Equal(created.Id, Assert.Single(search.Entry).Resource!.Id);
        Assert.Equal("W/\"1\"", response.Entry[1].Response!.Etag);
        Assert.Equal("404 Not Found", response.Entry[2].Response!.Status);
    }

    [Fact]
    public async Task Batch_entries_cannot_reference_each_other_by_urn_uuid()
    {
        var fullUrl = "urn:uuid:" + Guid.NewGuid();
        var observation = new Observation { Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "29463-7"), Subject = new ResourceReference(fullUrl) };
        var response = await BatchAsync(
            new Bundle.EntryComponent { FullUrl = fullUrl, Resource = NewPatient("180030000000005"), Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Patient" } },
            Entry(Bundle.HTTPVerb.POST, "Observation", observation));
        Assert.Equal("201 Created", response.Entry[0].Response!.Status);
        Assert.Equal("400 Bad Request", response.Entry[1].Response!.Status);
    }
}

public sealed class SqliteBatchTests(SqliteGateway gateway) : BatchTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresBatchTests(PostgresGateway gateway) : BatchTests(gateway), IClassFixture<PostgresGateway>;
