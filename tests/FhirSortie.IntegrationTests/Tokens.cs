using System.Net.Http.Headers;
using System.Text.Json;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// The client the real server processes are started with (Production: no demo clients), and an HTTP handler that
/// gets it a client_credentials token from the server's /auth/token (client_secret_basic) and sends it on every
/// request, fetching a new one before the five-minute lifetime runs out.
/// </summary>
public static class TestClient
{
    public const string ClientId = "it-usmp";
    public const string Secret = "it-usmp-secret-not-for-production";
    public const string Scopes = "system/*.cruds";

    public static IReadOnlyDictionary<string, string> Settings { get; } = new Dictionary<string, string>
    {
        ["FhirSortie__Clients__0__ClientId"] = ClientId,
        ["FhirSortie__Clients__0__Secret"] = Secret,
        ["FhirSortie__Clients__0__ActorKind"] = "Usmp",
        ["FhirSortie__Clients__0__OrganizationFiness"] = "750000010",
        ["FhirSortie__Clients__0__AllowedScopes"] = Scopes,
    };

    /// <summary>Fetches a token for <see cref="ClientId"/> from the server whose FHIR base is <paramref name="fhirBase"/>.</summary>
    public static async Task<(string Token, int ExpiresIn)> TokenAsync(Uri fhirBase, CancellationToken ct = default)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(fhirBase, "/auth/token"))
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["scope"] = Scopes }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{ClientId}:{Secret}")));
        using var response = await http.SendAsync(request, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"No token from {request.RequestUri}: {(int)response.StatusCode} {body}");
        using var document = JsonDocument.Parse(body);
        return (document.RootElement.GetProperty("access_token").GetString()!, document.RootElement.GetProperty("expires_in").GetInt32());
    }
}

/// <summary>Adds "Authorization: Bearer" with a token of <see cref="TestClient"/>, renewed a minute before it expires.</summary>
public sealed class BearerTokenHandler(Uri fhirBase, HttpMessageHandler inner) : DelegatingHandler(inner)
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private string? _token;
    private DateTime _renewAt;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (_token is null || DateTime.UtcNow >= _renewAt)
        {
            await _lock.WaitAsync(cancellationToken);
            try
            {
                if (_token is null || DateTime.UtcNow >= _renewAt)
                {
                    var (token, expiresIn) = await TestClient.TokenAsync(fhirBase, cancellationToken);
                    (_token, _renewAt) = (token, DateTime.UtcNow.AddSeconds(Math.Max(10, expiresIn - 60)));
                }
            }
            finally
            {
                _lock.Release();
            }
        }
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        return await base.SendAsync(request, cancellationToken);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _lock.Dispose();
        base.Dispose(disposing);
    }
}
