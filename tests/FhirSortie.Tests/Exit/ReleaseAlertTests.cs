using System.Net;
using FhirSortie.Server.Exit;
using FhirSortie.Server.Notifications;
using FhirSortie.Tests.Notifications;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Exit;

/// <summary>
/// Issue 25's three alerts on crafted data, each raised and lowered by the writes that change it (and, for the hand-off
/// window, by the periodic check), as one Flag per stay and kind, announced through the outbox to who may see it.
/// </summary>
public abstract class ReleaseAlertTests<TGateway>(ReleaseGateway<TGateway> fixture) where TGateway : Gateway, new()
{
    private readonly Gateway _gateway = fixture.Gateway;

    private Task<int> DeliverAsync() => _gateway.Services.GetRequiredService<DeliveryWorker>().DeliverDueAsync(CancellationToken.None);

    private static Task<HttpResponseMessage> SetAsync(HttpClient client, string stay, Parameters parameters) =>
        client.PostAsync($"Encounter/{stay}/$set-release-date", FhirHttp.Json(parameters));

    private static async Task<T> UpdateAsync<T>(HttpClient client, T resource) where T : Resource
    {
        var response = await client.PutAsync($"{resource.TypeName}/{resource.Id}", FhirHttp.Json(resource));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return await response.ReadAs<T>();
    }

    [Fact]
    public async Task A_release_moved_earlier_than_the_first_appointment_raises_an_alert_the_CSAPA_is_notified_of_and_moving_it_back_lowers_it()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 40);
        var usmp = ReleaseRecord.Usmp(_gateway);
        var csapa = ReleaseRecord.Csapa(_gateway);
        await using var receiver = await NotificationReceiver.StartAsync();
        var hook = "flags-" + record.Run;
        var subscription = await csapa.CreateAsync(SubscriptionTests<TGateway>.NewSubscription($"Flag?patient=Patient/{record.PatientId}", receiver.Url(hook)));
        await DeliverAsync();
        await usmp.CreateAsync(record.Appointment(record.PlannedRelease.AddHours(20)));
        Assert.Null(await record.AlertAsync(usmp, ReleaseAlerts.MovedBeforeAppointment));

        var spip = ReleaseRecord.Spip(_gateway, "spip-alert-" + record.Run);
        Assert.Equal(HttpStatusCode.OK, (await SetAsync(spip, record.StayId, ReleaseRecord.SetDate(ReleaseRecord.Day(30), ReleaseDates.Confirmed))).StatusCode);
        var raised = await record.AlertAsync(csapa, ReleaseAlerts.MovedBeforeAppointment);
        Assert.NotNull(raised);
        Assert.Equal(Flag.FlagStatus.Active, raised.Status);
        Assert.Equal($"Encounter/{record.StayId}", raised.Encounter?.Reference);
        Assert.Equal($"Patient/{record.PatientId}", raised.Subject?.Reference);
        Assert.Equal(ReleaseAlerts.AlertTypes, raised.Code.Coding.Single().System);
        // The USMP (the stay's author) sees it; a CSAPA no consent names does not; justice never does.
        Assert.Equal(HttpStatusCode.OK, (await usmp.GetAsync($"Flag/{raised.Id}")).StatusCode);
        var stranger = _gateway.Fhir(TestAuthenticationHandler.Describe("csapa-stranger", Server.Security.ActorKind.Csapa, "930000039", "system/*.rs"));
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"Flag/{raised.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await spip.GetAsync($"Flag/{raised.Id}")).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await SetAsync(spip, record.StayId, ReleaseRecord.SetDate(record.PlannedRelease, ReleaseDates.Confirmed))).StatusCode);
        var lowered = await record.AlertAsync(usmp, ReleaseAlerts.MovedBeforeAppointment);
        Assert.Equal(Flag.FlagStatus.Inactive, lowered!.Status);
        Assert.Equal("2", lowered.Meta!.VersionId);
        Assert.NotNull(lowered.Period?.End);

        await DeliverAsync();
        var events = receiver.At(hook).Where(r => r.Type == "event-notification").ToList();
        Assert.Equal(2, events.Count);
        Assert.All(events, e => Assert.Equal($"Flag/{raised.Id}", e.Focus));
        Assert.NotNull(subscription.Id);
    }

    [Fact]
    public async Task A_release_within_7_days_without_an_accepted_handoff_raises_an_alert_on_write_and_accepting_the_handoff_lowers_it()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 5);
        var usmp = ReleaseRecord.Usmp(_gateway);
        var raised = await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff);
        Assert.Equal(Flag.FlagStatus.Active, raised?.Status);
        var task = await usmp.CreateAsync(record.Handoff());
        Assert.Equal(Flag.FlagStatus.Active, (await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff))?.Status);

        // The CSAPA (owner) receives then accepts it.
        var csapa = ReleaseRecord.Csapa(_gateway);
        task.Status = Hl7.Fhir.Model.Task.TaskStatus.Received;
        task = await UpdateAsync(csapa, task);
        Assert.Equal(Flag.FlagStatus.Active, (await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff))?.Status);
        task.Status = Hl7.Fhir.Model.Task.TaskStatus.Accepted;
        await UpdateAsync(csapa, task);
        Assert.Equal(Flag.FlagStatus.Inactive, (await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff))?.Status);
    }

    [Fact]
    public async Task The_periodic_check_raises_the_handoff_alert_when_time_brings_the_release_within_7_days_once_across_nodes()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 10);
        var usmp = ReleaseRecord.Usmp(_gateway);
        Assert.Null(await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff));
        var worker = _gateway.Services.GetRequiredService<ReleaseAlertWorker>();
        await worker.CheckAsync(DateTimeOffset.UtcNow.AddDays(1), CancellationToken.None);
        Assert.Null(await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff));

        // Four days later, on two nodes at once (two checks sharing the database): one Flag, one version.
        var later = DateTimeOffset.UtcNow.AddDays(4);
        await System.Threading.Tasks.Task.WhenAll(worker.CheckAsync(later, CancellationToken.None), worker.CheckAsync(later, CancellationToken.None));
        var raised = await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff);
        Assert.Equal(Flag.FlagStatus.Active, raised?.Status);
        Assert.Equal("1", raised!.Meta!.VersionId);
        Assert.Equal([raised.Id!], (await usmp.SearchAsync($"Flag?patient=Patient/{record.PatientId}")).Matches());
        await worker.CheckAsync(later, CancellationToken.None);
        Assert.Equal("1", (await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff))!.Meta!.VersionId);
        // Raised by no client's write, it is traced all the same: one Provenance, by the gateway, for its one version.
        await TraceOfAsync(usmp, record, raised);
    }

    [Fact]
    public async Task A_flag_raised_by_a_write_gets_a_Provenance_of_its_own_and_the_Provenance_of_the_write_does_not_name_it()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 5);
        var usmp = ReleaseRecord.Usmp(_gateway);
        var raised = await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff);
        await TraceOfAsync(usmp, record, raised!);
        var ofTheStay = (await usmp.SearchAsync($"Provenance?target=Encounter/{record.StayId}")).Entry.Select(e => (Provenance)e.Resource!).ToList();
        Assert.NotEmpty(ofTheStay);
        Assert.All(ofTheStay, p => Assert.DoesNotContain(p.Target, t => t.Reference!.StartsWith("Flag/", StringComparison.Ordinal)));

        // Lowered by the CSAPA's acceptance: the new version gets its own Provenance too, still the gateway's, not the CSAPA's.
        var csapa = ReleaseRecord.Csapa(_gateway);
        var task = await usmp.CreateAsync(record.Handoff());
        task.Status = Hl7.Fhir.Model.Task.TaskStatus.Received;
        task = await UpdateAsync(csapa, task);
        task.Status = Hl7.Fhir.Model.Task.TaskStatus.Accepted;
        await UpdateAsync(csapa, task);
        var lowered = await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff);
        Assert.Equal(Flag.FlagStatus.Inactive, lowered!.Status);
        Assert.Equal("UPDATE", (await TraceOfAsync(usmp, record, lowered)).Activity!.Coding.Single().Code);
    }

    /// <summary>The one Provenance of this Flag version: the gateway's, naming that version only, derived from a version of the stay.</summary>
    private static async Task<Provenance> TraceOfAsync(HttpClient client, ReleaseRecord record, Flag flag)
    {
        var version = $"Flag/{flag.Id}/_history/{flag.Meta!.VersionId}";
        var found = (await client.SearchAsync($"Provenance?target=Flag/{flag.Id}")).Entry.Select(e => (Provenance)e.Resource!)
            .Where(p => p.Target.Any(t => t.Reference == version)).ToList();
        var trace = Assert.Single(found);
        Assert.Equal([version], trace.Target.Select(t => t.Reference));
        var agent = Assert.Single(trace.Agent);
        Assert.Equal(Server.Audit.AuditRecords.GatewayName, agent.Who!.Display);
        Assert.Null(agent.Who.Identifier);
        Assert.StartsWith($"Encounter/{record.StayId}/_history/", Assert.Single(trace.Entity).What!.Reference, StringComparison.Ordinal);
        return trace;
    }

    [Fact]
    public async Task A_bridging_supply_ending_before_the_first_appointment_raises_an_alert_and_an_earlier_appointment_lowers_it()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 40);
        var usmp = ReleaseRecord.Usmp(_gateway);
        // The CLAT consultation 10 days after release, a 7-day supply of the tuberculosis treatment handed over at release.
        await usmp.CreateAsync(record.Appointment(record.PlannedRelease.AddDays(10)));
        Assert.Null(await record.AlertAsync(usmp, ReleaseAlerts.SupplyEndsBeforeAppointment));
        await usmp.CreateAsync(record.BridgingSupply(7, record.PlannedRelease));
        var raised = await record.AlertAsync(usmp, ReleaseAlerts.SupplyEndsBeforeAppointment);
        Assert.Equal(Flag.FlagStatus.Active, raised?.Status);
        Assert.Contains("7 day(s)", raised!.Code.Text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await ReleaseRecord.Csapa(_gateway).GetAsync($"Flag/{raised.Id}")).StatusCode);

        // An appointment moved up to day 5 of the supply: no gap any more.
        await usmp.CreateAsync(record.Appointment(record.PlannedRelease.AddDays(5)));
        Assert.Equal(Flag.FlagStatus.Inactive, (await record.AlertAsync(usmp, ReleaseAlerts.SupplyEndsBeforeAppointment))?.Status);
        // Nothing else was raised for this stay (the release is far off and was never moved).
        Assert.Null(await record.AlertAsync(usmp, ReleaseAlerts.MovedBeforeAppointment));
        Assert.Null(await record.AlertAsync(usmp, ReleaseAlerts.NoAcceptedHandoff));
    }
}

[Collection(SqliteReleaseCollection.Name)]
public sealed class SqliteReleaseAlertTests(ReleaseGateway<SqliteGateway> fixture) : ReleaseAlertTests<SqliteGateway>(fixture);

[Collection(PostgresReleaseCollection.Name)]
public sealed class PostgresReleaseAlertTests(ReleaseGateway<PostgresGateway> fixture) : ReleaseAlertTests<PostgresGateway>(fixture);
