using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// Applies <see cref="Redaction"/> to every FHIR answer a justice or social actor receives: the handlers write into a
/// buffer, the body is parsed, redacted and written again. One place on the way out rather than one call per
/// interaction, so a new route cannot forget it; only these callers pay for it (everyone else streams as before).
/// Error bodies (OperationOutcomes) pass through untouched. The audit row is still committed before the first byte
/// leaves: it is written when the redacted body starts to go out.
/// </summary>
public sealed class RedactionMiddleware(RequestDelegate next)
{
    public async System.Threading.Tasks.Task InvokeAsync(HttpContext context)
    {
        if (!context.Request.Path.StartsWithSegments(FhirBase.Path) || !Redaction.AppliesTo(Caller.Of(context)))
        {
            await next(context);
            return;
        }
        var original = context.Response.Body;
        using var buffer = new MemoryStream();
        context.Response.Body = buffer;
        try
        {
            await next(context);
        }
        finally
        {
            context.Response.Body = original;
        }
        var body = buffer.ToArray();
        if (body.Length > 0 && context.Response.StatusCode < 400
            && FhirFormat.FromMediaType(context.Response.ContentType?.Split(';')[0] ?? "") is { } format)
        {
            var resource = format == WireFormat.Json ? FhirResponse.ParseStored(body) : FhirFormat.Parse(body, format);
            if (Redaction.Apply(resource))
            {
                body = FhirFormat.Serialize(resource, format, FhirFormat.IsPretty(context.Request));
                context.Response.ContentLength = body.Length;
            }
        }
        if (body.Length > 0) await original.WriteAsync(body, context.RequestAborted);
    }
}
