using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The portal's FHIR client: the gateway's own /fhir over loopback HTTP with the signed-in user's access token, so
/// scopes, consent, redaction, audit (naming the user) and Provenance apply exactly as to any SMART app. It never
/// touches the database.
/// </summary>
public sealed class PortalApi(HttpContext browser, IHttpClientFactory http, Loopback loopback, string accessToken)
{
    // The gateway's own answers, already validated when stored: the lenient mode parses them about twice as fast as
    // strict (docs/stack notes: 270 vs 600 µs for 20 KB), which is most of the Sorties board's own time with 500 people.
    private static readonly FhirJsonDeserializer Deserializer = new(new DeserializerSettings().UsingMode(DeserializationMode.Recoverable));
    private static readonly FhirJsonSerializer Serializer = new();

    /// <summary>A search (relative URL, e.g. "Task?owner=..."): the Bundle, or an empty one when refused.</summary>
    public async Task<Bundle> SearchAsync(string relative)
    {
        var answer = await SendAsync(HttpMethod.Get, relative, null, null);
        return answer.Resource as Bundle ?? new Bundle { Type = Bundle.BundleType.Searchset };
    }

    /// <summary>A read: the resource and its version, or null (hidden by consent, unknown, refused).</summary>
    public async Task<(T? Resource, string? Version)> ReadAsync<T>(string relative) where T : Resource
    {
        var answer = await SendAsync(HttpMethod.Get, relative, null, null);
        return (answer.Resource as T, answer.ETag);
    }

    public Task<ApiAnswer> UpdateAsync(Resource resource, string? etag) =>
        SendAsync(HttpMethod.Put, $"{resource.TypeName}/{resource.Id}", resource, etag);

    public Task<ApiAnswer> CreateAsync(Resource resource) => SendAsync(HttpMethod.Post, resource.TypeName, resource, null);

    public Task<ApiAnswer> PostAsync(string relative, Resource resource) => SendAsync(HttpMethod.Post, relative, resource, null);

    /// <summary>A resource as the R4 JSON the gateway parses.</summary>
    public static string Serialize(Resource resource) => Serializer.SerializeToString(resource);

    public async Task<ApiAnswer> SendAsync(HttpMethod method, string relative, Resource? body, string? etag)
    {
        using var request = new HttpRequestMessage(method, new Uri(loopback.BaseFor(browser), "fhir/" + relative));
        AsBrowserOrigin(request, browser);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        if (etag is not null) request.Headers.TryAddWithoutValidation("If-Match", etag);
        if (body is not null) request.Content = new StringContent(Serialize(body), Encoding.UTF8, "application/fhir+json");
        using var response = await http.CreateClient(Loopback.HttpClientName).SendAsync(request, browser.RequestAborted);
        var text = await response.Content.ReadAsStringAsync(browser.RequestAborted);
        Resource? resource = null;
        if (text.Length > 0 && (response.Content.Headers.ContentType?.MediaType?.Contains("json", StringComparison.Ordinal) ?? false))
        {
            try { resource = Deserializer.DeserializeResource(text); }
            catch (DeserializationFailedException) { resource = null; }
        }
        return new ApiAnswer(response.StatusCode, resource, response.Headers.ETag?.ToString());
    }

    /// <summary>
    /// The request as the browser's origin sees it (Host: the issuer and audience of the user's tokens), with the
    /// browser's address for the audit trail (the gateway trusts X-Forwarded-For from loopback only, as ASP.NET Core
    /// does by default) and the page request's id as correlation.
    /// </summary>
    public static void AsBrowserOrigin(HttpRequestMessage request, HttpContext browser)
    {
        request.Headers.Host = browser.Request.Host.Value;
        if (browser.Connection.RemoteIpAddress is { } address) request.Headers.TryAddWithoutValidation("X-Forwarded-For", address.ToString());
        request.Headers.TryAddWithoutValidation(Rest.RequestIds.CorrelationHeader, browser.TraceIdentifier);
    }
}

/// <summary>An answer of the API: status, resource (or OperationOutcome), ETag.</summary>
public sealed record ApiAnswer(HttpStatusCode Status, Resource? Resource, string? ETag)
{
    public bool Ok => (int)Status is >= 200 and < 300;

    /// <summary>What to tell the user when it failed: the gateway's reason, introduced in French.</summary>
    public string Problem => Status switch
    {
        HttpStatusCode.Forbidden => "La passerelle a refusé cette action (droits ou consentement).",
        HttpStatusCode.NotFound => "Cette information n'est pas (ou plus) accessible.",
        HttpStatusCode.Conflict or HttpStatusCode.PreconditionFailed => "Cette prise en charge a changé entre-temps : rechargez la page.",
        _ => $"La passerelle a refusé cette action (code {(int)Status}).",
    } + (Resource is OperationOutcome outcome && outcome.Issue.FirstOrDefault()?.Diagnostics is { Length: > 0 } why ? " Détail : " + why : "");
}
