using System.Net;
using System.Text.Json.Nodes;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;
using TaskStatus = Hl7.Fhir.Model.Task.TaskStatus;

namespace FhirSortie.Server.Exit;

/// <summary>
/// The hand-off Task state machine (issue 6 §2), checked on every save of a Task that is a hand-off (claims
/// ExitHandoffTask or carries exit-task-type#handoff, before or after the write), so update, conditional update,
/// patch and transaction entries all obey it. Called from <see cref="Consents.WriteHook.BeforeSaveAsync"/>.
/// <list type="bullet">
/// <item>requested → received → accepted | rejected (statusReason required) → in-progress → completed: moves of the
/// receiving organisation (caller FINESS = the owner Organization's FINESS);</item>
/// <item>cancelled (from any open state) and reassignment of the owner (a transfer: the Task starts again at
/// requested) by the requester (caller FINESS = the requester's organisation or the organisation that created the Task);</item>
/// <item>the receiver may change only status, businessStatus, statusReason, note, output and lastModified;
/// anybody else may not update the Task at all.</item>
/// </list>
/// An illegal move is 409 naming from and to; a move or element the caller's role may not make is 403.
/// Writes without a client (internal, e.g. demo seeding) are not checked.
/// </summary>
public static class HandoffTasks
{
    public const string Profile = "https://fhirsortie.fr/fhir/StructureDefinition/ExitHandoffTask";
    public const string TaskTypes = "https://fhirsortie.fr/fhir/CodeSystem/exit-task-type";
    public const string HandoffCode = "handoff";
    private const string Finess = "https://finess.esante.gouv.fr";
    private const string IdNatSt = "urn:oid:1.2.250.1.71.4.2.2";

    /// <summary>What the receiving organisation may change; everything else belongs to the requester.</summary>
    public static readonly IReadOnlySet<string> ReceiverElements =
        new HashSet<string>(StringComparer.Ordinal) { "status", "businessStatus", "statusReason", "note", "output", "lastModified" };

    /// <summary>The receiver's moves.</summary>
    private static readonly Dictionary<TaskStatus, TaskStatus[]> ReceiverMoves = new()
    {
        [TaskStatus.Requested] = [TaskStatus.Received],
        [TaskStatus.Received] = [TaskStatus.Accepted, TaskStatus.Rejected],
        [TaskStatus.Accepted] = [TaskStatus.InProgress],
        [TaskStatus.InProgress] = [TaskStatus.Completed],
    };

    /// <summary>States a hand-off can still be cancelled from by its requester.</summary>
    private static readonly TaskStatus[] Open = [TaskStatus.Requested, TaskStatus.Received, TaskStatus.Accepted, TaskStatus.InProgress];

    public static bool IsHandoff(Hl7.Fhir.Model.Task task) =>
        task.Meta?.Profile.Contains(Profile) == true
        || task.Code?.Coding.Any(c => c.System == TaskTypes && c.Code == HandoffCode) == true;

    public static async System.Threading.Tasks.Task CheckAsync(WriteSession session, Resource resource, StoredResource? current, Caller? caller, CancellationToken ct)
    {
        if (resource is not Hl7.Fhir.Model.Task next || caller is null) return;
        var previous = current is { Deleted: false, Json: { } json } ? FhirFormat.Parse(json, WireFormat.Json) as Hl7.Fhir.Model.Task : null;
        if (!IsHandoff(next) && (previous is null || !IsHandoff(previous))) return;

        if (previous is null)
        {
            // A new hand-off (or one re-created after a delete) starts at the beginning.
            if (next.Status != TaskStatus.Requested)
                throw Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.BusinessRule,
                    $"A new hand-off Task starts with status 'requested', not '{Literal(next.Status)}'.", "Task.status");
            return;
        }

        var owner = await FinessOfAsync(session, previous.Owner, ct);
        var requesters = new HashSet<string>(StringComparer.Ordinal);
        if (await FinessOfAsync(session, previous.Requester, ct) is { } requester) requesters.Add(requester);
        if (await OriginAsync(session, previous.Id, ct) is { } origin) requesters.Add(origin);
        var isReceiver = caller.OrganizationFiness is { } f1 && f1 == owner;
        var isRequester = caller.OrganizationFiness is { } f2 && requesters.Contains(f2);
        if (!isReceiver && !isRequester)
            throw Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden,
                "Only the receiving organisation (the Task's owner) or the requester may update a hand-off Task.");

        var changed = ChangedElements(previous, next);
        if (!isRequester && changed.FirstOrDefault(e => !ReceiverElements.Contains(e)) is { } forbidden)
            throw Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden,
                $"The receiving organisation may change only {string.Join(", ", ReceiverElements)} of a hand-off Task, not Task.{forbidden}.", $"Task.{forbidden}");

        var from = previous.Status ?? TaskStatus.Requested;
        var to = next.Status ?? TaskStatus.Requested;
        var reassigned = changed.Contains("owner");
        if (reassigned && to is not (TaskStatus.Requested or TaskStatus.Cancelled))
            throw Error(HttpStatusCode.Conflict, OperationOutcome.IssueType.BusinessRule,
                $"A hand-off Task given to another owner starts again at 'requested' (status was '{Literal(from)}', sent '{Literal(to)}').", "Task.status");
        if (to == TaskStatus.Rejected && next.StatusReason is null)
            throw Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.Required,
                "A rejected hand-off says why: statusReason is required.", "Task.statusReason");
        if (from == to) return;

        var receiverMove = ReceiverMoves.TryGetValue(from, out var moves) && moves.Contains(to);
        var requesterMove = (to == TaskStatus.Cancelled && Open.Contains(from))
            || (to == TaskStatus.Requested && reassigned && from is not (TaskStatus.Completed or TaskStatus.Cancelled));
        if (!receiverMove && !requesterMove)
            throw Error(HttpStatusCode.Conflict, OperationOutcome.IssueType.BusinessRule,
                $"A hand-off Task cannot go from '{Literal(from)}' to '{Literal(to)}'.", "Task.status");
        if ((receiverMove && !isReceiver && !requesterMove) || (requesterMove && !isRequester && !receiverMove))
            throw Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden,
                $"Only the {(receiverMove ? "receiving organisation" : "requester")} may move a hand-off Task from '{Literal(from)}' to '{Literal(to)}'.", "Task.status");
    }

    /// <summary>Top-level elements whose content differs (meta and id are the server's business).</summary>
    public static IReadOnlyList<string> ChangedElements(Resource before, Resource after)
    {
        var a = JsonNode.Parse(FhirFormat.Serialize(before, WireFormat.Json, pretty: false))!.AsObject();
        var b = JsonNode.Parse(FhirFormat.Serialize(after, WireFormat.Json, pretty: false))!.AsObject();
        return a.Select(p => p.Key).Union(b.Select(p => p.Key))
            .Where(name => name is not ("meta" or "id" or "resourceType"))
            .Where(name => !JsonNode.DeepEquals(a[name], b[name]))
            .ToList();
    }

    /// <summary>
    /// The FINESS of the organisation a reference names: an Organization (by FINESS or idNatSt identifier, logical or
    /// stored) or a PractitionerRole's organization. Read in the write's transaction.
    /// </summary>
    public static async Task<string?> FinessOfAsync(WriteSession session, ResourceReference? reference, CancellationToken ct)
    {
        if (reference is null) return null;
        if (FromIdentifier(reference.Identifier?.System, reference.Identifier?.Value) is { } logical) return logical;
        var parts = reference.Reference?.Split('/');
        if (parts is not { Length: 2 }) return null;
        if (parts[0] == "PractitionerRole")
        {
            var role = await session.Store.ReadAsync(session.Connection, session.Transaction, "PractitionerRole", parts[1], forUpdate: false, ct);
            if (role is not { Deleted: false, Json: { } json } || FhirFormat.Parse(json, WireFormat.Json) is not PractitionerRole { Organization: { } org }) return null;
            if (FromIdentifier(org.Identifier?.System, org.Identifier?.Value) is { } orgFiness) return orgFiness;
            parts = org.Reference?.Split('/');
            if (parts is not { Length: 2 }) return null;
        }
        if (parts[0] != "Organization") return null;
        await using var cmd = Sql.Command(session.Connection, session.Transaction,
            "SELECT st.system, st.code FROM resources o JOIN search_token st ON st.rkey = o.rkey AND st.param = 'identifier' " +
            "WHERE o.type = 'Organization' AND o.id = @i AND o.deleted = 0")
            .With("@i", parts[1]);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        string? found = null;
        while (await reader.ReadAsync(ct))
        {
            var finess = FromIdentifier(reader.IsDBNull(0) ? null : reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1));
            if (finess is not null && (found is null || reader.GetString(0) == Finess)) found = finess;
        }
        return found;
    }

    /// <summary>A FINESS identifier, or an idNatSt of an establishment (1 + FINESS).</summary>
    private static string? FromIdentifier(string? system, string? value) => (system, value) switch
    {
        (Finess, { Length: > 0 }) => value,
        (IdNatSt, { Length: 10 } v) when v[0] == '1' => v[1..],
        _ => null,
    };

    private static async Task<string?> OriginAsync(WriteSession session, string? id, CancellationToken ct)
    {
        if (id is null) return null;
        await using var cmd = Sql.Command(session.Connection, session.Transaction,
            "SELECT finess FROM resource_origin WHERE type = 'Task' AND id = @i").With("@i", id);
        return await cmd.ExecuteScalarAsync(ct) as string;
    }

    private static string Literal(TaskStatus? status) => status?.GetLiteral() ?? "(none)";

    private static FhirException Error(HttpStatusCode status, OperationOutcome.IssueType code, string diagnostics, params string[] expression) =>
        FhirException.Error(status, code, diagnostics, expression);
}
