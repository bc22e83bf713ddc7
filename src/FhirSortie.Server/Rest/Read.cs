using System.Net;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Rest;

/// <summary>
/// read: GET [base]/[type]/[id]. 404 when unknown (or hidden from the caller, even once deleted), 410 when deleted, 304 on a
/// matching If-None-Match.
/// </summary>
public static class Read
{
    public static async Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var id = FhirRequest.Id(context);
        if (type == Audit.AuditStore.Type) { await Audit.AuditEndpoints.ReadAsync(context, id, null); return; } // served by the audit store
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Read, type);
        var store = FhirRequest.Store(context);
        var current = await store.ReadAsync(type, id, context.RequestAborted);
        if (current is { Deleted: true, Version: > 1 })
        {
            // A 410 tells that the resource existed: only to a caller who could see what was deleted (as vread does).
            await using var connection = await store.OpenAsync(context.RequestAborted);
            var deleted = await store.ReadVersionAsync(connection, null, type, id, current.Version - 1, context.RequestAborted);
            if (deleted is not null) await access.RequireVersionAsync(Interaction.Read, deleted, connection, null, context.RequestAborted);
        }
        var result = Found(current, type, id);
        await access.RequireInstanceAsync(Interaction.Read, result.Stored!, context.RequestAborted);
        if (result.Stored is { } stored && IsNotModified(context.Request, stored))
        {
            await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.NotModified, stored));
            return;
        }
        await FhirResponse.WriteAsync(context, result);
    }

    public static FhirResult Found(StoredResource? stored, string type, string id)
    {
        if (stored is null) throw FhirException.NotFound($"{type}/{id} is not known.");
        if (stored.Deleted)
            throw FhirException.Error(HttpStatusCode.Gone, Hl7.Fhir.Model.OperationOutcome.IssueType.Deleted, $"{type}/{id} was deleted (version {stored.Version}).");
        return FhirResult.Of(HttpStatusCode.OK, stored);
    }

    /// <summary>If-None-Match naming this version (or *), or If-Modified-Since not before it: 304 (also for audit records).</summary>
    internal static bool IsNotModified(HttpRequest request, StoredResource stored)
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
