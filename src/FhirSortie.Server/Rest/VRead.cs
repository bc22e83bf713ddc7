using System.Net;

namespace FhirSortie.Server.Rest;

/// <summary>vread: GET [base]/[type]/[id]/_history/[vid]. A version that is a deletion answers 410.</summary>
public static class VRead
{
    public static async Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var id = FhirRequest.Id(context);
        var version = FhirRequest.RequireVersion((string)context.Request.RouteValues["vid"]!);
        var access = Security.AccessPoint.Of(context);
        access.Require(Security.Interaction.VRead, type);
        var stored = await FhirRequest.Store(context).ReadVersionAsync(type, id, version, context.RequestAborted)
            ?? throw FhirException.NotFound($"{type}/{id} has no version {version}.");
        if (stored.Deleted)
            throw FhirException.Error(HttpStatusCode.Gone, Hl7.Fhir.Model.OperationOutcome.IssueType.Deleted, $"Version {version} of {type}/{id} is its deletion.");
        await access.RequireInstanceAsync(Security.Interaction.VRead, stored, context.RequestAborted);
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, stored));
    }
}
