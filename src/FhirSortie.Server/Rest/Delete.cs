using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// delete: DELETE [base]/[type]/[id] writes a deletion version (read answers 410 afterwards; history keeps the rest),
/// and conditional delete DELETE [base]/[type]?search (one match; several matches are a 412).
/// <list type="bullet">
/// <item>Nothing to delete (an unknown id, or one already deleted): 204 without an ETag (R4 http.html §delete: "if the
/// resource does not exist at all, the server should return 200 or 204"), the same answer whoever could see what was
/// deleted; audited as a delete of nothing.</item>
/// <item>A resource that exists but that the caller may not delete: 403, audited with the real reason and the patients.
/// When the caller may not even see it (consent, another client's Subscription), the outcome is <see cref="Refused"/>,
/// which says neither why nor anything of the content. It does confirm that the id exists: ids are opaque UUIDs the
/// server assigned, so a caller naming one learnt it from a resource it wrote or saw, and a 204 would tell a writer
/// (a USMP retracting a prescription the person has since masked) that something is gone that others still read.</item>
/// </list>
/// The same rules hold for transaction and batch DELETE entries (they call <see cref="ExecuteAsync"/>); a conditional
/// delete whose match is hidden answers what every conditional interaction does (<see cref="Conditional.HiddenMatch"/>).
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
        NoteNothingDeleted(context, result);
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
        NoteNothingDeleted(context, result);
        await FhirResponse.WriteAsync(context, result);
    }

    public static async Task<FhirResult> ExecuteAsync(WriteSession session, string type, string id, CancellationToken ct)
    {
        var current = await session.ReadForUpdateAsync(type, id, ct);
        // Decided on nothing the caller may not see: an ETag here would tell a deleted resource from one never written.
        if (current is null || current.Deleted) return new FhirResult(HttpStatusCode.NoContent);
        await AccessPoint.RequireDeletableAsync(session, current, ct);
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

    /// <summary>
    /// The 403 of a delete of a resource the caller may not see: the same text whatever the reason (consent, labels,
    /// another client's Subscription), nothing of the content; the audit record keeps the reason.
    /// </summary>
    public static FhirException Refused(string type, string id) =>
        FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden, $"{type}/{id} cannot be deleted by this client; nothing was deleted.");

    /// <summary>A delete that found nothing to delete is audited as such (no version written, so the write hook recorded nothing).</summary>
    private static void NoteNothingDeleted(HttpContext context, FhirResult result)
    {
        if (result.Stored is not null) return;
        var note = AuditNote.For(context);
        note.Decision ??= Consents.AccessDecision.Permit("nothing to delete: no current version");
    }
}
