namespace FhirSortie.Server.Rest;

/// <summary>The FHIR base URL as clients see it: configured (behind a load balancer) or taken from the request.</summary>
public static class FhirBase
{
    public const string Path = "/fhir";

    public static string Of(HttpContext context)
    {
        var configured = context.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<FhirSortieOptions>>().Value.PublicBaseUrl;
        if (!string.IsNullOrEmpty(configured)) return configured.TrimEnd('/');
        var request = context.Request;
        return $"{request.Scheme}://{request.Host}{request.PathBase}{Path}";
    }
}
