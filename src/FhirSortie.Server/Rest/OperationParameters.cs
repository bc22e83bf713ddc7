using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// The input parameters of an operation (R4 operations.html): the query string, and for a POST the body as well, taken
/// together as one set. The body is a Parameters resource (JSON or XML), a form (application/x-www-form-urlencoded,
/// as a POST _search sends), or nothing: Firely's FhirClient and fhir-kit-client POST operations by default, often
/// with an empty Parameters or no body at all. The operations read these as name/value pairs, as they read a query;
/// a parameter given as a resource or with parts is refused (ours take primitives only, which is also why they may be
/// invoked with GET).
/// </summary>
public static class OperationParameters
{
    public static async Task<IReadOnlyList<KeyValuePair<string, string>>> ReadAsync(HttpContext context)
    {
        var request = context.Request;
        if (!HttpMethods.IsPost(request.Method) || request.HasFormContentType) return await Search.QueryAsync(context);
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var (key, values) in request.Query)
            foreach (var v in values) pairs.Add(new(key, v ?? ""));
        var body = await FhirFormat.ReadBodyAsync(request, FhirRequest.Options(context).MaxRequestBodyBytes, context.RequestAborted, allowEmpty: true);
        if (body.Length == 0) return pairs;
        var format = FhirFormat.RequestFormat(request);
        // The SDK's strict parser refuses an empty resource, yet an empty Parameters is what clients send for "no input".
        if (IsEmptyParameters(body, format)) return pairs;
        var resource = FhirFormat.Parse(body, format);
        if (resource is not Parameters parameters)
            throw FhirException.BadRequest($"The body of an operation is a Parameters resource, not a {resource.TypeName}.", "resourceType");
        foreach (var parameter in parameters.Parameter)
        {
            // ToString: the value as FHIR writes it (an instant as 2026-11-23T09:00:00Z), as it would be in a query.
            if (parameter.Value is PrimitiveType primitive && primitive.ToString() is { Length: > 0 } text && parameter.Resource is null && parameter.Part.Count == 0)
            {
                pairs.Add(new(parameter.Name ?? "", text));
                continue;
            }
            throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
                $"The parameter '{parameter.Name}' must have a primitive value (this operation takes no resources, parts or complex values).",
                $"Parameters.parameter.where(name = '{parameter.Name}')");
        }
        return pairs;
    }

    private static bool IsEmptyParameters(byte[] body, WireFormat format)
    {
        try
        {
            if (format == WireFormat.Json)
            {
                using var json = System.Text.Json.JsonDocument.Parse(body);
                return json.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object
                    && json.RootElement.EnumerateObject().Count() == 1
                    && json.RootElement.TryGetProperty("resourceType", out var type) && type.ValueEquals("Parameters");
            }
            using var stream = new MemoryStream(body);
            using var xml = System.Xml.XmlReader.Create(stream, FhirFormat.SafeXmlSettings);
            var root = System.Xml.Linq.XElement.Load(xml);
            return root.Name == System.Xml.Linq.XName.Get("Parameters", "http://hl7.org/fhir") && !root.HasElements && !root.Attributes().Any(a => !a.IsNamespaceDeclaration);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or System.Xml.XmlException)
        {
            return false; // not empty: the strict parser says what is wrong with it
        }
    }
}
