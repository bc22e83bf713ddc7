using System.Net;
using FhirSortie.Server.Notifications;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Tests.Consents;
using FhirSortie.Tests.Search;
using FhirSortie.Tests.Telemetry;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Notifications;

/// <summary>
/// The gateway of the subscription tests: two CSAPAs and an ACT registered with notification endpoints under
/// http://127.0.0.1/notify/ (any port: each test starts its receiver on a free one). Delivery is driven by the test
/// (<see cref="DeliveryWorker.DeliverDueAsync"/>) so that each step is observed in order; the restart test runs the
/// background worker.
/// </summary>
public sealed class SubscriptionGateway<TGateway> : IDisposable where TGateway : Gateway, new()
{
    public const string CsapaX = "750000028";
    public const string CsapaY = "930000039";

    public TGateway Gateway { get; } = Configure(new TGateway(), deliver: false);

    public static TGateway Configure(TGateway gateway, bool deliver)
    {
        var s = gateway.Settings;
        Client(s, 0, "csapa-x", "Csapa", CsapaX, ["http://127.0.0.1/notify/"]);
        Client(s, 1, "csapa-y", "Csapa", CsapaY, ["http://127.0.0.1/notify/"]);
        Client(s, 2, "csapa-none", "Csapa", CsapaY, []);
        s["FhirSortie:Notifications:Deliver"] = deliver ? "true" : "false";
        s["FhirSortie:Notifications:PollMilliseconds"] = "50";
        s["FhirSortie:Notifications:QuickRetries"] = "1";
        s["FhirSortie:Notifications:QuickRetryDelayMilliseconds"] = "10";
        s["FhirSortie:Notifications:BackoffMilliseconds"] = "1";
        s["FhirSortie:Notifications:MaxFailures"] = "3";
        s["FhirSortie:Notifications:AttemptTimeoutMilliseconds"] = "3000";
        return gateway;
    }

    /// <summary>A configured client with notification endpoints (the release-date tests register theirs with it too).</summary>
    public static void Client(Dictionary<string, string?> s, int i, string id, string kind, string finess, string[] endpoints)
    {
        var prefix = $"FhirSortie:Clients:{i}:";
        s[prefix + "ClientId"] = id;
        s[prefix + "Secret"] = id + "-secret";
        s[prefix + "ActorKind"] = kind;
        s[prefix + "OrganizationFiness"] = finess;
        s[prefix + "AllowedScopes"] = "system/*.rs system/Subscription.cruds";
        for (var e = 0; e < endpoints.Length; e++) s[$"{prefix}NotificationEndpoints:{e}"] = endpoints[e];
    }

    public void Dispose() => Gateway.Dispose();
}

public abstract class SubscriptionTests<TGateway>(SubscriptionGateway<TGateway> fixture) where TGateway : Gateway, new()
{
    private readonly Gateway _gateway = fixture.Gateway;
    private HttpClient Usmp => _gateway.Fhir();

    public static HttpClient As(Gateway gateway, string client, string finess) =>
        gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Csapa, finess, "system/*.rs system/Subscription.cruds"));

    private HttpClient X => As(_gateway, "csapa-x", SubscriptionGateway<TGateway>.CsapaX);
    private HttpClient Y => As(_gateway, "csapa-y", SubscriptionGateway<TGateway>.CsapaY);

    private const string Deliveries = "fhirsortie.notifications.deliveries";
    private const string Outcome = "fhirsortie.notification.outcome";
    private const string OutboxQueued = "fhirsortie.notifications.outbox.queued";

    private Task<int> DeliverAsync() => _gateway.Services.GetRequiredService<DeliveryWorker>().DeliverDueAsync(CancellationToken.None);

    public static Subscription NewSubscription(string criteria, string endpoint, string? payload = null, params string[] headers) => new()
    {
        Status = Subscription.SubscriptionStatus.Requested,
        Reason = "hand-off follow-up",
        Criteria = criteria,
        Channel = new Subscription.ChannelComponent
        {
            Type = Subscription.SubscriptionChannelType.RestHook,
            Endpoint = endpoint,
            Payload = payload,
            Header = headers,
        },
    };

    /// <summary>Creates the Subscription and runs the handshake; returns its id.</summary>
    private async Task<string> SubscribeAsync(HttpClient client, string criteria, string endpoint, string? payload = null)
    {
        var created = await client.CreateAsync(NewSubscription(criteria, endpoint, payload, "Authorization: Bearer hook-secret"));
        Assert.Equal(Subscription.SubscriptionStatus.Requested, created.Status);
        await DeliverAsync();
        var read = await (await client.GetAsync($"Subscription/{created.Id}")).ReadAs<Subscription>();
        Assert.Equal(Subscription.SubscriptionStatus.Active, read.Status);
        return created.Id!;
    }

    private async Task<(string Patient, string Task)> TaskForAsync(string ownerOrganization, string? permitFiness)
    {
        var patient = (await Usmp.CreateAsync(Patient(NewRun(), "180029900000003", "Abonne"))).Id!;
        if (permitFiness is not null) await Usmp.CreateAsync(TestConsents.Permit(patient, permitFiness, "Task"));
        var task = await Usmp.CreateAsync(HandOff(patient, ownerOrganization));
        return (patient, task.Id!);
    }

    public static Hl7.Fhir.Model.Task HandOff(string patient, string ownerOrganization) => new()
    {
        Status = Hl7.Fhir.Model.Task.TaskStatus.Requested,
        Intent = Hl7.Fhir.Model.Task.TaskIntent.Order,
        For = new ResourceReference("Patient/" + patient),
        Owner = new ResourceReference("Organization/" + ownerOrganization),
        Description = "Prise en charge à la sortie (texte clinique)",
    };

    private async Task<List<AuditEvent>> AuditsOfAsync(string patient)
    {
        var auditor = _gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        return (await auditor.SearchAsync($"AuditEvent?patient={patient}&_count=100")).Entry.Select(e => (AuditEvent)e.Resource!).ToList();
    }

    [Fact]
    public async Task Handshake_on_creation_activates_the_subscription()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var hook = "handshake-" + NewRun();
        var created = await X.CreateAsync(NewSubscription($"Task?owner=Organization/{NewRun()}", receiver.Url(hook), null, "Authorization: Bearer hook-secret"));
        Assert.Equal(Subscription.SubscriptionStatus.Requested, created.Status);
        Assert.Empty(receiver.At(hook));
        using var measured = new GatewayMeasurements(_gateway);

        await DeliverAsync();

        Assert.Equal(1, measured.Sum(Deliveries, Outcome, "delivered"));

        var handshake = Assert.Single(receiver.At(hook));
        Assert.Equal("handshake", handshake.Type);
        Assert.Equal("Bearer hook-secret", handshake.Authorization);
        Assert.StartsWith("application/fhir+json", handshake.ContentType, StringComparison.Ordinal);
        Assert.Equal(Bundle.BundleType.History, handshake.Bundle.Type);
        Assert.EndsWith($"Subscription/{created.Id}", handshake.Status.GetSingleValue<ResourceReference>("subscription")?.Reference, StringComparison.Ordinal);
        var read = await (await X.GetAsync($"Subscription/{created.Id}")).ReadAs<Subscription>();
        Assert.Equal(Subscription.SubscriptionStatus.Active, read.Status);
    }

    [Fact]
    public async Task A_task_is_notified_id_only_to_its_owners_subscriber_and_not_to_another()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var (orgX, orgY) = (NewRun(), NewRun());
        var (hookX, hookY) = ("x-" + NewRun(), "y-" + NewRun());
        await SubscribeAsync(X, $"Task?owner=Organization/{orgX}", receiver.Url(hookX));
        await SubscribeAsync(Y, $"Task?owner=Organization/{orgY}", receiver.Url(hookY));

        var (patient, task) = await TaskForAsync(orgX, SubscriptionGateway<TGateway>.CsapaX);
        await DeliverAsync();
        Assert.Contains(await AuditsOfAsync(patient), a => a.OutcomeDesc == "permitted: Subscription notification 1 delivered");

        var events = receiver.At(hookX).Where(r => r.Type == "event-notification").ToList();
        var notification = Assert.Single(events);
        Assert.Equal($"Task/{task}", notification.Focus);
        Assert.Equal("1", notification.Status.Parameter.Single(p => p.Name == "notification-event").Part.Single(p => p.Name == "event-number").Value?.ToString());
        // Id-only: no resource besides the status, no clinical text, no patient name.
        Assert.All(notification.Bundle.Entry.Skip(1), e => Assert.Null(e.Resource));
        Assert.DoesNotContain("texte clinique", notification.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("Abonne", notification.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(receiver.At(hookY), r => r.Type == "event-notification");
    }

    /// <summary>GET Subscription/{id}/$status: the single SubscriptionStatus of the searchset it answers.</summary>
    private static async Task<Parameters> StatusAsync(HttpClient client, string id)
    {
        using var response = await client.GetAsync($"Subscription/{id}/$status");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var bundle = await response.ReadAs<Bundle>();
        Assert.Equal(Bundle.BundleType.Searchset, bundle.Type);
        var status = Assert.IsType<Parameters>(Assert.Single(bundle.Entry).Resource);
        Assert.Equal("query-status", status.GetSingleValue<Code>("type")?.Value);
        Assert.EndsWith($"Subscription/{id}", status.GetSingleValue<ResourceReference>("subscription")?.Reference, StringComparison.Ordinal);
        return status;
    }

    [Fact]
    public async Task Status_operation_counts_the_events_so_a_subscriber_can_tell_what_it_missed()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var org = NewRun();
        var hook = "status-" + NewRun();
        var id = await SubscribeAsync(X, $"Task?owner=Organization/{org}", receiver.Url(hook));
        var before = await StatusAsync(X, id);
        Assert.Equal("active", before.GetSingleValue<Code>("status")?.Value);
        Assert.Equal("0", before.GetSingleValue<FhirString>("events-since-subscription-start")?.Value);

        // Two matching writes; the second is not delivered yet (or would be lost, were the receiver down).
        await TaskForAsync(org, SubscriptionGateway<TGateway>.CsapaX);
        await DeliverAsync();
        await TaskForAsync(org, SubscriptionGateway<TGateway>.CsapaX);
        Assert.Single(receiver.At(hook), r => r.Type == "event-notification");

        // The subscriber received event 1 only; the status says 2 were queued: it knows it is one behind.
        var after = await StatusAsync(X, id);
        Assert.Equal("2", after.GetSingleValue<FhirString>("events-since-subscription-start")?.Value);
        Assert.Equal("active", after.GetSingleValue<Code>("status")?.Value);
        Assert.Null(after.GetSingleValue<CodeableConcept>("error"));
    }

    [Fact]
    public async Task A_subscription_turned_off_within_a_write_session_is_not_notified_of_the_sessions_later_saves()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var org = NewRun();
        var subscription = await SubscribeAsync(X, $"Task?owner=Organization/{org}", receiver.Url("off-" + NewRun()));
        var patient = (await Usmp.CreateAsync(Patient(NewRun(), "180029900000003", "Abonne"))).Id!;
        var store = _gateway.Services.GetRequiredService<FhirSortie.Server.Storage.ResourceStore>();
        var (before, after) = (HandOff(patient, org), HandOff(patient, org));
        before.Id = FhirSortie.Server.Rest.FhirRequest.NewId();
        after.Id = FhirSortie.Server.Rest.FhirRequest.NewId();
        // One session, as the delivery worker changes a status: the subscriptions row, then the Subscription resource.
        await store.WriteAsync(async session =>
        {
            await session.SaveAsync(before, null, "POST", CancellationToken.None); // matched while active
            await using (var off = FhirSortie.Server.Storage.Sql.Command(session.Connection, session.Transaction, "UPDATE subscriptions SET status = 'off' WHERE id = @i")
                .With("@i", subscription))
            {
                await off.ExecuteNonQueryAsync();
            }
            var current = (await session.ReadForUpdateAsync("Subscription", subscription, CancellationToken.None))!;
            var resource = (Subscription)FhirSortie.Server.Rest.FhirFormat.Parse(current.Json!, FhirSortie.Server.Rest.WireFormat.Json);
            resource.Status = Subscription.SubscriptionStatus.Off;
            await session.SaveAsync(resource, current, "PUT", CancellationToken.None);
            await session.SaveAsync(after, null, "POST", CancellationToken.None); // must not be matched any more
            return true;
        }, CancellationToken.None);

        await using var connection = await store.OpenAsync(CancellationToken.None);
        await using var queued = FhirSortie.Server.Storage.Sql.Command(connection, null,
            "SELECT focus_id FROM notification_outbox WHERE subscription_id = @i AND kind = 'event'").With("@i", subscription);
        var focused = new List<string>();
        await using (var rows = await queued.ExecuteReaderAsync())
            while (await rows.ReadAsync()) focused.Add(rows.GetString(0));
        Assert.Equal([before.Id], focused);
    }

    [Fact]
    public async Task Full_resource_payload_carries_the_resource_when_allowed()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var org = NewRun();
        var hook = "full-" + NewRun();
        await SubscribeAsync(X, $"Task?owner=Organization/{org}", receiver.Url(hook), SubscriptionHook.FullResourcePayload);

        var (_, task) = await TaskForAsync(org, SubscriptionGateway<TGateway>.CsapaX);
        await DeliverAsync();

        var notification = Assert.Single(receiver.At(hook), r => r.Type == "event-notification");
        var sent = Assert.IsType<Hl7.Fhir.Model.Task>(notification.Bundle.Entry[1].Resource);
        Assert.Equal(task, sent.Id);
    }

    [Fact]
    public async Task Consent_withdrawn_before_delivery_drops_the_notification()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var org = NewRun();
        var hook = "withdrawn-" + NewRun();
        await SubscribeAsync(X, $"Task?owner=Organization/{org}", receiver.Url(hook), SubscriptionHook.FullResourcePayload);
        var patient = (await Usmp.CreateAsync(Patient(NewRun(), "180029900000003", "Retrait"))).Id!;
        var consent = await Usmp.CreateAsync(TestConsents.Permit(patient, SubscriptionGateway<TGateway>.CsapaX, "Task"));
        await Usmp.CreateAsync(HandOff(patient, org));

        // Withdrawn after the write queued the notification, before the worker sends it.
        Assert.True((await Usmp.DeleteAsync($"Consent/{consent.Id}")).IsSuccessStatusCode);
        using var measured = new GatewayMeasurements(_gateway);
        await DeliverAsync();

        Assert.DoesNotContain(receiver.At(hook), r => r.Type == "event-notification");
        Assert.Equal(1, measured.Sum(Deliveries, Outcome, "dropped"));
        Assert.Equal(0, measured.Sum(Deliveries, Outcome, "delivered"));
        // The drop is audited, naming the subscription and the patient.
        var audits = await AuditsOfAsync(patient);
        Assert.Contains(audits, a => a.OutcomeDesc?.StartsWith("denied: Subscription notification 1 not delivered", StringComparison.Ordinal) == true
            && a.Entity.Any(e => e.What?.Reference?.StartsWith("Subscription/", StringComparison.Ordinal) == true));
        // Without any consent from the start, nothing either.
        await TaskForAsync(org, permitFiness: null);
        await DeliverAsync();
        Assert.DoesNotContain(receiver.At(hook), r => r.Type == "event-notification");
    }

    [Fact]
    public async Task A_task_handed_to_another_organisation_is_notified_to_the_subscriber_it_left_and_the_one_it_reached()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var (orgX, orgY) = (NewRun(), NewRun());
        var (hookX, hookY) = ("left-x-" + NewRun(), "reached-y-" + NewRun());
        await SubscribeAsync(X, $"Task?owner=Organization/{orgX}", receiver.Url(hookX));
        await SubscribeAsync(Y, $"Task?owner=Organization/{orgY}", receiver.Url(hookY));
        var (patient, taskId) = await TaskForAsync(orgX, SubscriptionGateway<TGateway>.CsapaX);
        await Usmp.CreateAsync(TestConsents.Permit(patient, SubscriptionGateway<TGateway>.CsapaY, "Task"));
        await DeliverAsync();
        List<string?> Events(string hook) => receiver.At(hook).Where(r => r.Type == "event-notification").Select(r => r.Focus).ToList();
        Assert.Single(Events(hookX));
        Assert.Empty(Events(hookY));

        // Handed over to Y: X is told (the task left its criteria), Y too (it reached them).
        var task = await (await Usmp.GetAsync($"Task/{taskId}")).ReadAs<Hl7.Fhir.Model.Task>();
        task.Owner = new ResourceReference("Organization/" + orgY);
        Assert.Equal(HttpStatusCode.OK, (await Usmp.PutAsync($"Task/{taskId}", FhirHttp.Json(task))).StatusCode);
        await DeliverAsync();
        Assert.Equal([$"Task/{taskId}", $"Task/{taskId}"], Events(hookX));
        Assert.Equal([$"Task/{taskId}"], Events(hookY));

        // A later change concerns Y only: X is not told again of a task that is no longer its own.
        task = await (await Usmp.GetAsync($"Task/{taskId}")).ReadAs<Hl7.Fhir.Model.Task>();
        task.Status = Hl7.Fhir.Model.Task.TaskStatus.Accepted;
        Assert.Equal(HttpStatusCode.OK, (await Usmp.PutAsync($"Task/{taskId}", FhirHttp.Json(task))).StatusCode);
        await DeliverAsync();
        Assert.Equal(2, Events(hookX).Count);
        Assert.Equal(2, Events(hookY).Count);
    }

    [Fact]
    public async Task A_deletion_is_notified_without_content_to_the_subscribers_its_last_version_matched()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var (orgX, orgY) = (NewRun(), NewRun());
        var (hookX, hookY) = ("deleted-x-" + NewRun(), "deleted-y-" + NewRun());
        await SubscribeAsync(X, $"Task?owner=Organization/{orgX}", receiver.Url(hookX), SubscriptionHook.FullResourcePayload);
        await SubscribeAsync(Y, $"Task?owner=Organization/{orgY}", receiver.Url(hookY));
        var (patient, task) = await TaskForAsync(orgX, SubscriptionGateway<TGateway>.CsapaX);
        await DeliverAsync();

        Assert.True((await Usmp.DeleteAsync($"Task/{task}")).IsSuccessStatusCode);
        await DeliverAsync();

        var events = receiver.At(hookX).Where(r => r.Type == "event-notification").ToList();
        Assert.Equal(2, events.Count);
        var deletion = events[1];
        Assert.Equal($"Task/{task}", deletion.Focus);
        var notificationEvent = deletion.Status.Parameter.Single(p => p.Name == "notification-event");
        Assert.Equal("2", notificationEvent.Part.Single(p => p.Name == "event-number").Value?.ToString());
        Assert.EndsWith($"Task/{task}/_history/2", ((ResourceReference)notificationEvent.Part.Single(p => p.Name == "focus").Value!).Reference, StringComparison.Ordinal);
        var entry = deletion.Bundle.Entry[1];
        Assert.Equal(Bundle.HTTPVerb.DELETE, entry.Request!.Method);
        Assert.Equal("204", entry.Response!.Status);
        // Full-resource payload or not, a deletion carries no content.
        Assert.Null(entry.Resource);
        Assert.DoesNotContain("texte clinique", deletion.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(receiver.At(hookY), r => r.Type == "event-notification");
        // Audited under the patient of the content that was deleted.
        Assert.Contains(await AuditsOfAsync(patient), a => a.OutcomeDesc == "permitted: Subscription notification 2 delivered");
    }

    [Fact]
    public async Task A_deletion_is_not_notified_to_a_subscriber_who_may_no_longer_see_what_was_deleted()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var org = NewRun();
        var hook = "deleted-withdrawn-" + NewRun();
        await SubscribeAsync(X, $"Task?owner=Organization/{org}", receiver.Url(hook));
        var patient = (await Usmp.CreateAsync(Patient(NewRun(), "180029900000003", "Retrait"))).Id!;
        var consent = await Usmp.CreateAsync(TestConsents.Permit(patient, SubscriptionGateway<TGateway>.CsapaX, "Task"));
        var task = (await Usmp.CreateAsync(HandOff(patient, org))).Id!;
        await DeliverAsync();
        Assert.Single(receiver.At(hook), r => r.Type == "event-notification");

        // The consent is withdrawn, then the task deleted: the deletion is decided on the deleted content, now.
        Assert.True((await Usmp.DeleteAsync($"Consent/{consent.Id}")).IsSuccessStatusCode);
        Assert.True((await Usmp.DeleteAsync($"Task/{task}")).IsSuccessStatusCode);
        using var measured = new GatewayMeasurements(_gateway);
        await DeliverAsync();

        Assert.Single(receiver.At(hook), r => r.Type == "event-notification");
        Assert.Equal(1, measured.Sum(Deliveries, Outcome, "dropped"));
        Assert.Contains(await AuditsOfAsync(patient), a => a.OutcomeDesc?.StartsWith("denied: Subscription notification 2 not delivered", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task Endpoint_down_is_retried_then_the_subscription_goes_to_error()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var org = NewRun();
        var hook = "down-" + NewRun();
        var id = await SubscribeAsync(X, $"Task?owner=Organization/{org}", receiver.Url(hook));
        receiver.Failing = true;
        using var measured = new GatewayMeasurements(_gateway);
        var queued = measured.Current(OutboxQueued);
        await TaskForAsync(org, SubscriptionGateway<TGateway>.CsapaX);
        Assert.Equal(queued + 1, measured.Current(OutboxQueued));
        Assert.InRange(measured.Current("fhirsortie.notifications.outbox.oldest.age"), 0, 3600);

        // Each round: one attempt with one quick retry; the row comes back due after its (1 ms) backoff.
        for (var round = 0; round < 10; round++)
        {
            await DeliverAsync();
            await System.Threading.Tasks.Task.Delay(20);
        }

        var attempts = receiver.At(hook).Count(r => r.Type == "event-notification");
        Assert.Equal(3 * 2, attempts); // MaxFailures deliveries × (1 + QuickRetries)
        Assert.Equal(3, measured.Sum(Deliveries, Outcome, "failed"));
        Assert.Equal(queued, measured.Current(OutboxQueued)); // the subscription in error: its rows are gone
        var read = await (await X.GetAsync($"Subscription/{id}")).ReadAs<Subscription>();
        Assert.Equal(Subscription.SubscriptionStatus.Error, read.Status);
        Assert.Contains("503", read.Error, StringComparison.Ordinal);
        var status = await StatusAsync(X, id);
        Assert.Equal("error", status.GetSingleValue<Code>("status")?.Value);
        Assert.Contains("503", status.GetSingleValue<CodeableConcept>("error")?.Text, StringComparison.Ordinal);

        // Deliveries stop: a later matching write is not sent even once the endpoint is back.
        receiver.Failing = false;
        await TaskForAsync(org, SubscriptionGateway<TGateway>.CsapaX);
        await DeliverAsync();
        Assert.Equal(attempts, receiver.At(hook).Count(r => r.Type == "event-notification"));
    }

    [Fact]
    public async Task Handshake_to_a_dead_endpoint_ends_in_error()
    {
        int port;
        await using (var gone = await NotificationReceiver.StartAsync()) port = gone.Port;
        var created = await X.CreateAsync(NewSubscription($"Task?owner=Organization/{NewRun()}", $"http://127.0.0.1:{port}/notify/dead"));
        for (var round = 0; round < 10; round++)
        {
            await DeliverAsync();
            await System.Threading.Tasks.Task.Delay(20);
        }
        var read = await (await X.GetAsync($"Subscription/{created.Id}")).ReadAs<Subscription>();
        Assert.Equal(Subscription.SubscriptionStatus.Error, read.Status);
        Assert.False(string.IsNullOrEmpty(read.Error));
    }

    [Fact]
    public async Task Unregistered_endpoints_are_refused()
    {
        var criteria = $"Task?owner=Organization/{NewRun()}";
        foreach (var endpoint in new[] { "http://example.org/notify/x", "http://127.0.0.1:8080/elsewhere", "http://127.0.0.1.example.org/notify/x", "http://user@127.0.0.1/notify/x" })
        {
            var response = await X.PostAsync("Subscription", FhirHttp.Json(NewSubscription(criteria, endpoint)));
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{endpoint}: {(int)response.StatusCode}");
            Assert.IsType<OperationOutcome>(await response.ReadAs<OperationOutcome>());
        }
        var none = await As(_gateway, "csapa-none", SubscriptionGateway<TGateway>.CsapaY)
            .PostAsync("Subscription", FhirHttp.Json(NewSubscription(criteria, "http://127.0.0.1:9/notify/x")));
        Assert.Equal(HttpStatusCode.Forbidden, none.StatusCode);
    }

    [Theory]
    [InlineData("Task?nonsense=1")]
    [InlineData("NotAType?owner=Organization/1")]
    [InlineData("Task?_sort=date")]
    [InlineData("http://elsewhere.example/fhir/Task?owner=Organization/1")]
    [InlineData("")]
    public async Task Bad_criteria_are_refused_with_400(string criteria)
    {
        var response = await X.PostAsync("Subscription", FhirHttp.Json(NewSubscription(criteria, "http://127.0.0.1:9/notify/x")));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.IsType<OperationOutcome>(await response.ReadAs<OperationOutcome>());
    }

    [Fact]
    public async Task Another_client_neither_reads_nor_changes_nor_lists_a_subscription()
    {
        var created = await X.CreateAsync(NewSubscription($"Task?owner=Organization/{NewRun()}", "http://127.0.0.1:9/notify/x"));
        Assert.Equal(HttpStatusCode.OK, (await X.GetAsync($"Subscription/{created.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Y.GetAsync($"Subscription/{created.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Y.GetAsync($"Subscription/{created.Id}/$status")).StatusCode);
        var stolen = NewSubscription(created.Criteria!, "http://127.0.0.1:9/notify/y");
        stolen.Id = created.Id;
        Assert.Equal(HttpStatusCode.NotFound, (await Y.PutAsync($"Subscription/{created.Id}", FhirHttp.Json(stolen))).StatusCode);
        // Nor its versions: vread and instance history are decided on the owner like the read.
        Assert.Equal(HttpStatusCode.NotFound, (await Y.GetAsync($"Subscription/{created.Id}/_history/1")).StatusCode);
        var history = await Y.GetAsync($"Subscription/{created.Id}/_history");
        Assert.DoesNotContain("notify/x", await history.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        // A delete gets what a delete of any resource the caller may not see gets (Rest/Delete.cs): the neutral 403.
        var delete = await Y.DeleteAsync($"Subscription/{created.Id}");
        Assert.Equal(HttpStatusCode.Forbidden, delete.StatusCode);
        Assert.Equal($"Subscription/{created.Id} cannot be deleted by this client; nothing was deleted.", (await delete.ReadAs<OperationOutcome>()).Issue.Single().Diagnostics);
        // A conditional write is a search: refused before it runs, whether anything matches or not.
        Assert.Equal(HttpStatusCode.Forbidden, (await Y.DeleteAsync($"Subscription?_id={created.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Y.DeleteAsync($"Subscription?_id=never-{NewRun()}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Y.GetAsync("Subscription")).StatusCode);
        var system = await Y.SearchAsync($"?_id={created.Id}");
        Assert.Empty(system.Matches());
        Assert.Equal(HttpStatusCode.OK, (await X.GetAsync($"Subscription/{created.Id}/_history/1")).StatusCode);
        Assert.True((await X.DeleteAsync($"Subscription/{created.Id}")).IsSuccessStatusCode);
        // Once deleted, or never written, there is nothing to delete: the same 204 for anyone.
        Assert.Equal(HttpStatusCode.NoContent, (await Y.DeleteAsync($"Subscription/{created.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await Y.DeleteAsync($"Subscription/never-{NewRun()}")).StatusCode);
    }
}

public sealed class SqliteSubscriptionTests(SubscriptionGateway<SqliteGateway> fixture)
    : SubscriptionTests<SqliteGateway>(fixture), IClassFixture<SubscriptionGateway<SqliteGateway>>;

public sealed class PostgresSubscriptionTests(SubscriptionGateway<PostgresGateway> fixture)
    : SubscriptionTests<PostgresGateway>(fixture), IClassFixture<SubscriptionGateway<PostgresGateway>>;
