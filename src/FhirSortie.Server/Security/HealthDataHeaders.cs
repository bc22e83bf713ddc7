namespace FhirSortie.Server.Security;

/// <summary>
/// Every answer carries <c>Cache-Control: no-store</c> and <c>X-Content-Type-Options: nosniff</c>: FHIR answers are
/// health data (an exit prescription, a psychiatric letter), and a browser-based SMART app or a proxy must not keep a
/// copy on disk that outlives the consent that let it through; a 304 to If-None-Match still works, from the ETag the
/// client kept itself. Set when the response starts, so an error answered after Response.Clear() carries them too.
/// A handler that chose its own Cache-Control keeps it.
/// </summary>
public static class HealthDataHeaders
{
    public static IApplicationBuilder UseHealthDataHeaders(this IApplicationBuilder app) => app.Use(static (context, next) =>
    {
        context.Response.OnStarting(static state =>
        {
            var headers = ((HttpResponse)state).Headers;
            if (headers.CacheControl.Count == 0) headers.CacheControl = "no-store";
            headers.XContentTypeOptions = "nosniff";
            return Task.CompletedTask;
        }, context.Response);
        return next(context);
    });
}
