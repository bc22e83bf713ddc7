using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Audit;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FhirSortie.Tests.Security;

/// <summary>
/// A gateway with real token handling that refuses a client id from an address after 3 failed client authentications
/// in 5 minutes, and a user name on the login page after 3 wrong passwords in 15 minutes (30 for the address).
/// </summary>
public sealed class GuessedSecretsGateway : IDisposable
{
    public SqliteGateway Gateway { get; } = new() { UseRealAuthentication = true, TestServices = services => services.AddSingleton<IStartupFilter, PeerFromHeader>() };

    public GuessedSecretsGateway()
    {
        Gateway.Settings["FhirSortie:DemoMode"] = "true";
        Gateway.Settings["FhirSortie:Auth:MaxFailedClientAuthentications"] = "3";
        Gateway.Settings["FhirSortie:Auth:FailedClientAuthenticationWindowSeconds"] = "300";
        Gateway.Settings["FhirSortie:Auth:MaxFailedPractitionerLogins"] = "3";
        Gateway.Settings["FhirSortie:Auth:FailedPractitionerLoginWindowSeconds"] = "900";
    }

    public void Dispose()
    {
        Gateway.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class FailedClientAuthenticationTests(GuessedSecretsGateway guessed) : IClassFixture<GuessedSecretsGateway>
{
    private async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> TokenAsync(string peer, string clientId, string secret, string path = "/auth/token", string scope = "system/Patient.rs")
    {
        using var http = guessed.Gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new FormUrlEncodedContent(path == "/auth/token"
                ? new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret, ["scope"] = scope }
                : new Dictionary<string, string> { ["token"] = "not-a-token", ["client_id"] = clientId, ["client_secret"] = secret }),
        };
        request.Headers.Add(PeerFromHeader.Header, peer);
        var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    [Fact]
    public async Task After_the_limit_a_client_id_is_refused_from_that_address_only_even_with_its_secret()
    {
        const string guesser = "192.0.2.66";
        for (var i = 0; i < 3; i++)
        {
            var (status, body, _) = await TokenAsync(guesser, "spip-demo", $"guess-{i}");
            Assert.NotEqual(HttpStatusCode.OK, status);
            Assert.Equal("invalid_client", body.GetProperty("error").GetString());
        }

        var (blocked, refusal, response) = await TokenAsync(guesser, "spip-demo", "spip-demo-secret");
        // A revocation request counts and is refused the same way (same client, same address).
        var (revocation, _, _) = await TokenAsync(guesser, "spip-demo", "spip-demo-secret", "/auth/revoke");
        // The real client elsewhere, and another client from the guesser's address, are not held back.
        var (elsewhere, _, _) = await TokenAsync("198.51.100.20", "spip-demo", "spip-demo-secret");
        var (neighbour, _, _) = await TokenAsync(guesser, "csapa-demo", "csapa-demo-secret", scope: "system/*.rs");

        Assert.Equal(HttpStatusCode.TooManyRequests, blocked);
        Assert.Equal("temporarily_unavailable", refusal.GetProperty("error").GetString());
        var retryAfter = int.Parse(Assert.Single(response.Headers.GetValues("Retry-After")), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 300);
        Assert.Equal(HttpStatusCode.TooManyRequests, revocation);
        Assert.Equal(HttpStatusCode.OK, elsewhere);
        Assert.Equal(HttpStatusCode.OK, neighbour);
        // Audited: the three guesses and the refusals, under the client they claimed, from the guesser's address.
        var records = await guessed.Gateway.AuditEventsAsync($"agent:identifier={AuditedSearch.ClientIds}|spip-demo&address:exact={guesser}&_sort=date");
        Assert.Equal(3, records.Count(r => r.OutcomeDesc!.StartsWith("denied: invalid_client", StringComparison.Ordinal)));
        Assert.Contains(records, r => r.OutcomeDesc == "denied: too many failed client authentications of this client from this address"
            && r.Subtype.Single().Code == "110122");
        Assert.Contains(records, r => r.OutcomeDesc == "denied: too many failed client authentications of this client from this address"
            && r.Subtype.Single().Code == "110123");
    }

    [Fact]
    public void The_window_ends_and_a_success_does_not_count()
    {
        var clock = new MovableClock();
        var limit = new FailedClientAuthentications(Options.Create(new AuthOptions { MaxFailedClientAuthentications = 2, FailedClientAuthenticationWindowSeconds = 60 }), clock);
        var pair = ("203.0.113.1", "csapa-demo");

        limit.Failed(pair);
        Assert.Null(limit.RetryAfter(pair));
        clock.Advance(TimeSpan.FromSeconds(20));
        limit.Failed(pair);
        Assert.Equal(TimeSpan.FromSeconds(40), limit.RetryAfter(pair));
        Assert.Null(limit.RetryAfter(("203.0.113.2", "csapa-demo")));
        clock.Advance(TimeSpan.FromSeconds(40));
        // The window is over: a new one starts with the next failure.
        Assert.Null(limit.RetryAfter(pair));
        limit.Failed(pair);
        Assert.Null(limit.RetryAfter(pair));

        var off = new FailedClientAuthentications(Options.Create(new AuthOptions { MaxFailedClientAuthentications = 0 }), clock);
        for (var i = 0; i < 100; i++) off.Failed(pair);
        Assert.Null(off.RetryAfter(pair));
    }
}

/// <summary>Malformed forms at the OAuth endpoints are client errors, never 500s.</summary>
public sealed class OAuthFormTests(SqliteAuthFixture auth) : IClassFixture<SqliteAuthFixture>
{
    public static TheoryData<string, string> Forms => new()
    {
        { "/auth/token", string.Join("&", Enumerable.Range(0, 3_000).Select(i => $"k{i}=v")) },
        { "/auth/revoke", string.Join("&", Enumerable.Range(0, 3_000).Select(i => $"k{i}=v")) },
        { "/auth/token", "grant_type=client_credentials&client_id=" + new string('x', 5_000_000) },
        { "/auth/token", "grant_type=client_credentials&client_id=%ZZ&client_secret=%" },
    };

    [Theory]
    [MemberData(nameof(Forms))]
    public async Task A_form_past_the_limits_or_badly_encoded_is_refused_as_a_client_error(string path, string form)
    {
        using var http = auth.Gateway.CreateClient();
        using var response = await http.PostAsync(path, new StringContent(form, System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.InRange((int)response.StatusCode, 400, 499);
    }
}

public sealed class FailedClientAuthenticationSettingsTests
{
    [Theory]
    [InlineData("-1", "300")]
    [InlineData("20", "0")]
    public void A_negative_limit_or_an_empty_window_stops_the_start(string limit, string window)
    {
        using var gateway = new SqliteGateway { UseRealAuthentication = true };
        gateway.Settings["FhirSortie:Auth:MaxFailedClientAuthentications"] = limit;
        gateway.Settings["FhirSortie:Auth:FailedClientAuthenticationWindowSeconds"] = window;
        var refused = Assert.ThrowsAny<Exception>(() => gateway.CreateClient().Dispose());
        Assert.Contains("MaxFailedClientAuthentications", refused.ToString(), StringComparison.Ordinal);
    }
}
