using System.Net;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// update: PUT [base]/[type]/[id] (creates the resource with the client's id when it does not exist),
/// and conditional update PUT [base]/[type]?search. If-Match guards against lost updates (412 on a stale version).
/// </summary>
public static class Update
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var id = FhirRequest.Id(context);
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Update, type);
        var resource = await FhirRequest.BodyAsync(context);
        var ifMatch = FhirRequest.IfMatchVersion(context.Request.Headers.IfMatch.ToString());
        var result = await FhirRequest.Store(context).WriteAsync(
            access.Guard(s => ExecuteAsync(s, type, id, resource, ifMatch, context.RequestAborted)), context.RequestAborted);
        await FhirResponse.WriteAsync(context, result, isWrite: true);
    }

    public static async System.Threading.Tasks.Task HandleConditional(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var query = context.Request.QueryString.Value ?? "";
        var access = AccessPoint.Of(context);
        access.Require(new AccessRequest(Interaction.Update, type) { Conditional = true, Query = Conditional.Pairs(query) });
        var resource = await FhirRequest.BodyAsync(context);
        var ifMatch = FhirRequest.IfMatchVersion(context.Request.Headers.IfMatch.ToString());
        var search = context.RequestServices.GetRequiredService<SearchEngine>();
        var result = await FhirRequest.Store(context).WriteAsync(
            access.Guard(s => ExecuteConditionalAsync(s, search, type, query, resource, ifMatch, context.RequestAborted)), context.RequestAborted);
        await FhirResponse.WriteAsync(context, result, isWrite: true);
    }

    /// <param name="keepUnchanged">
    /// Conditional update (a resubmission by identifier, e.g. an exit package posted again): content identical to the
    /// current version writes no new version, so _since and history show only what really changed. A plain PUT
    /// always writes a version.
    /// </param>
    public static async Task<FhirResult> ExecuteAsync(WriteSession session, string type, string id, Resource resource, int? ifMatch, CancellationToken ct, string method = "PUT", bool keepUnchanged = false)
    {
        FhirRequest.RequireBodyType(resource, type);
        if (string.IsNullOrEmpty(resource.Id))
            throw FhirException.BadRequest($"The body of an update must carry the id '{id}'.", "id");
        if (resource.Id != id)
            throw FhirException.BadRequest($"The body's id '{resource.Id}' does not match the URL's id '{id}'.", "id");
        var current = await session.ReadForUpdateAsync(type, id, ct);
        // Decided like a read of the current version, before If-Match can say anything about it (hidden: 404).
        await AccessPoint.RequireWritableAsync(session, method == "PATCH" ? Interaction.Patch : Interaction.Update, current, ct);
        if (ifMatch is { } expected && (current is null || current.Deleted || current.Version != expected))
        {
            throw FhirException.Error(HttpStatusCode.PreconditionFailed, OperationOutcome.IssueType.Conflict,
                $"If-Match W/\"{expected}\" does not match the current version of {type}/{id} ({(current is null ? "none" : current.Deleted ? "deleted" : current.Version.ToString(System.Globalization.CultureInfo.InvariantCulture))}).");
        }
        // The caller's write access is still checked: a no-op is answered only to who could have written it.
        if (keepUnchanged && current is { Deleted: false } && Unchanged(session.Store, resource, current))
        {
            session.Access?.CheckSave(resource, current, method);
            return FhirResult.Of(HttpStatusCode.OK, current);
        }
        var stored = await session.SaveAsync(resource, current, method, ct);
        var created = current is null || current.Deleted;
        return FhirResult.Of(created ? HttpStatusCode.Created : HttpStatusCode.OK, stored, location: created);
    }

    /// <summary>
    /// Whether saving <paramref name="resource"/> would store exactly the current version's JSON (same content once
    /// normalised and labelled as a save would, same meta): a no-op update answers 200 with the current version.
    /// </summary>
    public static bool Unchanged(ResourceStore store, Resource resource, StoredResource current)
    {
        if (current.Json is null) return false;
        var copy = (Resource)resource.DeepCopy();
        store.Normalizer?.Normalize(copy);
        store.WriteHook?.Labeller.Apply(copy);
        copy.Meta ??= new Meta();
        copy.Meta.VersionId = current.Version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        copy.Meta.LastUpdated = current.LastUpdated;
        return FhirFormat.Serialize(copy, WireFormat.Json, pretty: false).AsSpan().SequenceEqual(current.Json);
    }

    public static async Task<FhirResult> ExecuteConditionalAsync(WriteSession session, SearchEngine search, string type, string query, Resource resource, int? ifMatch, CancellationToken ct)
    {
        FhirRequest.RequireBodyType(resource, type);
        var matches = await Conditional.MatchAsync(session, search, type, query, ct);
        if (matches.Count == 0) matches = await Conditional.ClaimAsync(session, search, type, query, ct);
        if (matches.Count > 1) throw Conditional.MultipleMatches("update", type, query);
        if (matches.Count == 1)
        {
            var match = matches[0];
            if (resource.Id is not null && resource.Id != match.Id)
                throw FhirException.BadRequest($"The body's id '{resource.Id}' differs from the matched resource {type}/{match.Id}.", "id");
            resource.Id = match.Id;
            return await ExecuteAsync(session, type, match.Id, resource, ifMatch, ct, keepUnchanged: true);
        }
        // No match and we hold the claim: create, with the body's id when it has one (and no resource holds it).
        var id = FhirRequest.RequireId(resource.Id ?? FhirRequest.NewId());
        resource.Id = id;
        var existing = await session.ReadForUpdateAsync(type, id, ct);
        if (existing is { Deleted: false })
            throw FhirException.Error(HttpStatusCode.Conflict, OperationOutcome.IssueType.Conflict, $"{type}/{id} exists but does not match {query}.");
        var stored = await session.SaveAsync(resource, existing, "PUT", ct);
        await Conditional.BindClaimAsync(session, type, query, stored.Key, ct);
        return FhirResult.Of(HttpStatusCode.Created, stored, location: true);
    }
}
