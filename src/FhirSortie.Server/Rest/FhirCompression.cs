using System.IO.Compression;
using Microsoft.AspNetCore.ResponseCompression;

namespace FhirSortie.Server.Rest;

/// <summary>
/// FHIR answers (application/fhir+json, application/fhir+xml) are compressed with Brotli or gzip when the client asks
/// (Accept-Encoding): a CSAPA on a slow line pulls a searchset of prescriptions or a liaison letter several times
/// smaller. ASP.NET Core's own middleware; fastest level, since the gateway's two cores are better spent answering.
/// Nothing else is compressed (the token endpoint's answers hold secrets), and only over plain HTTP, which is what the
/// gateway sees behind the load balancer that ends TLS (ASP.NET Core's default, because of BREACH-style attacks).
/// </summary>
public static class FhirCompression
{
    public static void AddFhirCompression(this IServiceCollection services)
    {
        services.AddResponseCompression(options =>
        {
            options.MimeTypes = [FhirFormat.JsonContentType, FhirFormat.XmlContentType];
            options.Providers.Add<BrotliCompressionProvider>();
            options.Providers.Add<GzipCompressionProvider>();
        });
        services.Configure<BrotliCompressionProviderOptions>(o => o.Level = CompressionLevel.Fastest);
        services.Configure<GzipCompressionProviderOptions>(o => o.Level = CompressionLevel.Fastest);
    }
}
