using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// [base]/$name, [base]/[type]/$name, [base]/[type]/[id]/$name for an operation no route serves: 400 not-supported
/// naming the operation, where the {type} and {id} routes would say "unknown resource type" or "invalid id". An
/// operation served there with other methods (GET on $import-cda, which affects state) is a 405 with Allow. The
/// served operations are those of the CapabilityStatement, read from the same routing table. Called by the handlers
/// whose {type} or {id} turns out to be "$name" (FhirRequest) and by the error middleware for URLs no route serves
/// (routes are not used as a catch-all: one would turn routing's own 405s into 404s).
/// </summary>
public static class UnknownOperation
{
    /// <summary>"$name" when the request's last path segment under the FHIR base is one, else null.</summary>
    public static string? Named(HttpContext context) => Segments(context) is [.., var last] && last.StartsWith('$') ? last : null;

    public static FhirException Refusal(HttpContext context)
    {
        var segments = Segments(context);
        var name = segments[^1];
        var type = segments.Length >= 2 ? FhirRequest.RequireType(segments[0]) : null;
        var instance = segments.Length >= 3;
        if (segments.Length > 3) return FhirException.NotFound("No FHIR interaction is served at this URL.");
        var served = context.RequestServices.GetRequiredService<EndpointDataSource>().Endpoints
            .SelectMany(Capabilities.Classify)
            .Where(s => s.Code == name && (type is null ? s.Level == Capabilities.Level.System : s.Serves(type))
                && s.Endpoint is RouteEndpoint route && route.RoutePattern.Parameters.Any(p => p.Name == "id") == instance)
            .SelectMany(s => s.Endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [])
            .Distinct(StringComparer.Ordinal).ToList();
        var where = type is null ? "[base]" : instance ? $"{type}/[id]" : type;
        if (served.Count > 0)
        {
            return new FhirException(HttpStatusCode.MethodNotAllowed, Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.NotSupported,
                $"{name} at {where} is served with {string.Join(", ", served)}, not {context.Request.Method}.")) { Allow = string.Join(", ", served) };
        }
        return FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
            $"The operation {name} is not supported at {where}; [base]/metadata lists the operations this server serves.");
    }

    private static string[] Segments(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        if (!path.StartsWith(FhirBase.Path + "/", StringComparison.Ordinal)) return [];
        return path[(FhirBase.Path.Length + 1)..].Split('/', StringSplitOptions.RemoveEmptyEntries);
    }
}
