using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// A Subscription belongs to the client that wrote it: its criteria say what that organisation follows and its
/// channel where it listens (with header secrets), which is nobody else's business. Only the owner reads it (others
/// get 404, like a missing resource; updates and deletes by others are refused the same way in
/// <see cref="SubscriptionHook"/>); an administrator sees and manages all of them. Listing by search would need an
/// owner predicate in every search: instead a type search or history of Subscription is for administrators, and
/// system searches and histories of other callers leave Subscriptions out. A client reads its own by id (the id
/// came back in the Location of its create).
/// </summary>
public sealed class SubscriptionRule(ResourceStore store) : IAccessRule
{
    private static readonly IReadOnlySet<string> AllButSubscription =
        ModelInfo.SupportedResources.Where(t => t != "Subscription").ToHashSet(StringComparer.Ordinal);

    public AccessDecision Decide(Caller caller, AccessRequest request) =>
        request.Type == "Subscription" && caller.Kind != ActorKind.Admin
            && request.Interaction is Interaction.SearchType or Interaction.HistoryType or Interaction.SearchCompartment
            ? AccessDecision.Deny("Subscriptions are read by id by the client that created them; listing them is for administrators.")
            : AccessDecision.Permit;

    public AccessDecision DecideInstance(Caller caller, Interaction interaction, ResourceFacts resource) => AccessDecision.Permit;

    public async ValueTask<AccessDecision> DecideStoredAsync(Caller caller, Interaction interaction, StoredResource stored, CancellationToken ct)
    {
        if (stored.Type != "Subscription" || caller.Kind == ActorKind.Admin) return AccessDecision.Permit;
        await using var connection = await store.OpenAsync(ct);
        var owner = await SubscriberRecord.LoadAsync(connection, null, stored.Id, ct);
        // No row: deleted (history of a deleted Subscription) or written without a client; only administrators see those.
        return owner?.ClientId == caller.ClientId ? AccessDecision.Permit : AccessDecision.Hide("Not the subscriber of this Subscription.");
    }

    public AccessFilter Filter(Caller caller, string? type) =>
        type is null && caller.Kind != ActorKind.Admin ? new AccessFilter(ResourceTypes: AllButSubscription) : AccessFilter.None;
}
