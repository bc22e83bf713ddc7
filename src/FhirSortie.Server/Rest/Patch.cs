using System.Net;
using System.Text.Json.Nodes;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// patch: PATCH [base]/[type]/[id] and conditional PATCH [base]/[type]?search, with a JSON Patch
/// (application/json-patch+json) or a FHIRPath Patch (a Parameters resource in FHIR JSON or XML).
/// The patched resource is strictly re-parsed and saved as a new version, exactly like an update.
/// </summary>
public static class Patch
{
    public const string JsonPatchContentType = "application/json-patch+json";

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var id = FhirRequest.Id(context);
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Patch, type);
        var document = await ReadDocumentAsync(context);
        var ifMatch = FhirRequest.IfMatchVersion(context.Request.Headers.IfMatch.ToString());
        var result = await FhirRequest.Store(context).WriteAsync(
            access.Guard(s => ExecuteAsync(s, type, id, document, ifMatch, context.RequestAborted)), context.RequestAborted);
        await FhirResponse.WriteAsync(context, result, isWrite: true);
    }

    public static async System.Threading.Tasks.Task HandleConditional(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var query = context.Request.QueryString.Value ?? "";
        var access = AccessPoint.Of(context);
        access.Require(new AccessRequest(Interaction.Patch, type) { Conditional = true, Query = Conditional.Pairs(query) });
        var document = await ReadDocumentAsync(context);
        var ifMatch = FhirRequest.IfMatchVersion(context.Request.Headers.IfMatch.ToString());
        var search = context.RequestServices.GetRequiredService<SearchEngine>();
        var result = await FhirRequest.Store(context).WriteAsync(
            access.Guard(s => ExecuteConditionalAsync(s, search, type, query, document, ifMatch, context.RequestAborted)), context.RequestAborted);
        await FhirResponse.WriteAsync(context, result, isWrite: true);
    }

    public static async Task<FhirResult> ExecuteAsync(WriteSession session, string type, string id, PatchDocument document, int? ifMatch, CancellationToken ct)
    {
        var current = await session.ReadForUpdateAsync(type, id, ct);
        if (current is null) throw FhirException.NotFound($"{type}/{id} is not known; PATCH only changes an existing resource.");
        // Decided like a read of the current version, before the patch or If-Match can say anything about it (hidden: 404).
        await AccessPoint.RequireWritableAsync(session, Interaction.Patch, current, ct);
        if (current.Deleted)
            throw FhirException.Error(HttpStatusCode.Gone, OperationOutcome.IssueType.Deleted, $"{type}/{id} was deleted (version {current.Version}); it cannot be patched.");
        if (ifMatch is { } expected && current.Version != expected)
        {
            throw FhirException.Error(HttpStatusCode.PreconditionFailed, OperationOutcome.IssueType.Conflict,
                $"If-Match W/\"{expected}\" does not match the current version of {type}/{id} ({current.Version}).");
        }
        var patched = document.Apply(current.Json!);
        if (patched.TypeName != type || patched.Id != id)
        {
            throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.Processing,
                $"The patch changes the resource's type or id (to {patched.TypeName}/{patched.Id}); a patch cannot do that.");
        }
        return await Update.ExecuteAsync(session, type, id, patched, ifMatch, ct, method: "PATCH");
    }

    public static async Task<FhirResult> ExecuteConditionalAsync(WriteSession session, SearchEngine search, string type, string query, PatchDocument document, int? ifMatch, CancellationToken ct)
    {
        var matches = await Conditional.MatchAsync(session, search, type, query, ct);
        return matches.Count switch
        {
            0 => throw FhirException.NotFound($"No {type} matches {query}; conditional PATCH only changes an existing resource."),
            1 => await ExecuteAsync(session, type, matches[0].Id, document, ifMatch, ct),
            _ => throw Conditional.MultipleMatches("patch", type, query),
        };
    }

    private static async Task<PatchDocument> ReadDocumentAsync(HttpContext context)
    {
        var mediaType = (context.Request.ContentType ?? "").Split(';')[0].Trim().ToLowerInvariant();
        var body = await FhirFormat.ReadBodyAsync(context.Request, FhirRequest.Options(context).MaxRequestBodyBytes, context.RequestAborted);
        if (mediaType == JsonPatchContentType) return new PatchDocument.Json(JsonPatch.Parse(body));
        if (FhirFormat.FromMediaType(mediaType) is { } format) return PatchDocument.FromBody(FhirFormat.Parse(body, format));
        throw FhirException.Error(HttpStatusCode.UnsupportedMediaType, OperationOutcome.IssueType.NotSupported,
            $"PATCH takes {JsonPatchContentType} (JSON Patch) or application/fhir+json / application/fhir+xml (FHIRPath Patch Parameters), not '{context.Request.ContentType}'.");
    }
}

/// <summary>A patch, whatever its syntax: applied to the stored JSON of the current version, it yields the new resource.</summary>
public abstract record PatchDocument
{
    public abstract Resource Apply(byte[] storedJson);

    public static PatchDocument FromBody(Resource body) => body is Parameters parameters
        ? new FhirPath(FhirPathPatch.Parse(parameters))
        : throw FhirException.BadRequest($"A FHIRPath Patch is a Parameters resource, not a {body.TypeName}.", "resourceType");

    /// <summary>The resource of a PATCH entry in a batch/transaction: Parameters, or a Binary holding a JSON Patch.</summary>
    public static PatchDocument FromBundleResource(Resource resource, string where)
    {
        try
        {
            return resource switch
            {
                Parameters parameters => new FhirPath(FhirPathPatch.Parse(parameters)),
                Binary { ContentType: Patch.JsonPatchContentType, Data: { } data } => new Json(JsonPatch.Parse(data)),
                _ => throw FhirException.BadRequest(
                    $"A PATCH entry's resource must be a Parameters (FHIRPath Patch) or a Binary with contentType {Patch.JsonPatchContentType} and data.", $"{where}.resource"),
            };
        }
        catch (FhirException e)
        {
            foreach (var issue in e.Outcome.Issue) issue.Expression = [$"{where}.resource", .. issue.Expression];
            throw;
        }
    }

    public sealed record Json(JsonPatch Patch) : PatchDocument
    {
        public override Resource Apply(byte[] storedJson)
        {
            string json;
            try
            {
                var patched = Patch.Apply(JsonNode.Parse(storedJson));
                if (patched is not JsonObject)
                {
                    throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.Processing,
                        "The JSON Patch does not leave a resource (a JSON object).");
                }
                json = patched.ToJsonString();
            }
            catch (InvalidOperationException e)
            {
                // Copies of the document into itself nest it one level each: past the JSON writer's 1,000 levels.
                throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.Processing,
                    $"The JSON Patch leaves a document that cannot be written: {e.Message}");
            }
            try
            {
                return FhirFormat.Parse(System.Text.Encoding.UTF8.GetBytes(json), WireFormat.Json);
            }
            catch (FhirException e) when (e.Status == HttpStatusCode.BadRequest)
            {
                // The request was well formed; what it produced is not a valid resource.
                throw new FhirException(HttpStatusCode.UnprocessableEntity, e.Outcome);
            }
        }
    }

    public sealed record FhirPath(FhirPathPatch Patch) : PatchDocument
    {
        public override Resource Apply(byte[] storedJson) => Patch.Apply(FhirFormat.Parse(storedJson, WireFormat.Json));
    }
}
