using System.Net;
using System.Text;
using FhirSortie.Tests.Consents;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;
using HandoffTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Tests.Exit;

/// <summary>
/// The hand-off Task of an exit package (ExitHandoffTask): requested → received → accepted | rejected →
/// in-progress → completed, moved by the receiving organisation (its owner); cancelled or given to another owner by
/// the USMP that requested it; nobody else may touch it. Checked on PUT, PATCH and transaction entries alike.
/// </summary>
public abstract class HandoffTaskTests(Gateway gateway)
{
    private readonly HttpClient _usmp = gateway.Fhir(ExitPackages.Usmp);
    private readonly HttpClient _csapaA = gateway.Fhir(ExitPackages.CsapaA);
    private readonly HttpClient _csapaB = gateway.Fhir(ExitPackages.CsapaB);

    private async Task<HandoffTask> PostPackageAsync(string tag)
    {
        var response = await ExitPackages.PostAsync(_usmp, ExitPackages.Full(tag));
        var task = response.Single<HandoffTask>();
        Assert.Equal(HandoffTask.TaskStatus.Requested, task.Status);
        return task;
    }

    /// <summary>Reads the Task as <paramref name="client"/>, changes it, and PUTs it back.</summary>
    private static async Task<HttpResponseMessage> MoveAsync(HttpClient client, string? id, HandoffTask.TaskStatus status, string? businessStatus = null, Action<HandoffTask>? also = null)
    {
        var read = await client.GetAsync($"Task/{id}");
        Assert.True(read.StatusCode == HttpStatusCode.OK, await read.Content.ReadAsStringAsync());
        var task = await read.ReadAs<HandoffTask>();
        task.Status = status;
        if (businessStatus is not null) task.BusinessStatus = new CodeableConcept("https://fhirsortie.fr/fhir/CodeSystem/exit-handoff-status", businessStatus);
        also?.Invoke(task);
        return await client.PutAsync($"Task/{id}", FhirHttp.Json(task));
    }

    private static async Task<string> ExpectAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        return body;
    }

    private static async Task<OperationOutcome.IssueComponent> RefusedAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        await ExpectAsync(response, status);
        return Assert.Single((await response.ReadAs<OperationOutcome>()).Issue);
    }

    [Fact]
    public async Task Receiving_organisation_moves_its_task_from_requested_to_completed()
    {
        var task = await PostPackageAsync("walk");
        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Received, "received"), HttpStatusCode.OK);
        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Accepted, "accepted",
            t => t.Note.Add(new Annotation { Text = new Markdown("Premier rendez-vous confirmé") })), HttpStatusCode.OK);
        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.InProgress, "appointment-booked"), HttpStatusCode.OK);
        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Completed, "first-appointment-kept"), HttpStatusCode.OK);

        var history = await _usmp.SearchAsync($"Task/{task.Id}/_history");
        Assert.Equal(
            ["completed", "in-progress", "accepted", "received", "requested"],
            history.Entry.Select(e => Assert.IsType<HandoffTask>(e.Resource).Status!.Value.GetLiteral()));
    }

    [Fact]
    public async Task Skipping_a_step_is_409_naming_from_and_to()
    {
        var task = await PostPackageAsync("skip");
        var issue = await RefusedAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Accepted, "accepted"), HttpStatusCode.Conflict);
        Assert.Equal(OperationOutcome.IssueType.BusinessRule, issue.Code);
        Assert.Contains("from 'requested' to 'accepted'", issue.Diagnostics, StringComparison.Ordinal);
        Assert.Equal(["Task.status"], issue.Expression);

        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Received), HttpStatusCode.OK);
        issue = await RefusedAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Completed), HttpStatusCode.Conflict);
        Assert.Contains("from 'received' to 'completed'", issue.Diagnostics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rejection_needs_a_reason()
    {
        var task = await PostPackageAsync("reject");
        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Received), HttpStatusCode.OK);

        var issue = await RefusedAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Rejected, "refused"), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("statusReason", issue.Diagnostics, StringComparison.Ordinal);

        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Rejected, "refused",
            t => t.StatusReason = new CodeableConcept { Text = "Pas de place avant trois semaines" }), HttpStatusCode.OK);
        // Rejected is final for the receiver.
        issue = await RefusedAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Accepted), HttpStatusCode.Conflict);
        Assert.Contains("from 'rejected' to 'accepted'", issue.Diagnostics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Receiving_organisation_changing_anything_else_is_403_naming_the_element()
    {
        var task = await PostPackageAsync("elements");
        var issue = await RefusedAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Received, also: t => t.Description = "autre chose"), HttpStatusCode.Forbidden);
        Assert.Equal(["Task.description"], issue.Expression);

        issue = await RefusedAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Requested, also: t => t.Owner = new ResourceReference("Organization/elsewhere")), HttpStatusCode.Forbidden);
        Assert.Contains("not Task.owner", issue.Diagnostics, StringComparison.Ordinal);

        // Status, business status, note and output are its to change.
        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Received, "received", t =>
        {
            t.Note.Add(new Annotation { Text = new Markdown("Dossier reçu") });
            t.Output.Add(new HandoffTask.OutputComponent { Type = new CodeableConcept { Text = "rendez-vous" }, Value = new FhirString("2026-11-28 14:00") });
        }), HttpStatusCode.OK);
    }

    [Fact]
    public async Task Another_organisation_cannot_update_the_task()
    {
        var task = await PostPackageAsync("other");
        // Without a consent naming it, CSAPA B may not even see the Task: the same 404 as a read (consent on writes).
        await RefusedAsync(await _csapaB.PutAsync($"Task/{task.Id}", FhirHttp.Json(WithStatus(task, HandoffTask.TaskStatus.Received))), HttpStatusCode.NotFound);
        // With one, it sees the Task but it is not its hand-off to move.
        await ExpectAsync(await _usmp.PostAsync("Consent", FhirHttp.Json(TestConsents.Permit(task.For!.Reference!.Split('/')[1], ExitPackages.CsapaBFiness, "Task"))), HttpStatusCode.Created);
        var issue = await RefusedAsync(await _csapaB.PutAsync($"Task/{task.Id}", FhirHttp.Json(WithStatus(task, HandoffTask.TaskStatus.Received))), HttpStatusCode.Forbidden);
        Assert.Contains("owner", issue.Diagnostics, StringComparison.Ordinal);
        Assert.Equal(HandoffTask.TaskStatus.Requested, (await (await _usmp.GetAsync($"Task/{task.Id}")).ReadAs<HandoffTask>()).Status);
    }

    [Fact]
    public async Task Requester_cancels_and_may_not_move_the_task_for_the_receiver()
    {
        var task = await PostPackageAsync("cancel");
        var issue = await RefusedAsync(await MoveAsync(_usmp, task.Id, HandoffTask.TaskStatus.Received), HttpStatusCode.Forbidden);
        Assert.Contains("Only the receiving organisation", issue.Diagnostics, StringComparison.Ordinal);

        await ExpectAsync(await MoveAsync(_usmp, task.Id, HandoffTask.TaskStatus.Cancelled), HttpStatusCode.OK);
        issue = await RefusedAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Received), HttpStatusCode.Conflict);
        Assert.Contains("from 'cancelled' to 'received'", issue.Diagnostics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requester_gives_the_task_to_another_organisation_on_a_transfer()
    {
        var task = await PostPackageAsync("transfer");
        await ExpectAsync(await MoveAsync(_csapaA, task.Id, HandoffTask.TaskStatus.Received), HttpStatusCode.OK);
        var csapaB = await _usmp.CreateAsync(new Organization
        {
            Identifier = [new Identifier("https://finess.esante.gouv.fr", ExitPackages.CsapaBFiness)],
            Name = "CSAPA Bastide (demo)",
        });

        // A new owner starts at requested.
        var issue = await RefusedAsync(await MoveAsync(_usmp, task.Id, HandoffTask.TaskStatus.Received,
            also: t => t.Owner = new ResourceReference($"Organization/{csapaB.Id}")), HttpStatusCode.Conflict);
        Assert.Contains("starts again at 'requested'", issue.Diagnostics, StringComparison.Ordinal);
        await ExpectAsync(await MoveAsync(_usmp, task.Id, HandoffTask.TaskStatus.Requested,
            also: t => t.Owner = new ResourceReference($"Organization/{csapaB.Id}")), HttpStatusCode.OK);

        // The former owner has no say any more; the new one takes it from there, once the patient consented to it.
        await ExpectAsync(await _usmp.PostAsync("Consent", FhirHttp.Json(TestConsents.Permit(task.For!.Reference!.Split('/')[1], ExitPackages.CsapaBFiness, "Task"))), HttpStatusCode.Created);
        await RefusedAsync(await _csapaA.PutAsync($"Task/{task.Id}", FhirHttp.Json(WithStatus(await CurrentAsync(task.Id), HandoffTask.TaskStatus.Received))), HttpStatusCode.Forbidden);
        await ExpectAsync(await _csapaB.PutAsync($"Task/{task.Id}", FhirHttp.Json(WithStatus(await CurrentAsync(task.Id), HandoffTask.TaskStatus.Received))), HttpStatusCode.OK);
    }

    [Fact]
    public async Task Patch_obeys_the_same_state_machine()
    {
        var task = await PostPackageAsync("patch");
        const string toAccepted = """[{ "op": "replace", "path": "/status", "value": "accepted" }]""";
        const string toReceived = """[{ "op": "replace", "path": "/status", "value": "received" }]""";
        var issue = await RefusedAsync(await _csapaA.SendAsync(JsonPatch($"Task/{task.Id}", toAccepted)), HttpStatusCode.Conflict);
        Assert.Contains("from 'requested' to 'accepted'", issue.Diagnostics, StringComparison.Ordinal);
        await ExpectAsync(await _csapaA.SendAsync(JsonPatch($"Task/{task.Id}", toReceived)), HttpStatusCode.OK);
        const string description = """[{ "op": "replace", "path": "/description", "value": "autre" }]""";
        issue = await RefusedAsync(await _csapaA.SendAsync(JsonPatch($"Task/{task.Id}", description)), HttpStatusCode.Forbidden);
        Assert.Equal(["Task.description"], issue.Expression);
    }

    [Fact]
    public async Task Transaction_entry_obeys_the_same_state_machine()
    {
        var task = await PostPackageAsync("transaction");
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        bundle.Entry.Add(new Bundle.EntryComponent
        {
            Resource = WithStatus(await CurrentAsync(task.Id), HandoffTask.TaskStatus.InProgress),
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PUT, Url = $"Task/{task.Id}" },
        });
        var response = await _csapaA.PostAsync("", FhirHttp.Json(bundle));
        await ExpectAsync(response, HttpStatusCode.Conflict);
        Assert.Contains("from 'requested' to 'in-progress'", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_new_handoff_starts_requested()
    {
        var package = ExitPackages.Full("new-accepted");
        ExitPackages.Resource(package, "Task")["status"] = "accepted";
        var response = await _usmp.PostAsync("", FhirHttp.Json(package.ToJsonString()));
        await ExpectAsync(response, HttpStatusCode.UnprocessableEntity);
        Assert.Contains("starts with status 'requested'", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private async Task<HandoffTask> CurrentAsync(string? id) => await (await _usmp.GetAsync($"Task/{id}")).ReadAs<HandoffTask>();

    private static HandoffTask WithStatus(HandoffTask task, HandoffTask.TaskStatus status)
    {
        var copy = (HandoffTask)task.DeepCopy();
        copy.Status = status;
        return copy;
    }

    private static HttpRequestMessage JsonPatch(string url, string patch) =>
        new(HttpMethod.Patch, url) { Content = new StringContent(patch, Encoding.UTF8, "application/json-patch+json") };
}

public sealed class SqliteHandoffTaskTests(SqliteGateway gateway) : HandoffTaskTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresHandoffTaskTests(PostgresGateway gateway) : HandoffTaskTests(gateway), IClassFixture<PostgresGateway>;
