using System.Globalization;
using System.Net;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using HandoffTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Tests.Exit;

/// <summary>
/// Resubmitting an exit package is safe: identifiers make it idempotent (conditional create for who and what must
/// not change under the receiver, conditional update for what the USMP may correct), a changed release date or a
/// new prescription version updates what is there (old versions in history), and a receiver sees what changed
/// with _lastUpdated, _since and history.
/// </summary>
public abstract class ExitPackageResubmissionTests(Gateway gateway)
{
    private readonly HttpClient _usmp = gateway.Fhir(ExitPackages.Usmp);
    private readonly HttpClient _csapaA = gateway.Fhir(ExitPackages.CsapaA);

    private static string Instant(DateTimeOffset at) => Uri.EscapeDataString(at.ToString("yyyy-MM-ddTHH:mm:ss.fffzzz", CultureInfo.InvariantCulture));

    private static async Task<DateTimeOffset> AfterAsync()
    {
        // Versions are stamped to the millisecond: make sure what follows is strictly later.
        await Task.Delay(20);
        var at = DateTimeOffset.UtcNow;
        await Task.Delay(20);
        return at;
    }

    [Fact]
    public async Task Same_package_posted_again_writes_no_new_version()
    {
        var package = ExitPackages.Full("again");
        var first = await ExitPackages.PostAsync(_usmp, package);
        var patientId = first.Single<Patient>().Id;
        var since = await AfterAsync();

        var second = await ExitPackages.PostAsync(_usmp, package);

        Assert.All(second.Entry, e => Assert.Equal("200 OK", e.Response!.Status));
        Assert.All(second.Entry, e => Assert.Equal("W/\"1\"", e.Response!.Etag));
        Assert.Equal(first.Entry.Select(e => e.Resource!.Id), second.Entry.Select(e => e.Resource!.Id));
        // The receiver is told nothing changed.
        Assert.Empty((await _csapaA.SearchAsync($"MedicationRequest?patient={patientId}&_lastUpdated=gt{Instant(since)}")).Entry);
        foreach (var type in new[] { "Encounter", "MedicationRequest", "Task", "Consent", "Composition" })
            Assert.Empty((await _usmp.SearchAsync($"{type}/_history?_since={Instant(since)}")).Entry);
    }

    [Fact]
    public async Task Changed_release_date_and_new_prescription_version_update_in_place_and_the_receiver_sees_only_those()
    {
        var package = ExitPackages.Full("changed");
        var first = await ExitPackages.PostAsync(_usmp, package);
        var patientId = first.Single<Patient>().Id;
        var stay = first.Single<Encounter>();
        var buprenorphine = first.Prescription("N07BC01");
        var task = first.Single<HandoffTask>();
        // The hand-off already moved on the receiver's side: a resubmission must not reset it.
        task.Status = HandoffTask.TaskStatus.Received;
        Assert.Equal(HttpStatusCode.OK, (await _csapaA.PutAsync($"Task/{task.Id}", FhirHttp.Json(task))).StatusCode);
        var since = await AfterAsync();

        // The release date moves by a week; the prescription is renewed at a lower dose.
        ExitPackages.Resource(package, "Encounter")["period"]!["end"] = "2026-12-04T10:00:00+01:00";
        ExitPackages.Prescription(package, "N07BC01")["dosageInstruction"]![0]!["text"] = "6 mg par voie sublinguale une fois par jour";
        var second = await ExitPackages.PostAsync(_usmp, package);

        var versions = second.Entry.ToDictionary(e => $"{e.Resource!.TypeName}/{e.Resource.Id}", e => e.Response!.Etag);
        Assert.Equal("W/\"2\"", versions[$"Encounter/{stay.Id}"]);
        Assert.Equal("W/\"2\"", versions[$"MedicationRequest/{buprenorphine.Id}"]);
        Assert.Equal("W/\"2\"", versions[$"Task/{task.Id}"]); // the receiver's move, untouched by the resubmission
        Assert.Equal(13, versions.Values.Count(v => v == "W/\"1\""));
        Assert.Equal(HandoffTask.TaskStatus.Received, second.Single<HandoffTask>().Status);

        // The receiver asks what changed since it last looked.
        Assert.Equal([buprenorphine.Id!], (await _csapaA.SearchAsync($"MedicationRequest?patient={patientId}&_lastUpdated=gt{Instant(since)}")).Matches());
        Assert.Equal([stay.Id!], (await _csapaA.SearchAsync($"Encounter?patient={patientId}&_lastUpdated=gt{Instant(since)}")).Matches());
        var changes = await _csapaA.SearchAsync($"MedicationRequest/{buprenorphine.Id}/_history?_since={Instant(since)}");
        Assert.Equal("6 mg par voie sublinguale une fois par jour", Assert.IsType<MedicationRequest>(Assert.Single(changes.Entry).Resource).DosageInstruction[0].Text);

        // The old release date stays in history.
        var history = (await _csapaA.SearchAsync($"Encounter/{stay.Id}/_history")).Entry.Select(e => Assert.IsType<Encounter>(e.Resource)).ToList();
        Assert.Equal(["2026-12-04T10:00:00+01:00", "2026-11-27T10:00:00+01:00"], history.Select(e => e.Period!.End));
        Assert.Single((await _usmp.SearchAsync("Encounter?identifier=https://fhirsortie.example.fr/usmp-changed/encounter|SEJ-2026-0042")).Entry);
    }

    [Fact]
    public async Task Reduced_package_is_completed_later_by_the_same_identifiers()
    {
        var package = ExitPackages.Reduced("completed");
        var first = await ExitPackages.PostAsync(_usmp, package);
        var stay = first.Single<Encounter>();
        Assert.Equal("incomplete", Assert.Single(stay.Meta!.Tag).Code);

        ExitPackages.Resource(package, "Encounter")["meta"]!["tag"]![0]!["code"] = "complete";
        var second = await ExitPackages.PostAsync(_usmp, package);

        var completed = second.Single<Encounter>();
        Assert.Equal(stay.Id, completed.Id);
        Assert.Equal("2", completed.Meta!.VersionId);
        var status = "https://fhirsortie.fr/fhir/CodeSystem/exit-package-status";
        Assert.Empty((await _usmp.SearchAsync($"Encounter?_id={stay.Id}&_tag={status}|incomplete")).Entry);
        Assert.Single((await _usmp.SearchAsync($"Encounter?_id={stay.Id}&_tag={status}|complete")).Entry);
        // The two Tasks asking for the rest were created once.
        Assert.Equal(2, (await _usmp.SearchAsync($"Task?patient={first.Single<Patient>().Id}")).Entry.Count);
    }
}

public sealed class SqliteExitPackageResubmissionTests(SqliteGateway gateway) : ExitPackageResubmissionTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresExitPackageResubmissionTests(PostgresGateway gateway) : ExitPackageResubmissionTests(gateway), IClassFixture<PostgresGateway>;
