using System.Data.Common;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// A Subscription belongs to the client that wrote it: its criteria say what that organisation follows and its
/// channel where it listens (with header secrets), which is nobody else's business. Only the owner sees it: read,
/// vread and instance history of another's answer 404 like a missing resource, an update or patch 404 like the read,
/// a delete the 403 every hidden resource gets (Rest/Delete.cs), all decided here like a consent decision; an
/// administrator sees and manages all of them. Listing by search would need an owner predicate in every search:
/// instead a type search or history of Subscription is for administrators, and so are conditional writes on
/// Subscription (their condition is a search, and its answer would tell whose Subscriptions match); system searches
/// and histories of other callers leave Subscriptions out. A client reads its own by id (the id came back in the
/// Location of its create).
/// </summary>
public sealed class SubscriptionRule(ResourceStore store, IHttpContextAccessor? http = null) : IAccessRule
{
    private static readonly IReadOnlySet<string> AllButSubscription =
        ModelInfo.SupportedResources.Where(t => t != "Subscription").ToHashSet(StringComparer.Ordinal);

    private const string NotTheSubscriber = "Not the subscriber of this Subscription.";

    public AccessDecision Decide(Caller caller, AccessRequest request)
    {
        if (request.Type != "Subscription" || caller.Kind == ActorKind.Admin) return AccessDecision.Permit;
        if (request.Interaction is Interaction.SearchType or Interaction.HistoryType or Interaction.SearchCompartment)
            return AccessDecision.Deny("Subscriptions are read by id by the client that created them; listing them is for administrators.");
        if (request.Conditional)
            return AccessDecision.Deny("Subscriptions are changed by id by the client that created them; conditional writes on Subscription are for administrators.");
        return AccessDecision.Permit;
    }

    public AccessDecision DecideInstance(Caller caller, Interaction interaction, ResourceFacts resource) => AccessDecision.Permit;

    public async ValueTask<AccessDecision> DecideStoredAsync(Caller caller, Interaction interaction, StoredResource stored, CancellationToken ct)
    {
        if (stored.Type != "Subscription" || caller.Kind == ActorKind.Admin) return AccessDecision.Permit;
        await using var connection = await store.OpenAsync(ct);
        return await DecideOwnerAsync(caller, stored.Id, connection, null, quiet: false, ct);
    }

    /// <summary>
    /// vread, history entries and the current version a write would change (on the write's own transaction): without
    /// it another client's Subscription, headers included, was one vread away.
    /// </summary>
    public async ValueTask<AccessDecision> DecideVersionAsync(Caller caller, Interaction interaction, ResourceFacts version,
        DbConnection connection, DbTransaction? transaction, bool quiet, CancellationToken ct) =>
        version.Type != "Subscription" || caller.Kind == ActorKind.Admin
            ? AccessDecision.Permit
            : await DecideOwnerAsync(caller, version.Id, connection, transaction, quiet, ct);

    private async ValueTask<AccessDecision> DecideOwnerAsync(Caller caller, string id, DbConnection connection, DbTransaction? transaction, bool quiet, CancellationToken ct)
    {
        var owner = await SubscriberRecord.LoadAsync(connection, transaction, id, ct);
        // No row: deleted (history of a deleted Subscription) or written without a client; only administrators see those.
        if (owner?.ClientId == caller.ClientId) return AccessDecision.Permit;
        // The refusal's reason goes to the audit record (the client only gets the neutral answer); a history filtering its
        // entries (quiet) is not a denied request.
        if (!quiet && http?.HttpContext is { } context)
        {
            var note = AuditNote.For(context);
            if (note.Decision is not { Permitted: false }) note.Decision = Consents.AccessDecision.Deny(NotTheSubscriber);
        }
        return AccessDecision.Hide(NotTheSubscriber);
    }

    public AccessFilter Filter(Caller caller, string? type) =>
        type is null && caller.Kind != ActorKind.Admin ? new AccessFilter(ResourceTypes: AllButSubscription) : AccessFilter.None;
}
