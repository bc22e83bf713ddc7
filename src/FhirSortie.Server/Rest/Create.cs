using System.Net;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// create: POST [base]/[type]. The server assigns the id. With If-None-Exist, an existing match is returned (200)
/// instead of creating a duplicate, and concurrent identical conditional creates yield exactly one resource.
/// </summary>
public static class Create
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var ifNoneExist = context.Request.Headers["If-None-Exist"].ToString();
        var access = AccessPoint.Of(context);
        access.Require(new AccessRequest(Interaction.Create, type) { Conditional = ifNoneExist.Length > 0, Query = Conditional.Pairs(ifNoneExist) });
        var resource = await FhirRequest.BodyAsync(context);
        var store = FhirRequest.Store(context);
        var search = context.RequestServices.GetRequiredService<SearchEngine>();
        var result = await store.WriteAsync(access.Guard(s => ExecuteAsync(s, search, type, resource, ifNoneExist, context.RequestAborted)), context.RequestAborted);
        await FhirResponse.WriteAsync(context, result, isWrite: true);
    }

    /// <param name="searchedNoMatch">The caller already ran the If-None-Exist search in this database transaction and
    /// found nothing (a transaction assigning identities): go straight to the claim, which searches again if needed.</param>
    /// <param name="matched">The one match the caller's If-None-Exist search found in this database transaction: not searched again.</param>
    public static async Task<FhirResult> ExecuteAsync(WriteSession session, SearchEngine search, string type, Resource resource, string? ifNoneExist, CancellationToken ct, string? assignedId = null,
        bool searchedNoMatch = false, StoredResource? matched = null)
    {
        FhirRequest.RequireBodyType(resource, type);
        var conditional = !string.IsNullOrWhiteSpace(ifNoneExist);
        if (conditional)
        {
            var matches = matched is not null ? [matched] : searchedNoMatch ? [] : await Conditional.MatchAsync(session, search, type, ifNoneExist!, ct);
            if (matches.Count == 0) matches = await Conditional.ClaimAsync(session, search, type, ifNoneExist!, ct);
            if (matches.Count > 1) throw Conditional.MultipleMatches("create", type, ifNoneExist!);
            if (matches.Count == 1)
            {
                session.Access?.CheckRead(matches[0]);
                return FhirResult.Of(HttpStatusCode.OK, matches[0]) with
                {
                    Outcome = Outcomes.Information($"A {type} matching {ifNoneExist} already exists; nothing was created."),
                };
            }
        }
        resource.Id = assignedId ?? FhirRequest.NewId();
        var stored = await session.SaveAsync(resource, null, "POST", ct);
        if (conditional) await Conditional.BindClaimAsync(session, type, ifNoneExist!, stored.Key, ct);
        return FhirResult.Of(HttpStatusCode.Created, stored, location: true);
    }
}
