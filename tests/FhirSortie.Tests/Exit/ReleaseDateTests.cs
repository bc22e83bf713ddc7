using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Exit;
using FhirSortie.Server.Notifications;
using FhirSortie.Tests.Notifications;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Exit;

/// <summary>
/// The gateway of the release-date tests: the USMP and the CSAPA registered with notification endpoints, delivery and the
/// periodic alert check driven by the tests (<see cref="DeliveryWorker.DeliverDueAsync"/>, <see cref="ReleaseAlertWorker.CheckAsync"/>).
/// </summary>
public sealed class ReleaseGateway<TGateway> : IDisposable where TGateway : Gateway, new()
{
    public TGateway Gateway { get; } = Configure(new TGateway());

    private static TGateway Configure(TGateway gateway)
    {
        var s = gateway.Settings;
        SubscriptionGateway<TGateway>.Client(s, 0, "usmp-release", "Usmp", ReleaseRecord.UsmpFiness, ["http://127.0.0.1/notify/"]);
        SubscriptionGateway<TGateway>.Client(s, 1, "csapa-release", "Csapa", ReleaseRecord.CsapaFiness, ["http://127.0.0.1/notify/"]);
        s["FhirSortie:Notifications:Deliver"] = "false";
        s["FhirSortie:Notifications:QuickRetries"] = "1";
        s["FhirSortie:Notifications:QuickRetryDelayMilliseconds"] = "10";
        s["FhirSortie:ReleaseAlerts:CheckMinutes"] = "0";
        return gateway;
    }

    public void Dispose() => Gateway.Dispose();
}

/// <summary>
/// Issue 25: the justice side gives the release date (Encounter/{id}/$set-release-date), the care side sees each version
/// and is notified, justice reads nothing clinical and dates only the people it follows; every attempt is audited.
/// </summary>
public abstract class ReleaseDateTests<TGateway>(ReleaseGateway<TGateway> fixture) where TGateway : Gateway, new()
{
    private readonly Gateway _gateway = fixture.Gateway;

    private Task<int> DeliverAsync() => _gateway.Services.GetRequiredService<DeliveryWorker>().DeliverDueAsync(CancellationToken.None);

    private static Task<HttpResponseMessage> SetAsync(HttpClient client, string stay, Parameters parameters) =>
        client.PostAsync($"Encounter/{stay}/$set-release-date", FhirHttp.Json(parameters));

    private async Task SubscribeAsync(HttpClient client, string criteria, string endpoint)
    {
        var created = await client.CreateAsync(SubscriptionTests<TGateway>.NewSubscription(criteria, endpoint));
        await DeliverAsync();
        Assert.Equal(Subscription.SubscriptionStatus.Active, (await (await client.GetAsync($"Subscription/{created.Id}")).ReadAs<Subscription>()).Status);
    }

    [Fact]
    public async Task A_SPIP_sets_then_moves_the_date_and_the_USMP_and_the_named_CSAPA_see_each_version_and_are_notified()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 40);
        await using var receiver = await NotificationReceiver.StartAsync();
        var usmp = ReleaseRecord.Usmp(_gateway);
        var csapa = ReleaseRecord.Csapa(_gateway);
        await SubscribeAsync(usmp, $"Encounter?patient=Patient/{record.PatientId}", receiver.Url("usmp-" + record.Run));
        await SubscribeAsync(csapa, $"Encounter?patient=Patient/{record.PatientId}", receiver.Url("csapa-" + record.Run));
        var client = "spip-release-" + record.Run;
        var spip = ReleaseRecord.Spip(_gateway, client);

        var first = ReleaseRecord.Day(30);
        var set = await SetAsync(spip, record.StayId, ReleaseRecord.SetDate(first, ReleaseDates.Estimated, ReleaseRecord.Day(25), ReleaseRecord.Day(35), "liberation-conditionnelle"));
        Assert.True(set.StatusCode == HttpStatusCode.OK, await set.Content.ReadAsStringAsync());
        var answered = await set.ReadAs<Encounter>();
        // The SPIP reads the administrative minimum back: status, dates, certainty and window, kind of exit; redacted.
        Assert.Equal(ReleaseRecord.Text(first), answered.Period?.End);
        Assert.Equal("liberation-conditionnelle", answered.Hospitalization?.DischargeDisposition?.Coding.Single().Code);
        Assert.Empty(answered.Identifier);
        Assert.Empty(answered.ReasonCode);
        Assert.Empty(answered.Participant);
        Assert.Null(answered.Type.Single().Text);
        Assert.Null(answered.ServiceProvider);
        Assert.Empty(answered.Hospitalization!.SpecialArrangement);
        Assert.DoesNotContain(answered.Extension, e => e.Url == ReleaseDates.FollowUpUrl);
        Assert.Contains(answered.Meta!.Security, c => c.Code == Redaction.RedactedCode);

        var moved = ReleaseRecord.Day(28);
        var move = await SetAsync(spip, record.StayId, ReleaseRecord.SetDate(moved, ReleaseDates.Confirmed));
        Assert.Equal(HttpStatusCode.OK, move.StatusCode);
        // The same date again writes no version.
        Assert.Equal("3", (await (await SetAsync(spip, record.StayId, ReleaseRecord.SetDate(moved, ReleaseDates.Confirmed))).ReadAs<Encounter>()).Meta!.VersionId);

        // The USMP and the CSAPA named by consent see every version, from what to what.
        foreach (var reader in new[] { usmp, csapa })
        {
            var history = (await reader.SearchAsync($"Encounter/{record.StayId}/_history")).Entry.Select(e => (Encounter)e.Resource!).OrderBy(e => int.Parse(e.Meta!.VersionId!, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal([ReleaseRecord.Text(record.PlannedRelease), ReleaseRecord.Text(first), ReleaseRecord.Text(moved)], history.Select(e => e.Period?.End));
            Assert.Equal([ReleaseDates.Estimated, ReleaseDates.Estimated, ReleaseDates.Confirmed], history.Select(e => e.GetExtensionValue<Code>(ReleaseDates.CertaintyUrl)?.Value));
            Assert.Equal(ReleaseRecord.Text(ReleaseRecord.Day(25)), history[1].GetExtensionValue<Period>(ReleaseDates.WindowUrl).Start);
            Assert.Null(history[2].GetExtensionValue<Period>(ReleaseDates.WindowUrl));
            // Nothing else of the stay changed.
            Assert.Equal("TSO buprénorphine (texte clinique)", history[2].ReasonCode.Single().Text);
        }
        await DeliverAsync();
        foreach (var hook in new[] { "usmp-" + record.Run, "csapa-" + record.Run })
        {
            var events = receiver.At(hook).Where(r => r.Type == "event-notification").ToList();
            Assert.Equal(2, events.Count);
            Assert.All(events, e => Assert.Equal($"Encounter/{record.StayId}", e.Focus));
        }

        // Who, when, from what to what: the Provenance of each change.
        var provenances = (await usmp.SearchAsync($"Provenance?target=Encounter/{record.StayId}")).Entry.Select(e => (Provenance)e.Resource!)
            .Where(p => p.Extension.Any(x => x.Url == ReleaseDates.ChangeUrl)).OrderBy(p => p.Recorded).ToList();
        Assert.Equal(2, provenances.Count);
        var change = provenances[1].GetExtension(ReleaseDates.ChangeUrl)!;
        Assert.Equal(ReleaseRecord.Text(first), change.GetExtensionValue<FhirDateTime>("previousDate").Value);
        Assert.Equal(ReleaseRecord.Text(moved), change.GetExtensionValue<FhirDateTime>("newDate").Value);
        Assert.Equal(ReleaseDates.Confirmed, change.GetExtensionValue<Code>("newCertainty").Value);
        Assert.Contains(provenances[1].Agent, a => a.Who?.Identifier?.Value == ReleaseRecord.SpipFiness);
        Assert.Contains(provenances[1].Entity, e => e.What?.Reference == $"Encounter/{record.StayId}/_history/2");

        // And in the person's access report.
        var report = await (await ReleaseRecord.Auditor(_gateway).GetAsync($"Patient/{record.PatientId}/$access-report")).ReadAs<Parameters>();
        var writes = report.Parameter.Where(p => p.Name == "access" && p.Part.Any(x => x.Name == "client" && x.Value?.ToString() == client)
            && p.Part.Any(x => x.Name == "outcome" && x.Value?.ToString() == "permitted")).ToList();
        var resources = writes.SelectMany(w => w.Part.Where(x => x.Name == "resource").Select(x => (x.Value as ResourceReference)?.Reference)).ToList();
        Assert.Contains($"Encounter/{record.StayId}/_history/2", resources);
        Assert.Contains($"Encounter/{record.StayId}/_history/3", resources);
    }

    [Fact]
    public async Task The_SPIP_reads_and_writes_nothing_clinical_dates_only_the_people_it_follows_and_every_attempt_is_audited()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 40);
        var other = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 40, followedBy: ReleaseRecord.OtherSpipFiness);
        var usmp = ReleaseRecord.Usmp(_gateway);
        var condition = await usmp.CreateAsync(new Condition { Code = new CodeableConcept { Text = "trouble lié aux opiacés" }, Subject = new ResourceReference("Patient/" + record.PatientId) });
        var consultation = await usmp.CreateAsync(new Encounter
        {
            Status = Encounter.EncounterStatus.Finished, Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
            Subject = new ResourceReference("Patient/" + record.PatientId), ReasonCode = [new CodeableConcept { Text = "consultation psychiatrique" }],
        });
        var client = "spip-refused-" + record.Run;
        var spip = ReleaseRecord.Spip(_gateway, client);
        var stay = await (await usmp.GetAsync($"Encounter/{record.StayId}")).ReadAs<Encounter>();

        // Reads: the stay (redacted) only; no other Encounter, nothing clinical.
        Assert.Equal(HttpStatusCode.OK, (await spip.GetAsync($"Encounter/{record.StayId}")).StatusCode);
        Assert.Equal([record.StayId], (await spip.SearchAsync($"Encounter?patient=Patient/{record.PatientId}")).Matches());
        var refusals = new List<HttpStatusCode>
        {
            (await spip.GetAsync($"Encounter/{consultation.Id}")).StatusCode,
            (await spip.GetAsync($"Condition/{condition.Id}")).StatusCode,
            (await spip.GetAsync($"MedicationRequest?patient=Patient/{record.PatientId}")).StatusCode,
            (await spip.GetAsync("Encounter?status=in-progress")).StatusCode,
            (await spip.GetAsync($"Flag?patient=Patient/{record.PatientId}")).StatusCode,
            // Writes: nothing but the release date, and only through the operation.
            (await spip.PutAsync($"Encounter/{record.StayId}", FhirHttp.Json(stay))).StatusCode,
            (await spip.PostAsync("Encounter", FhirHttp.Json(new Encounter { Status = Encounter.EncounterStatus.Planned, Class = stay.Class }))).StatusCode,
            (await spip.PatchAsync($"Encounter/{record.StayId}", new StringContent("[{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"finished\"}]",
                System.Text.Encoding.UTF8, "application/json-patch+json"))).StatusCode,
            (await spip.PostAsync("Condition", FhirHttp.Json(new Condition { Subject = new ResourceReference("Patient/" + record.PatientId) }))).StatusCode,
            // The operation on what is not the stay of a person it follows.
            (await SetAsync(spip, other.StayId, ReleaseRecord.SetDate(ReleaseRecord.Day(20), ReleaseDates.Confirmed))).StatusCode,
            (await SetAsync(spip, consultation.Id!, ReleaseRecord.SetDate(ReleaseRecord.Day(20), ReleaseDates.Confirmed))).StatusCode,
            (await SetAsync(ReleaseRecord.Spip(_gateway, client, ReleaseRecord.OtherSpipFiness), record.StayId, ReleaseRecord.SetDate(ReleaseRecord.Day(20), ReleaseDates.Confirmed))).StatusCode,
        };
        Assert.Equal([HttpStatusCode.NotFound, HttpStatusCode.Forbidden, HttpStatusCode.Forbidden, HttpStatusCode.Forbidden, HttpStatusCode.Forbidden,
            HttpStatusCode.Forbidden, HttpStatusCode.Forbidden, HttpStatusCode.Forbidden, HttpStatusCode.Forbidden,
            HttpStatusCode.Forbidden, HttpStatusCode.NotFound, HttpStatusCode.Forbidden], refusals);
        // Bad parameters are a 400, not a write.
        var bad = new Parameters();
        bad.Add("releaseDate", new FhirDateTime(ReleaseRecord.Text(ReleaseRecord.Day(20))));
        bad.Add("certainty", new Code("probable"));
        Assert.Equal(HttpStatusCode.BadRequest, (await SetAsync(spip, record.StayId, bad)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await SetAsync(spip, record.StayId, ReleaseRecord.SetDate(ReleaseRecord.Day(20), ReleaseDates.Estimated, ReleaseRecord.Day(21), ReleaseRecord.Day(25)))).StatusCode);

        // Nothing was written: both stays are still at version 1.
        Assert.Equal("1", (await (await usmp.GetAsync($"Encounter/{record.StayId}")).ReadAs<Encounter>()).Meta!.VersionId);
        Assert.Equal("1", (await (await usmp.GetAsync($"Encounter/{other.StayId}")).ReadAs<Encounter>()).Meta!.VersionId);

        // Every refused attempt is audited (the 400s included).
        var audited = (await ReleaseRecord.Auditor(_gateway).SearchAsync("AuditEvent?outcome=4&_sort=-date&_count=500")).Entry
            .Select(e => (AuditEvent)e.Resource!).Where(a => a.Agent.Any(g => g.Who?.Identifier?.Value == client)).ToList();
        Assert.Equal(refusals.Count + 2, audited.Count);
        // The refusal to date the person this SPIP does not follow is in that person's access report.
        var report = await (await ReleaseRecord.Auditor(_gateway).GetAsync($"Patient/{other.PatientId}/$access-report")).ReadAs<Parameters>();
        Assert.Contains(report.Parameter, p => p.Name == "access" && p.Part.Any(x => x.Name == "client" && x.Value?.ToString() == client)
            && p.Part.Any(x => x.Name == "outcome" && x.Value?.ToString() == "refused"));
    }

    [Fact]
    public async Task The_USMP_may_use_it_too_and_a_finished_stay_or_an_unknown_kind_of_exit_is_refused()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 40);
        var usmp = ReleaseRecord.Usmp(_gateway);
        var spip = ReleaseRecord.Spip(_gateway, "spip-errors-" + record.Run);
        var unknownKind = await SetAsync(spip, record.StayId, ReleaseRecord.SetDate(ReleaseRecord.Day(30), ReleaseDates.Estimated, exitKind: "evasion"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, unknownKind.StatusCode);
        var byUsmp = await SetAsync(usmp, record.StayId, ReleaseRecord.SetDate(ReleaseRecord.Day(30), ReleaseDates.Confirmed, exitKind: "semi-liberte"));
        Assert.Equal(HttpStatusCode.OK, byUsmp.StatusCode);
        // The USMP's answer is not redacted.
        Assert.NotEmpty((await byUsmp.ReadAs<Encounter>()).Identifier);

        var stay = await (await usmp.GetAsync($"Encounter/{record.StayId}")).ReadAs<Encounter>();
        stay.Status = Encounter.EncounterStatus.Finished;
        Assert.Equal(HttpStatusCode.OK, (await usmp.PutAsync($"Encounter/{record.StayId}", FhirHttp.Json(stay))).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await SetAsync(spip, record.StayId, ReleaseRecord.SetDate(ReleaseRecord.Day(29), ReleaseDates.Confirmed))).StatusCode);
        Assert.Equal("3", (await (await usmp.GetAsync($"Encounter/{record.StayId}")).ReadAs<Encounter>()).Meta!.VersionId);
    }

    [Fact]
    public async Task The_CapabilityStatement_declares_the_operation_and_the_search_parameters()
    {
        var statement = await (await _gateway.Fhir().GetAsync("metadata")).ReadAs<CapabilityStatement>();
        var encounter = statement.Rest.Single().Resource.Single(r => r.Type == "Encounter");
        Assert.Equal(SetReleaseDate.Definition, encounter.Operation.Single(o => o.Name == SetReleaseDate.Name).Definition);
        Assert.Equal("https://fhirsortie.fr/fhir/SearchParameter/Encounter-release-date", encounter.SearchParam.Single(p => p.Name == "release-date").Definition);
        Assert.Equal(SearchParamType.Token, encounter.SearchParam.Single(p => p.Name == "release-certainty").Type);
        // The R4 parameters stay.
        Assert.Contains(encounter.SearchParam, p => p.Name == "date");
    }

    [Fact]
    public async Task Release_dates_and_certainties_are_searchable()
    {
        var record = await ReleaseRecord.CreateAsync(_gateway, releaseInDays: 300);
        var usmp = ReleaseRecord.Usmp(_gateway);
        var patient = $"patient=Patient/{record.PatientId}";
        Assert.Equal([record.StayId], (await usmp.SearchAsync($"Encounter?{patient}&release-date=ge{ReleaseRecord.Text(ReleaseRecord.Day(299))[..10]}")).Matches());
        Assert.Empty((await usmp.SearchAsync($"Encounter?{patient}&release-date=lt{ReleaseRecord.Text(ReleaseRecord.Day(299))[..10]}")).Matches());
        Assert.Equal([record.StayId], (await usmp.SearchAsync($"Encounter?{patient}&release-certainty=estimated")).Matches());
        await SetAsync(ReleaseRecord.Spip(_gateway, "spip-search"), record.StayId, ReleaseRecord.SetDate(ReleaseRecord.Day(200), ReleaseDates.Confirmed));
        Assert.Empty((await usmp.SearchAsync($"Encounter?{patient}&release-certainty=estimated")).Matches());
        Assert.Equal([record.StayId], (await usmp.SearchAsync($"Encounter?{patient}&release-certainty=confirmed&release-date=le{ReleaseRecord.Text(ReleaseRecord.Day(201))[..10]}")).Matches());
    }
}

/// <summary>The release-date and release-alert tests share one gateway per database (one PostgreSQL pool, not two).</summary>
[CollectionDefinition(Name)]
public sealed class SqliteReleaseCollection : ICollectionFixture<ReleaseGateway<SqliteGateway>>
{
    public const string Name = "release-sqlite";
}

[CollectionDefinition(Name)]
public sealed class PostgresReleaseCollection : ICollectionFixture<ReleaseGateway<PostgresGateway>>
{
    public const string Name = "release-postgres";
}

[Collection(SqliteReleaseCollection.Name)]
public sealed class SqliteReleaseDateTests(ReleaseGateway<SqliteGateway> fixture) : ReleaseDateTests<SqliteGateway>(fixture);

[Collection(PostgresReleaseCollection.Name)]
public sealed class PostgresReleaseDateTests(ReleaseGateway<PostgresGateway> fixture) : ReleaseDateTests<PostgresGateway>(fixture);

/// <summary>The OperationDefinition shipped in conformance/operations/ describes what the handler takes.</summary>
public sealed class SetReleaseDateDefinitionTests
{
    [Fact]
    public void The_shipped_OperationDefinition_names_the_route_and_the_parameters_the_handler_reads()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "conformance", "operations", "Encounter-set-release-date.json");
        var definition = (OperationDefinition)FhirSortie.Server.Rest.FhirFormat.Parse(File.ReadAllBytes(path), FhirSortie.Server.Rest.WireFormat.Json);
        Assert.Equal(SetReleaseDate.Definition, definition.Url);
        Assert.Equal(SetReleaseDate.Name, definition.Code);
        Assert.Equal(["Encounter"], definition.Resource.Select(r => r?.ToString()));
        var inputs = definition.Parameter.Where(p => p.Use == OperationParameterUse.In).ToList();
        // Every input the definition declares is accepted, the required ones are required, and nothing else is.
        var full = ReleaseRecord.SetDate(ReleaseRecord.Day(10), ReleaseDates.Estimated, ReleaseRecord.Day(9), ReleaseRecord.Day(11), "fin-de-peine");
        Assert.Equal(inputs.Select(p => p.Name).Order(), full.Parameter.Select(p => p.Name).Order());
        SetReleaseDate.Parse(full);
        foreach (var required in inputs.Where(p => p.Min == 1))
        {
            var without = (Parameters)full.DeepCopy();
            without.Parameter.RemoveAll(p => p.Name == required.Name);
            Assert.Throws<FhirSortie.Server.Rest.FhirException>(() => SetReleaseDate.Parse(without));
        }
        var extra = (Parameters)full.DeepCopy();
        extra.Add("reason", new FhirString("JAP"));
        Assert.Throws<FhirSortie.Server.Rest.FhirException>(() => SetReleaseDate.Parse(extra));
    }
}
