using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace FhirSortie.IntegrationTests;

/// <summary>The real server process in Production: no demo clients, tokens from /auth/token, 401 without one.</summary>
public sealed class AuthorizationTests
{
    [Fact]
    public async Task Production_server_issues_tokens_to_configured_clients_and_refuses_requests_without_one()
    {
        using var storage = Storage.Create("Sqlite");
        await using var server = await ServerProcess.StartAsync(storage);
        using var anonymous = new HttpClient { BaseAddress = server.BaseUrl };

        using var refused = await anonymous.GetAsync("Patient");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.StartsWith("Bearer", refused.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Contains("OperationOutcome", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Demo mode is off in Production: the demo secrets open nothing.
        using var demo = await anonymous.PostAsync(new Uri(server.BaseUrl, "/auth/token"), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = "usmp-demo", ["client_secret"] = "usmp-demo-secret", ["scope"] = "system/*.cruds",
        }));
        Assert.NotEqual(HttpStatusCode.OK, demo.StatusCode);

        var (token, expiresIn) = await TestClient.TokenAsync(server.BaseUrl);
        Assert.InRange(expiresIn, 1, 300);
        using var request = new HttpRequestMessage(HttpMethod.Get, "Patient");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var allowed = await anonymous.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);

        using var discovery = JsonDocument.Parse(await anonymous.GetStringAsync(".well-known/smart-configuration"));
        Assert.Equal(new Uri(server.BaseUrl, "/auth/token").ToString(), discovery.RootElement.GetProperty("token_endpoint").GetString());
    }
}
