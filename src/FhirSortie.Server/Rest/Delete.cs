using System.Net;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Rest;

/// <summary>
/// delete: DELETE [base]/[type]/[id] writes a deletion version (read answers 410 afterwards; history keeps the rest),
/// and conditional delete DELETE [base]/[type]?search (one match; several matches are a 412).
/// </summary>
public static class Delete
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var id = FhirRequest.Id(context);
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Delete, type);
        var result = await FhirRequest.Store(context).WriteAsync(access.Guard(s => ExecuteAsync(s, type, id, context.RequestAborted)), context.RequestAborted);
        await FhirResponse.WriteAsync(context, result);
    }

    public static async System.Threading.Tasks.Task HandleConditional(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var query = context.Request.QueryString.Value ?? "";
        var access = AccessPoint.Of(context);
        access.Require(new AccessRequest(Interaction.Delete, type) { Conditional = true, Query = Conditional.Pairs(query) });
        var search = context.RequestServices.GetRequiredService<SearchEngine>();
        var result = await FhirRequest.Store(context).WriteAsync(
            access.Guard(s => ExecuteConditionalAsync(s, search, type, query, context.RequestAborted)), context.RequestAborted);
        await FhirResponse.WriteAsync(context, result);
    }

    public static async Task<FhirResult> ExecuteAsync(WriteSession session, string type, string id, CancellationToken ct)
    {
        var current = await session.ReadForUpdateAsync(type, id, ct);
        if (current is null) throw FhirException.NotFound($"{type}/{id} is not known.");
        await AccessPoint.RequireWritableAsync(session, Interaction.Delete, current, ct); // hidden: 404, like a read
        if (current.Deleted) return new FhirResult(HttpStatusCode.NoContent) { Stored = current };
        var deleted = await session.DeleteAsync(current, ct);
        return new FhirResult(HttpStatusCode.NoContent) { Stored = deleted };
    }

    public static async Task<FhirResult> ExecuteConditionalAsync(WriteSession session, SearchEngine search, string type, string query, CancellationToken ct)
    {
        var matches = await Conditional.MatchAsync(session, search, type, query, ct);
        return matches.Count switch
        {
            0 => new FhirResult(HttpStatusCode.NoContent),
            1 => await ExecuteAsync(session, type, matches[0].Id, ct),
            _ => throw Conditional.MultipleMatches("delete", type, query),
        };
    }
}
