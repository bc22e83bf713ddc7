using System.Net;
using FhirSortie.Server.Rest;

namespace FhirSortie.Tests.Rest;

/// <summary>X-Request-Id names every answer (errors too); a client's X-Correlation-Id comes back when it is plain ASCII.</summary>
public sealed class RequestIdsTests(SqliteGateway gateway) : IClassFixture<SqliteGateway>
{
    private static string RequestId(HttpResponseMessage response) => Assert.Single(response.Headers.GetValues(RequestIds.RequestHeader));

    [Fact]
    public async Task Every_answer_has_its_own_request_id_and_echoes_a_plain_correlation_id()
    {
        var fhir = gateway.Fhir();
        using var first = await fhir.GetAsync("metadata");
        using var second = await fhir.GetAsync("metadata");
        Assert.NotEqual(RequestId(first), RequestId(second));
        Assert.False(first.Headers.Contains(RequestIds.CorrelationHeader));

        using var correlated = new HttpRequestMessage(HttpMethod.Get, "Patient?_count=abc");
        correlated.Headers.Add(RequestIds.CorrelationHeader, "csapa-42:batch-7");
        using var error = await fhir.SendAsync(correlated);
        Assert.Equal(HttpStatusCode.BadRequest, error.StatusCode);
        Assert.NotEmpty(RequestId(error));
        Assert.Equal("csapa-42:batch-7", Assert.Single(error.Headers.GetValues(RequestIds.CorrelationHeader)));

        foreach (var unusable in new[] { "two words", new string('x', RequestIds.MaxCorrelationLength + 1) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "metadata");
            request.Headers.TryAddWithoutValidation(RequestIds.CorrelationHeader, unusable);
            using var response = await fhir.SendAsync(request);
            Assert.False(response.Headers.Contains(RequestIds.CorrelationHeader), unusable);
        }
    }
}
