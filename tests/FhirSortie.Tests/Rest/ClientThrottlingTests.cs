using System.Net;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Rest;

/// <summary>A gateway throttled at 2 requests per second per client, bursts of 3.</summary>
public sealed class ThrottledGateway : IDisposable
{
    public SqliteGateway Gateway { get; } = new();

    public ThrottledGateway()
    {
        Gateway.Settings["FhirSortie:Throttling:RequestsPerSecond"] = "2";
        Gateway.Settings["FhirSortie:Throttling:Burst"] = "3";
    }

    public void Dispose()
    {
        Gateway.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class ClientThrottlingTests(ThrottledGateway throttled) : IClassFixture<ThrottledGateway>
{
    [Fact]
    public async Task A_client_past_its_rate_gets_429_with_Retry_After_and_the_others_do_not()
    {
        var gateway = throttled.Gateway;
        using var busy = gateway.Fhir(TestAuthenticationHandler.Describe("csapa-loop", ActorKind.Csapa, "750000028", "system/*.rs"));
        using var other = gateway.Fhir(TestAuthenticationHandler.Describe("csapa-calm", ActorKind.Csapa, "750000036", "system/*.rs"));

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 6 && refused is null; i++)
        {
            var response = await busy.GetAsync("Organization?_count=1");
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) refused = response;
            else response.Dispose();
        }

        // The burst of 3 passes (a 4th may too, if the bucket was refilled meanwhile), then 429.
        Assert.NotNull(refused);
        Assert.True(statuses.Count(s => s == HttpStatusCode.OK) >= 3, string.Join(", ", statuses));
        Assert.True(int.Parse(Assert.Single(refused.Headers.GetValues("Retry-After")), System.Globalization.CultureInfo.InvariantCulture) >= 1);
        var outcome = await refused.ReadAs<OperationOutcome>();
        Assert.Equal(OperationOutcome.IssueType.Throttled, Assert.Single(outcome.Issue).Code);
        refused.Dispose();
        // Refused, so audited: the client, its search, outcome 4 (the auditor is another client, with its own bucket).
        using var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        using (var audits = await auditor.GetAsync("AuditEvent?agent:identifier=csapa-loop&outcome=4"))
        {
            var bundle = await audits.ReadAs<Bundle>();
            var audit = Assert.IsType<AuditEvent>(Assert.Single(bundle.Entry).Resource);
            Assert.Equal("search-type", audit.Subtype.Single().Code);
            Assert.Contains("429", audit.OutcomeDesc, StringComparison.Ordinal);
        }
        // Another client is not held back by the first one.
        using (var calm = await other.GetAsync("Organization?_count=1")) Assert.Equal(HttpStatusCode.OK, calm.StatusCode);
        // The bucket refills: 2 tokens a second.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        using var again = await busy.GetAsync("Organization?_count=1");
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }
}
