using System.Diagnostics.Metrics;
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// Sends what the notification_outbox holds. A round claims due rows in a short transaction (on PostgreSQL with
/// FOR UPDATE SKIP LOCKED, so two nodes never claim the same row; SQLite has one writer) by moving their
/// next_attempt a lease ahead, then posts each one outside any transaction, then records the outcome in a second
/// short transaction: delivered or dropped rows are deleted, failed ones get a later next_attempt (exponential
/// backoff), so a restart resumes where the database says. A node that dies between claim and outcome leaves the
/// row to be taken again when its lease ends: delivery is at least once, and event numbers let a receiver drop a
/// repeat. Each POST gets quick in-process retries (Polly) within one attempt.
/// <para>
/// At delivery time the subscriber's access is decided again, as the client recorded with the Subscription, by every
/// access rule (SMART scopes, then consent from the database as it is now): a notification the subscriber may no
/// longer see is dropped and audited, never sent. After <see cref="NotificationOptions.MaxFailures"/> consecutive
/// failed deliveries the Subscription goes to status error and its queued notifications are dropped.
/// </para>
/// </summary>
public sealed class DeliveryWorker(ResourceStore store, StorageDialect dialect, IHttpClientFactory httpClients, IServiceProvider services,
    ResourceIndexer indexer, TimeProvider clock, IOptions<NotificationOptions> options, ILogger<DeliveryWorker> logger, Meter? meter = null) : BackgroundService
{
    public const string HttpClientName = "notifications";

    private readonly NotificationOptions _options = options.Value;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline = Pipeline(options.Value);
    /// <summary>One round at a time per node (the timer's and a test's <see cref="DeliverDueAsync"/>).</summary>
    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly Counter<long>? _outcomes = meter?.CreateCounter<long>("fhirsortie.notifications.deliveries", "{notification}",
        "Notifications finished, by outcome: delivered, dropped (the subscriber may no longer see it) or failed (tried again later).");

    private sealed record Claimed(long Seq, string SubscriptionId, string Kind, string? FocusType, string? FocusId, int? FocusVersion, long? EventNumber, int Attempts);

    private enum Outcome { Delivered, Dropped, Failed }

    private static ResiliencePipeline<HttpResponseMessage> Pipeline(NotificationOptions o)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage>();
        if (o.QuickRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = o.QuickRetries,
                Delay = TimeSpan.FromMilliseconds(o.QuickRetryDelayMilliseconds),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(r => (int)r.StatusCode >= 500 || r.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests),
            });
        }
        return builder.AddTimeout(TimeSpan.FromMilliseconds(o.AttemptTimeoutMilliseconds)).Build();
    }

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Deliver) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await DeliverDueAsync(stoppingToken);
                await System.Threading.Tasks.Task.Delay(_options.PollMilliseconds, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // The rows stay queued (their lease ends, they are claimed again); no patient data in the message.
                logger.LogError(e, "Notification delivery round failed; retrying in 1 s");
                try { await System.Threading.Tasks.Task.Delay(1000, stoppingToken); } catch (OperationCanceledException) { break; }
            }
        }
    }

    /// <summary>Delivers every notification due now (tests call it; the timer calls it). Returns how many rows were handled.</summary>
    public async Task<int> DeliverDueAsync(CancellationToken ct)
    {
        await _turn.WaitAsync(ct);
        try
        {
            var handled = 0;
            while (true)
            {
                var claimed = await ClaimAsync(ct);
                if (claimed.Count == 0) return handled;
                foreach (var row in claimed) await HandleAsync(row, ct);
                handled += claimed.Count;
            }
        }
        finally
        {
            _turn.Release();
        }
    }

    private async Task<IReadOnlyList<Claimed>> ClaimAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        // No write unit (on SQLite: no commit, no fsync) when nothing is due.
        await using (var connection = await store.OpenAsync(ct))
        await using (var any = Sql.Command(connection, null, "SELECT 1 FROM notification_outbox WHERE next_attempt <= @n LIMIT 1").With("@n", now))
        {
            if (await any.ExecuteScalarAsync(ct) is null) return [];
        }
        await using var unit = await dialect.BeginWriteAsync(ct);
        var rows = new List<Claimed>();
        var skipLocked = dialect is PostgresDialect ? " FOR UPDATE SKIP LOCKED" : "";
        await using (var select = Sql.Command(unit.Connection, unit.Transaction,
            "SELECT seq, subscription_id, kind, focus_type, focus_id, focus_version, event_number, attempts FROM notification_outbox " +
            $"WHERE next_attempt <= @n ORDER BY seq LIMIT {_options.BatchSize}{skipLocked}").With("@n", now))
        await using (var reader = await select.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                rows.Add(new Claimed(reader.GetInt64(0), reader.GetString(1), reader.GetString(2),
                    reader.IsDBNull(3) ? null : reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4),
                    reader.IsDBNull(5) ? null : Convert.ToInt32(reader.GetValue(5), System.Globalization.CultureInfo.InvariantCulture),
                    reader.IsDBNull(6) ? null : Convert.ToInt64(reader.GetValue(6), System.Globalization.CultureInfo.InvariantCulture),
                    Convert.ToInt32(reader.GetValue(7), System.Globalization.CultureInfo.InvariantCulture)));
            }
        }
        if (rows.Count > 0)
        {
            var keys = string.Join(",", rows.Select(r => r.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            await using var lease = Sql.Command(unit.Connection, unit.Transaction, $"UPDATE notification_outbox SET next_attempt = @l WHERE seq IN ({keys})")
                .With("@l", now + _options.LeaseMilliseconds);
            await lease.ExecuteNonQueryAsync(ct);
        }
        await unit.CommitAsync(ct);
        return rows;
    }

    private async System.Threading.Tasks.Task HandleAsync(Claimed row, CancellationToken ct)
    {
        SubscriberRecord? subscriber;
        await using (var connection = await store.OpenAsync(ct))
        {
            subscriber = await SubscriberRecord.LoadAsync(connection, null, row.SubscriptionId, ct);
        }
        var expected = row.Kind == Outbox.Handshake ? SubscriberRecord.Requested : SubscriberRecord.Active;
        if (subscriber is null || subscriber.Status != expected)
        {
            // Deleted, turned off or in error since: nothing to send.
            await FinishAsync(row, null, Outcome.Dropped, null, ct);
            return;
        }
        // The configuration is the registration: a client removed, or an endpoint no longer registered, gets nothing more.
        if (services.GetService<ClientRegistry>() is { } registry
            && (registry.Find(subscriber.ClientId) is not { } client || !client.MayNotify(new Uri(subscriber.Endpoint))))
        {
            await FinishAsync(row, subscriber, Outcome.Dropped, "the client or its endpoint is no longer registered", ct);
            return;
        }
        var now = clock.GetUtcNow();
        Bundle bundle;
        IReadOnlyList<string>? removedPatients = null;
        if (row.Kind == Outbox.Handshake)
        {
            bundle = NotificationBundle.Handshake(subscriber.BaseUrl, subscriber, now);
        }
        else
        {
            var version = await store.ReadVersionAsync(row.FocusType!, row.FocusId!, row.FocusVersion!.Value, ct);
            AccessDecision decision;
            if (version is { Deleted: true })
            {
                (decision, removedPatients) = await DecideDeletionAsync(subscriber.Caller, version, ct);
            }
            else
            {
                var current = await store.ReadAsync(row.FocusType!, row.FocusId!, ct);
                decision = version is null || current is null || current.Deleted
                    ? AccessDecision.Deny("the resource no longer exists")
                    : await DecideAsync(subscriber.Caller, current, ct);
            }
            if (!decision.Permitted)
            {
                logger.LogInformation("Notification {Seq} of Subscription {SubscriptionId} dropped: the subscriber may no longer see it", row.Seq, subscriber.Id);
                await FinishAsync(row, subscriber, Outcome.Dropped, decision.Reason, ct, removedPatients);
                return;
            }
            var content = subscriber.FullResource && version!.Json is { } json ? FhirFormat.Parse(json, WireFormat.Json) : null;
            bundle = NotificationBundle.Event(subscriber.BaseUrl, subscriber, row.EventNumber ?? 0, version!, content, now);
        }
        var (delivered, problem) = await PostAsync(subscriber, bundle, ct);
        await FinishAsync(row, subscriber, delivered ? Outcome.Delivered : Outcome.Failed, problem, ct, removedPatients);
    }

    /// <summary>What the subscriber may see now: every access rule, as for a read of the current version by that client.</summary>
    private async Task<AccessDecision> DecideAsync(Caller caller, StoredResource current, CancellationToken ct)
    {
        var rules = services.GetServices<IAccessRule>().ToList();
        var facts = new ResourceFacts(current.Type, current.Id, () => current.Json is null ? null : FhirFormat.Parse(current.Json, WireFormat.Json), indexer);
        foreach (var rule in rules)
        {
            var decision = rule.Decide(caller, new AccessRequest(Interaction.Read, current.Type));
            if (decision.Permitted) decision = rule.DecideInstance(caller, Interaction.Read, facts);
            if (decision.Permitted) decision = await rule.DecideStoredAsync(caller, Interaction.Read, current, ct);
            if (!decision.Permitted) return decision;
        }
        return AccessDecision.Permit;
    }

    /// <summary>
    /// A deletion is decided on the content it removed (the version before it), as a vread of that version by the
    /// subscriber now: the index rows the consent rule reads for a current resource are gone with the delete. Also
    /// returns that content's patients, which the delivery's audit record names.
    /// </summary>
    private async Task<(AccessDecision Decision, IReadOnlyList<string>? Patients)> DecideDeletionAsync(Caller caller, StoredResource deletion, CancellationToken ct)
    {
        var last = deletion.Version > 1 ? await store.ReadVersionAsync(deletion.Type, deletion.Id, deletion.Version - 1, ct) : null;
        if (last is not { Json: { } removed }) return (AccessDecision.Deny("the deleted content could not be found"), null);
        var patients = Consents.PatientReferences.Of(FhirResponse.ParseStored(removed));
        var point = AccessPoint.For(caller, services);
        var decision = point.Decide(new AccessRequest(Interaction.VRead, last.Type));
        if (!decision.Permitted) return (decision, patients);
        await using var connection = await store.OpenAsync(ct);
        return (await point.DecideVersionAsync(Interaction.VRead, last, connection, null, quiet: false, ct), patients);
    }

    private async Task<(bool Delivered, string? Problem)> PostAsync(SubscriberRecord subscriber, Bundle bundle, CancellationToken ct)
    {
        var body = FhirFormat.Serialize(bundle, WireFormat.Json, pretty: false);
        var http = httpClients.CreateClient(HttpClientName);
        try
        {
            using var response = await _pipeline.ExecuteAsync(async token =>
            {
                // A request message is sent once: each retry builds its own.
                using var request = new HttpRequestMessage(HttpMethod.Post, subscriber.Endpoint)
                {
                    Content = new ByteArrayContent(body) { Headers = { ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/fhir+json") } },
                };
                foreach (var header in subscriber.Headers)
                {
                    var colon = header.IndexOf(':', StringComparison.Ordinal);
                    request.Headers.TryAddWithoutValidation(header[..colon].Trim(), header[(colon + 1)..].Trim());
                }
                return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token);
            }, ct);
            return response.IsSuccessStatusCode ? (true, null) : (false, $"the endpoint answered {(int)response.StatusCode}");
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutRejectedException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return (false, e is TimeoutRejectedException or TaskCanceledException ? "the endpoint did not answer in time" : "the endpoint could not be reached");
        }
    }

    /// <summary>Records the outcome of a claimed row in one transaction, with its audit record.</summary>
    /// <paramref name="removedPatients"/>: for a deletion, the patients of the content it removed (the audit record's).
    private async System.Threading.Tasks.Task FinishAsync(Claimed row, SubscriberRecord? subscriber, Outcome outcome, string? problem, CancellationToken ct,
        IReadOnlyList<string>? removedPatients = null)
    {
        var now = clock.GetUtcNow();
        await store.WriteAsync(async session =>
        {
            var (connection, tx) = (session.Connection, session.Transaction);
            if (outcome == Outcome.Failed && subscriber is not null)
            {
                int failures;
                await using (var count = Sql.Command(connection, tx, "UPDATE subscriptions SET failures = failures + 1 WHERE id = @i RETURNING failures").With("@i", subscriber.Id))
                {
                    failures = Convert.ToInt32(await count.ExecuteScalarAsync(ct) ?? 0, System.Globalization.CultureInfo.InvariantCulture);
                }
                if (failures >= _options.MaxFailures)
                {
                    var error = $"{failures} consecutive deliveries failed; the last: {problem}.";
                    await SetStatusAsync(session, subscriber.Id, SubscriberRecord.Error, error, ct);
                    await ExecAsync(session, "DELETE FROM notification_outbox WHERE subscription_id = @i", subscriber.Id, ct);
                    logger.LogWarning("Subscription {SubscriptionId} set to error after {Failures} failed deliveries", subscriber.Id, failures);
                }
                else
                {
                    var delay = Math.Min((double)_options.MaxBackoffMilliseconds, _options.BackoffMilliseconds * Math.Pow(2, row.Attempts));
                    await using var retry = Sql.Command(connection, tx, "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt = @n WHERE seq = @s")
                        .With("@n", now.ToUnixTimeMilliseconds() + (long)delay).With("@s", row.Seq);
                    await retry.ExecuteNonQueryAsync(ct);
                }
            }
            else
            {
                // 0 rows: the client rewrote the Subscription meanwhile (its queued rows were replaced by a new handshake).
                var stillQueued = await ExecAsync(session, "DELETE FROM notification_outbox WHERE seq = @i", row.Seq, ct) == 1;
                if (outcome == Outcome.Delivered && subscriber is not null)
                {
                    if (row.Kind == Outbox.Handshake && stillQueued) await SetStatusAsync(session, subscriber.Id, SubscriberRecord.Active, null, ct);
                    else await ExecAsync(session, "UPDATE subscriptions SET failures = 0 WHERE id = @i", subscriber.Id, ct);
                }
            }
            if (subscriber is not null) await AuditAsync(session, row, subscriber, outcome, problem, now, removedPatients, ct);
            return 0;
        }, ct);
        _outcomes?.Add(1, new KeyValuePair<string, object?>("fhirsortie.notification.outcome", outcome switch
        {
            Outcome.Delivered => "delivered",
            Outcome.Dropped => "dropped",
            _ => "failed",
        }));
    }

    /// <summary>The subscriptions row and the Subscription resource (a new version, so the client reads the status and error).</summary>
    private static async System.Threading.Tasks.Task SetStatusAsync(WriteSession session, string id, string status, string? error, CancellationToken ct)
    {
        await using (var update = Sql.Command(session.Connection, session.Transaction, "UPDATE subscriptions SET status = @s, failures = 0, error = @e WHERE id = @i")
            .With("@s", status).With("@e", error).With("@i", id))
        {
            await update.ExecuteNonQueryAsync(ct);
        }
        var current = await session.ReadForUpdateAsync("Subscription", id, ct);
        if (current is not { Deleted: false, Json: { } json }) return;
        var subscription = (Subscription)FhirFormat.Parse(json, WireFormat.Json);
        subscription.Status = status == SubscriberRecord.Active ? Subscription.SubscriptionStatus.Active : Subscription.SubscriptionStatus.Error;
        subscription.Error = error;
        await session.SaveAsync(subscription, current, "PUT", ct);
    }

    private async System.Threading.Tasks.Task AuditAsync(WriteSession session, Claimed row, SubscriberRecord subscriber, Outcome outcome, string? problem, DateTimeOffset now,
        IReadOnlyList<string>? removedPatients, CancellationToken ct)
    {
        var what = row.Kind == Outbox.Handshake ? "handshake" : $"notification {row.EventNumber}";
        var note = new AuditNote
        {
            Decision = outcome switch
            {
                Outcome.Delivered => Consents.AccessDecision.Permit($"Subscription {what} delivered"),
                Outcome.Dropped => Consents.AccessDecision.Deny($"Subscription {what} not delivered: {problem ?? "the subscription is no longer active"}"),
                _ => Consents.AccessDecision.Deny($"Subscription {what} failed: {problem}"),
            },
        };
        note.Entities.Add($"Subscription/{subscriber.Id}");
        if (row.FocusType is not null) note.Entities.Add($"{row.FocusType}/{row.FocusId}/_history/{row.FocusVersion}");
        // A deleted resource has no compartment rows any more: its patients are those of the content it removed.
        if (removedPatients is not null) note.Patients.UnionWith(removedPatients);
        else if (row.FocusType is not null)
        {
            await using var patients = Sql.Command(session.Connection, session.Transaction,
                "SELECT c.compartment_id FROM resource_compartment c JOIN resources r ON r.rkey = c.rkey WHERE r.type = @t AND r.id = @i AND c.compartment_type = 'Patient'")
                .With("@t", row.FocusType).With("@i", row.FocusId);
            await using var reader = await patients.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) note.Patients.Add(reader.GetString(0));
        }
        var status = outcome switch { Outcome.Delivered => 200, Outcome.Dropped => 403, _ => 502 };
        await AuditTrail.AppendAsync(session.Connection, session.Transaction, AuditEntry.Of(subscriber.Caller, "operation", status, now, note, null), ct);
    }

    private static async Task<int> ExecAsync(WriteSession session, string sql, object value, CancellationToken ct)
    {
        await using var cmd = Sql.Command(session.Connection, session.Transaction, sql).With("@i", value);
        return await cmd.ExecuteNonQueryAsync(ct);
    }
}
