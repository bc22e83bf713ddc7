using System.Net.Http.Headers;
using System.Text.Json;

namespace FhirSortie.Bench;

/// <summary>
/// Sends a client_credentials token of the bench client (FHIRSORTIE_BENCH_CLIENT = "id:secret") with every request,
/// fetched from the gateway's /auth/token and renewed a minute before its (at most five-minute) lifetime ends.
/// Without the variable, requests go out without a token. <paramref name="client"/> ("id:secret") names another client
/// (the scale loader posts as each prison's USMP and moves hand-offs as each receiver) asking for <paramref name="scope"/>.
/// </summary>
public sealed class BenchToken(string fhirBase, HttpMessageHandler inner, string? client = null, string scope = "system/*.cruds") : DelegatingHandler(inner)
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly string? _client = client ?? Environment.GetEnvironmentVariable("FHIRSORTIE_BENCH_CLIENT");
    private string? _token;
    private DateTime _renewAt;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (_client is { Length: > 0 })
        {
            if (_token is null || DateTime.UtcNow >= _renewAt) await RenewAsync(cancellationToken);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        }
        return await base.SendAsync(request, cancellationToken);
    }

    private async Task RenewAsync(CancellationToken ct)
    {
        await _lock.WaitAsync(ct);
        try
        {
            if (_token is not null && DateTime.UtcNow < _renewAt) return;
            using var token = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(fhirBase), "/auth/token"))
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["scope"] = scope }),
            };
            token.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(_client!)));
            using var response = await base.SendAsync(token, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"No bench token: {(int)response.StatusCode} {body}");
            using var document = JsonDocument.Parse(body);
            _token = document.RootElement.GetProperty("access_token").GetString();
            _renewAt = DateTime.UtcNow.AddSeconds(Math.Max(10, document.RootElement.GetProperty("expires_in").GetInt32() - 60));
        }
        finally
        {
            _lock.Release();
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _lock.Dispose();
        base.Dispose(disposing);
    }
}
