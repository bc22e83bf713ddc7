using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// What Subscriptions add to every write, inside the write's database transaction (called by
/// <see cref="WriteSession"/>, so create, update, patch, conditional writes and transaction entries all get it):
/// <list type="bullet">
/// <item>a client's write of a Subscription is checked (criteria, channel, registered endpoint, ownership), its
/// subscriber recorded in the subscriptions table, its status set to requested and a handshake queued;</item>
/// <item>any other saved resource is matched against the active Subscriptions of its type by running each criteria
/// as a search restricted to it (<c>_id</c>), in the transaction, so the search sees the version just indexed; each
/// match queues one notification_outbox row. The row commits with the write or not at all: nothing is lost on a
/// crash and nothing is announced that was rolled back.</item>
/// <item>an update is also announced to the Subscriptions the version it replaces matched, although the new one no
/// longer does: a task handed to another organisation, a prescription no longer active. The subscriber learns that
/// what it follows left its criteria (with the new version, as R5's topic-based subscriptions can: "test-fails"),
/// instead of going on acting on what it was last told.</item>
/// </list>
/// </summary>
public sealed class SubscriptionHook(SearchEngine engine, ClientRegistry clients, TimeProvider clock, IServiceProvider services, IHttpContextAccessor? http = null)
{
    public const string FullResourcePayload = "application/fhir+json";

    public async Task BeforeSaveAsync(WriteSession session, Resource resource, StoredResource? current, CancellationToken ct)
    {
        if (resource is not Subscription subscription)
        {
            // An update: which Subscriptions the replaced version matches, on its index rows still there.
            if (current is { Deleted: false }) _matchedBefore.GetOrCreateValue(session)[(current.Type, current.Id)] = await MatchingAsync(session, current, ct);
            return;
        }
        // Every change of the subscriptions table in a session goes with a save or delete of the Subscription resource
        // (a client's write here, the delivery worker's status change just before): what this session loaded is stale.
        _active.Remove(session);
        // No request: the delivery worker recording a status change (it updates the subscriptions row itself).
        if (http?.HttpContext is not { } context || Caller.Of(context) is not { } caller) return;
        if (current is { Deleted: false }) await CheckOwnerAsync(session, caller, current.Id, deleting: false, ct);

        var criteria = SubscriptionCriteria.Parse(subscription.Criteria);
        criteria.Validate(engine);
        // A subscriber is told about what its scopes let it search, and nothing else.
        foreach (var rule in services.GetServices<IAccessRule>())
        {
            var decision = rule.Decide(caller, new AccessRequest(Interaction.SearchType, criteria.Type) { Query = criteria.Query });
            if (!decision.Permitted)
                throw FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden, $"Subscription.criteria: {decision.Reason}", "Subscription.criteria");
        }

        var channel = subscription.Channel ?? throw FhirException.BadRequest("Subscription.channel is required.", "Subscription.channel");
        if (channel.Type != Subscription.SubscriptionChannelType.RestHook)
            throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.NotSupported, "Only the rest-hook channel is supported.", "Subscription.channel.type");
        if (!Uri.TryCreate(channel.Endpoint, UriKind.Absolute, out var endpoint) || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
            throw FhirException.BadRequest("Subscription.channel.endpoint must be an absolute http(s) URL.", "Subscription.channel.endpoint");
        if (clients.Find(caller.ClientId) is not { } client || !client.MayNotify(endpoint))
            throw FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden,
                "Subscription.channel.endpoint is not one of the notification endpoints registered for this client.", "Subscription.channel.endpoint");
        var payload = string.IsNullOrEmpty(channel.Payload) ? null : channel.Payload;
        if (payload is not (null or FullResourcePayload))
            throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.NotSupported,
                $"Subscription.channel.payload must be empty (id-only notifications) or {FullResourcePayload}.", "Subscription.channel.payload");
        var headers = channel.Header?.Select(h => h ?? "").ToList() ?? [];
        foreach (var header in headers)
        {
            var colon = header.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || header.AsSpan(0, colon).ContainsAny("\r\n \t") || header.AsSpan(colon).ContainsAny("\r\n"))
                throw FhirException.BadRequest("Subscription.channel.header entries must read 'Name: value'.", "Subscription.channel.header");
        }

        // The server owns the status: a client asks for a subscription (or turns it off), the handshake activates it.
        subscription.Status = subscription.Status == Subscription.SubscriptionStatus.Off ? Subscription.SubscriptionStatus.Off : Subscription.SubscriptionStatus.Requested;
        subscription.Error = null;
        var record = new SubscriberRecord(subscription.Id!, caller.ClientId, caller.Kind, caller.OrganizationFiness, string.Join(' ', caller.Scopes),
            criteria.Type, subscription.Criteria!, endpoint.AbsoluteUri, payload, headers,
            subscription.Status == Subscription.SubscriptionStatus.Off ? SubscriberRecord.Off : SubscriberRecord.Requested, 0, 0, FhirBase.Of(context));
        await record.SaveAsync(session.Connection, session.Transaction, ct);
        // A changed channel or criteria starts afresh: what was queued for the old one is not sent.
        await DeleteQueuedAsync(session, record.Id, ct);
        if (record.Status == SubscriberRecord.Requested)
            await EnqueueAsync(session, record.Id, Outbox.Handshake, null, null, ct);
    }

    /// <summary>
    /// After the version is indexed: queue a notification for each active Subscription whose criteria it matches, or
    /// the version it replaced matched.
    /// </summary>
    public async Task AfterSaveAsync(WriteSession session, StoredResource saved, CancellationToken ct)
    {
        HashSet<string>? before = null;
        if (_matchedBefore.TryGetValue(session, out var updates) && updates.Remove((saved.Type, saved.Id), out var matched)) before = matched;
        var now = await MatchingAsync(session, saved, ct);
        if (before is not null) now.UnionWith(before);
        await EnqueueEventsAsync(session, now, saved, saved.Version, ct);
    }

    /// <summary>One event for <paramref name="version"/> of <paramref name="focus"/> per subscription in <paramref name="matching"/>.</summary>
    private async Task EnqueueEventsAsync(WriteSession session, HashSet<string> matching, StoredResource focus, int version, CancellationToken ct)
    {
        if (matching.Count == 0) return;
        // In id order (the active subscriptions' order): two writes matching the same subscriptions lock their counters
        // in the same order, so no deadlock.
        foreach (var subscriber in await ActiveForAsync(session, focus.Type, ct))
            if (matching.Contains(subscriber.Id)) await EnqueueAsync(session, subscriber.Id, Outbox.Event, focus, version, ct);
    }

    /// <summary>
    /// The active Subscriptions whose criteria <paramref name="focus"/>'s current index rows match: after a save, the
    /// version just written; before an update, the version it replaces; before a delete, the last content (the deletion
    /// is then announced to them as version + 1).
    /// </summary>
    private async Task<HashSet<string>> MatchingAsync(WriteSession session, StoredResource focus, CancellationToken ct)
    {
        var matching = new HashSet<string>(StringComparer.Ordinal);
        // AuditEvents are the gateway's own bulk records (one per request), and a Subscription is not announced to others.
        if (focus.Type is "AuditEvent" or "Subscription") return matching;
        foreach (var subscriber in await ActiveForAsync(session, focus.Type, ct))
        {
            SubscriptionCriteria criteria;
            try { criteria = SubscriptionCriteria.Parse(subscriber.Criteria); }
            catch (FhirException) { continue; } // validated when written; a later change of the search parameters must not fail writes
            var matches = await engine.CountAsync(session.Connection, session.Transaction, focus.Type, criteria.For(focus.Id), AccessFilter.None, strict: false, ct);
            if (matches > 0) matching.Add(subscriber.Id);
        }
        return matching;
    }

    /// <summary>Per write session, the Subscriptions the versions being replaced matched (from BeforeSave to AfterSave).</summary>
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<WriteSession, Dictionary<(string Type, string Id), HashSet<string>>> _matchedBefore = new();

    /// <summary>
    /// The active Subscriptions on a type, loaded once per write session and type: a 15-resource transaction asked the
    /// database the same question for every resource it saved (13 identical SELECTs per exit package). The session's
    /// own Subscription writes drop what it loaded (<see cref="BeforeSaveAsync"/>, <see cref="BeforeDeleteAsync"/>).
    /// </summary>
    private async Task<IReadOnlyList<SubscriberRecord>> ActiveForAsync(WriteSession session, string type, CancellationToken ct)
    {
        var byType = _active.GetOrCreateValue(session);
        if (!byType.TryGetValue(type, out var active)) byType[type] = active = await SubscriberRecord.ActiveForAsync(session, type, ct);
        return active;
    }

    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<WriteSession, Dictionary<string, IReadOnlyList<SubscriberRecord>>> _active = new();

    /// <summary>
    /// Before a delete: the deletion is announced to the Subscriptions the last version matched (its delivery decides
    /// access on that version, DeliveryWorker); a Subscription's own rows go with it (only its owner may delete it).
    /// </summary>
    public async Task BeforeDeleteAsync(WriteSession session, StoredResource current, CancellationToken ct)
    {
        if (current.Type != "Subscription")
        {
            await EnqueueEventsAsync(session, await MatchingAsync(session, current, ct), current, current.Version + 1, ct);
            return;
        }
        _active.Remove(session);
        if (http?.HttpContext is { } context && Caller.Of(context) is { } caller) await CheckOwnerAsync(session, caller, current.Id, deleting: true, ct);
        await DeleteQueuedAsync(session, current.Id, ct);
        await using var delete = Sql.Command(session.Connection, session.Transaction, "DELETE FROM subscriptions WHERE id = @i").With("@i", current.Id);
        await delete.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// A client changes only its own Subscriptions (an administrator any). The access point refuses another's first
    /// (<see cref="SubscriptionRule.DecideVersionAsync"/>); this is the last guard for a write that reached the hook
    /// anyway, with the same answers: an update as the read's not found, a delete as any hidden resource's.
    /// </summary>
    private static async Task CheckOwnerAsync(WriteSession session, Caller caller, string id, bool deleting, CancellationToken ct)
    {
        var existing = await SubscriberRecord.LoadAsync(session.Connection, session.Transaction, id, ct);
        if (existing is not null && existing.ClientId != caller.ClientId && caller.Kind != ActorKind.Admin)
            throw deleting ? Delete.Refused("Subscription", id) : FhirException.NotFound($"Subscription/{id} is not known.");
    }

    private async Task EnqueueAsync(WriteSession session, string subscriptionId, string kind, StoredResource? focus, int? version, CancellationToken ct)
    {
        long? eventNumber = null;
        if (kind == Outbox.Event)
        {
            // Numbered per subscription (R5 backport: eventsSinceSubscriptionStart), so a receiver can spot a gap or a repeat.
            await using var next = Sql.Command(session.Connection, session.Transaction, "UPDATE subscriptions SET events = events + 1 WHERE id = @i RETURNING events")
                .With("@i", subscriptionId);
            eventNumber = Convert.ToInt64(await next.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        }
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        await using var insert = Sql.Command(session.Connection, session.Transaction,
            "INSERT INTO notification_outbox (subscription_id, kind, focus_type, focus_id, focus_version, event_number, attempts, next_attempt, created) " +
            "VALUES (@s, @k, @ft, @fi, @fv, @n, 0, @now, @now)")
            .With("@s", subscriptionId).With("@k", kind).With("@ft", focus?.Type).With("@fi", focus?.Id).With("@fv", version)
            .With("@n", eventNumber).With("@now", now);
        await insert.ExecuteNonQueryAsync(ct);
    }

    private static async Task DeleteQueuedAsync(WriteSession session, string subscriptionId, CancellationToken ct)
    {
        await using var delete = Sql.Command(session.Connection, session.Transaction, "DELETE FROM notification_outbox WHERE subscription_id = @i").With("@i", subscriptionId);
        await delete.ExecuteNonQueryAsync(ct);
    }
}

/// <summary>The kinds of notification_outbox rows.</summary>
public static class Outbox
{
    public const string Handshake = "handshake";
    public const string Event = "event";
}
