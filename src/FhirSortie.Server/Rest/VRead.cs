using System.Net;

namespace FhirSortie.Server.Rest;

/// <summary>
/// vread: GET [base]/[type]/[id]/_history/[vid]. A version that is a deletion answers 410. Access is decided on the
/// version itself (its own labels and patients), not on the current one: a hidden version is 404 like a read.
/// If-None-Match and If-Modified-Since answer 304 as they do on a read.
/// </summary>
public static class VRead
{
    public static async Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var id = FhirRequest.Id(context);
        var version = FhirRequest.RequireVersion((string)context.Request.RouteValues["vid"]!);
        if (type == Audit.AuditStore.Type) { await Audit.AuditEndpoints.ReadAsync(context, id, version); return; } // served by the audit store
        var access = Security.AccessPoint.Of(context);
        access.Require(Security.Interaction.VRead, type);
        var store = FhirRequest.Store(context);
        var ct = context.RequestAborted;
        Storage.StoredResource stored;
        await using (var connection = await store.OpenAsync(ct))
        {
            stored = await store.ReadVersionAsync(connection, null, type, id, version, ct)
                ?? throw FhirException.NotFound($"{type}/{id} has no version {version}.");
            // A deletion carries no content: it is shown as what it deleted is (the version before it).
            var decided = stored.Deleted && version > 1 ? await store.ReadVersionAsync(connection, null, type, id, version - 1, ct) ?? stored : stored;
            await access.RequireVersionAsync(Security.Interaction.VRead, decided, connection, null, ct);
        }
        if (stored.Deleted)
            throw FhirException.Error(HttpStatusCode.Gone, Hl7.Fhir.Model.OperationOutcome.IssueType.Deleted, $"Version {version} of {type}/{id} is its deletion.");
        // Conditional like a read (If-None-Match, If-Modified-Since): a cache revalidating a version it holds gets a 304.
        var status = Read.IsNotModified(context.Request, stored) ? HttpStatusCode.NotModified : HttpStatusCode.OK;
        await FhirResponse.WriteAsync(context, FhirResult.Of(status, stored));
    }
}
