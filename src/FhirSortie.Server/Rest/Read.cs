using System.Net;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Rest;

/// <summary>read: GET [base]/[type]/[id]. 404 when unknown, 410 when deleted, 304 on a matching If-None-Match.</summary>
public static class Read
{
    public static async Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var id = FhirRequest.Id(context);
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Read, type);
        var result = await ExecuteAsync(FhirRequest.Store(context), type, id, context.RequestAborted);
        await access.RequireInstanceAsync(Interaction.Read, result.Stored!, context.RequestAborted);
        if (result.Stored is { } stored && IsNotModified(context.Request, stored))
        {
            await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.NotModified, stored));
            return;
        }
        await FhirResponse.WriteAsync(context, result);
    }

    public static async Task<FhirResult> ExecuteAsync(ResourceStore store, string type, string id, CancellationToken ct)
    {
        var stored = await store.ReadAsync(type, id, ct);
        return Found(stored, type, id);
    }

    public static FhirResult Found(StoredResource? stored, string type, string id)
    {
        if (stored is null) throw FhirException.NotFound($"{type}/{id} is not known.");
        if (stored.Deleted)
            throw FhirException.Error(HttpStatusCode.Gone, Hl7.Fhir.Model.OperationOutcome.IssueType.Deleted, $"{type}/{id} was deleted (version {stored.Version}).");
        return FhirResult.Of(HttpStatusCode.OK, stored);
    }

    private static bool IsNotModified(HttpRequest request, StoredResource stored)
    {
        var ifNoneMatch = request.Headers.IfNoneMatch.ToString();
        if (ifNoneMatch.Length > 0)
        {
            return ifNoneMatch.Split(',').Any(tag => tag.Trim() == "*" || FhirRequest.IfMatchVersion(tag.Trim()) == stored.Version);
        }
        var ifModifiedSince = request.Headers.IfModifiedSince.ToString();
        return ifModifiedSince.Length > 0
            && DateTimeOffset.TryParse(ifModifiedSince, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var since)
            && stored.LastUpdated < since.AddSeconds(1);
    }
}
