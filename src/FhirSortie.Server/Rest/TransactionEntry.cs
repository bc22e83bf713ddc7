using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// One entry of a batch or transaction Bundle, checked and parsed: what interaction its request names
/// (read, vread, search, create, update, patch, delete, conditional or not) and on which resource.
/// </summary>
public sealed record TransactionEntry(int Index, Bundle.HTTPVerb Method, string Type, string? Id, int? Version, string? Query, Resource? Resource,
    string? FullUrl, int? IfMatch, string? IfNoneExist, string? IfNoneMatch)
{
    /// <summary>The FHIRPath expression that names this entry in OperationOutcome.issue.expression.</summary>
    public string Expression => $"Bundle.entry[{Index}]";

    public bool IsConditional => Query is not null && Id is null;

    /// <summary>The spec's processing order for a transaction: DELETE, POST, PUT/PATCH, then GET/HEAD.</summary>
    public int ProcessingRank => Method switch
    {
        Bundle.HTTPVerb.DELETE => 0,
        Bundle.HTTPVerb.POST => 1,
        Bundle.HTTPVerb.PUT or Bundle.HTTPVerb.PATCH => 2,
        _ => 3,
    };

    /// <summary>Checks entry <paramref name="index"/> of a batch/transaction: request present, method and url usable.</summary>
    public static TransactionEntry Parse(Bundle.EntryComponent entry, int index, string baseUrl)
    {
        var where = $"Bundle.entry[{index}]";
        var request = entry.Request ?? throw FhirException.BadRequest($"Entry {index} has no request (method and url are required in a batch or transaction).", where);
        var method = request.Method ?? throw FhirException.BadRequest($"Entry {index} has no request.method.", $"{where}.request.method");
        if (string.IsNullOrWhiteSpace(request.Url)) throw FhirException.BadRequest($"Entry {index} has no request.url.", $"{where}.request.url");

        var url = request.Url.Trim();
        if (url.StartsWith(baseUrl + "/", StringComparison.Ordinal)) url = url[(baseUrl.Length + 1)..];
        else if (Uri.TryCreate(url, UriKind.Absolute, out _))
            throw FhirException.BadRequest($"Entry {index}: request.url '{request.Url}' is not on this server; use a URL relative to the base.", $"{where}.request.url");
        url = url.TrimStart('/');

        string? query = null;
        var question = url.IndexOf('?');
        if (question >= 0)
        {
            query = url[(question + 1)..];
            url = url[..question];
        }
        var segments = url.Split('/');
        var type = segments[0];
        if (!ModelInfo.IsKnownResource(type) || type is "Resource" or "DomainResource")
            throw FhirException.BadRequest($"Entry {index}: request.url '{request.Url}' does not start with a known resource type.", $"{where}.request.url");
        string? id = null;
        int? version = null;
        switch (segments.Length)
        {
            case 1:
                break;
            case 2:
                id = RequireId(segments[1], index);
                break;
            case 4 when segments[2] == "_history" && method is Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD:
                id = RequireId(segments[1], index);
                version = int.TryParse(segments[3], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v) && v > 0
                    ? v
                    : throw FhirException.BadRequest($"Entry {index}: '{segments[3]}' is not a version number.", $"{where}.request.url");
                break;
            default:
                throw FhirException.BadRequest($"Entry {index}: request.url '{request.Url}' is not a supported interaction URL ([type], [type]/[id], [type]/[id]/_history/[vid], [type]?search).", $"{where}.request.url");
        }

        var resource = entry.Resource;
        switch (method)
        {
            case Bundle.HTTPVerb.POST:
                if (id is not null || query is not null)
                    throw FhirException.BadRequest($"Entry {index}: a POST entry's url must be the resource type only (use ifNoneExist for a conditional create).", $"{where}.request.url");
                RequireResource(resource, index, type);
                break;
            case Bundle.HTTPVerb.PUT:
                if (id is null && query is null)
                    throw FhirException.BadRequest($"Entry {index}: a PUT entry's url must be [type]/[id] or [type]?search.", $"{where}.request.url");
                RequireResource(resource, index, type);
                break;
            case Bundle.HTTPVerb.PATCH:
                if (id is null && query is null)
                    throw FhirException.BadRequest($"Entry {index}: a PATCH entry's url must be [type]/[id] or [type]?search.", $"{where}.request.url");
                if (resource is not (Parameters or Binary))
                    throw FhirException.BadRequest($"Entry {index}: a PATCH entry needs a Parameters resource (FHIRPath Patch) or a Binary holding a JSON Patch.", $"{where}.resource");
                break;
            case Bundle.HTTPVerb.DELETE:
                if (id is null && query is null)
                    throw FhirException.BadRequest($"Entry {index}: a DELETE entry's url must be [type]/[id] or [type]?search.", $"{where}.request.url");
                break;
            case Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD:
                if (id is not null && query is not null)
                    throw FhirException.BadRequest($"Entry {index}: parameters on a read are not supported: '{request.Url}'.", $"{where}.request.url");
                break;
            default:
                throw FhirException.BadRequest($"Entry {index}: method {method} is not supported.", $"{where}.request.method");
        }
        if (query is not null && method != Bundle.HTTPVerb.GET && string.IsNullOrWhiteSpace(query))
            throw FhirException.BadRequest($"Entry {index}: a conditional {method} needs search parameters after '?'.", $"{where}.request.url");

        int? ifMatch;
        try
        {
            ifMatch = FhirRequest.IfMatchVersion(request.IfMatch);
        }
        catch (FhirException)
        {
            throw FhirException.BadRequest($"Entry {index}: ifMatch '{request.IfMatch}' is not a version ETag such as W/\"3\".", $"{where}.request.ifMatch");
        }
        var ifNoneExist = string.IsNullOrWhiteSpace(request.IfNoneExist) ? null : request.IfNoneExist.TrimStart('?');
        if (ifNoneExist is not null && method != Bundle.HTTPVerb.POST)
            throw FhirException.BadRequest($"Entry {index}: ifNoneExist only applies to POST.", $"{where}.request.ifNoneExist");
        return new TransactionEntry(index, method, type, id, version, query, resource, entry.FullUrl, ifMatch, ifNoneExist, request.IfNoneMatch);
    }

    private static string RequireId(string id, int index) =>
        FhirRequest.IsValidId(id) ? id : throw FhirException.BadRequest($"Entry {index}: '{id}' is not a valid resource id.", $"Bundle.entry[{index}].request.url");

    private static void RequireResource(Resource? resource, int index, string type)
    {
        if (resource is null)
            throw FhirException.BadRequest($"Entry {index} has no resource to write.", $"Bundle.entry[{index}].resource");
        if (resource.TypeName != type)
            throw FhirException.BadRequest($"Entry {index}: the resource is a {resource.TypeName} but request.url is for {type}.", $"Bundle.entry[{index}].resource");
    }

    /// <summary>"201 Created": the status line form Bundle.entry.response.status uses.</summary>
    public static string StatusLine(HttpStatusCode status) =>
        $"{(int)status} {Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase((int)status)}";
}
