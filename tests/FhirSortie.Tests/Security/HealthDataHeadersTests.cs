using System.Net;
using FhirSortie.Server.Security;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Security;

/// <summary>No answer of the gateway may be stored by a browser or a proxy (health data), errors included.</summary>
public sealed class HealthDataHeadersTests(SqliteGateway gateway) : IClassFixture<SqliteGateway>
{
    private static void AssertNotStored(HttpResponseMessage response)
    {
        Assert.True(response.Headers.CacheControl?.NoStore, $"{(int)response.StatusCode}: Cache-Control is '{response.Headers.CacheControl}'");
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
    }

    [Fact]
    public async Task Reads_errors_and_refusals_are_marked_no_store_and_nosniff()
    {
        var fhir = gateway.Fhir();
        var patient = await Search.SearchHttp.CreateAsync(fhir, Patient(NewRun(), "280021400003003", "Cache"));

        using var read = await fhir.GetAsync($"Patient/{patient.Id}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        AssertNotStored(read);
        using var revalidated = await fhir.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"Patient/{patient.Id}") { Headers = { { "If-None-Match", "W/\"1\"" } } });
        Assert.Equal(HttpStatusCode.NotModified, revalidated.StatusCode);
        AssertNotStored(revalidated);
        using var missing = await fhir.GetAsync($"Patient/{Guid.NewGuid()}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        AssertNotStored(missing);
        using var bad = await fhir.GetAsync("Patient?_count=abc");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        AssertNotStored(bad);
        using var organisationsOnly = gateway.Fhir(TestAuthenticationHandler.Describe("csapa-orgs", ActorKind.Csapa, "750000028", "system/Organization.rs"));
        using var refused = await organisationsOnly.GetAsync($"Patient/{patient.Id}");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        AssertNotStored(refused);
    }
}
