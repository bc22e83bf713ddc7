namespace FhirSortie.Server.Rest;

/// <summary>
/// FHIR's custom headers (R4 http.html): every answer carries <c>X-Request-Id</c>, the id the gateway assigned to the
/// request (ASP.NET Core's TraceIdentifier, the RequestId of its log lines and the id a 500 names), so an integrator
/// reporting a problem hands support the one id that finds it; a client's own <c>X-Correlation-Id</c> is echoed back.
/// The client's id is not logged: it is the client's text, and nothing a client sends reaches the logs (it could be an
/// INS). Set when the response starts, so errors answered after Response.Clear() carry them too.
/// </summary>
public static class RequestIds
{
    public const string RequestHeader = "X-Request-Id";
    public const string CorrelationHeader = "X-Correlation-Id";

    /// <summary>Longest correlation id echoed back; a longer one, or one with other than visible ASCII, is dropped.</summary>
    public const int MaxCorrelationLength = 200;

    public static IApplicationBuilder UseRequestIds(this IApplicationBuilder app) => app.Use(static (context, next) =>
    {
        context.Response.OnStarting(static state =>
        {
            var http = (HttpContext)state;
            http.Response.Headers[RequestHeader] = http.TraceIdentifier;
            if (http.Request.Headers[CorrelationHeader] is [{ } correlation] && IsEchoable(correlation))
                http.Response.Headers[CorrelationHeader] = correlation;
            return Task.CompletedTask;
        }, context);
        return next(context);
    });

    private static bool IsEchoable(string value) =>
        value.Length is > 0 and <= MaxCorrelationLength && value.All(c => c is > ' ' and < (char)127);
}
