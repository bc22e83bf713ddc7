using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Exit;

/// <summary>
/// POST [base]/Encounter/{id}/$set-release-date with a Parameters body: <c>releaseDate</c> (date or dateTime, required),
/// <c>certainty</c> (code estimated | confirmed, required), <c>earliest</c> and <c>latest</c> (the window, both or
/// neither) and <c>exitKind</c> (code of exit-kind, optional: the stay's is kept). The one write a justice actor (SPIP,
/// the prison's records office) may make: the planned release date of the DetentionStay of a person it follows, i.e. a
/// stay whose <c>justice-follow-up</c> names its organisation (<see cref="JusticeFollowUp"/>). Nothing else of the stay
/// changes; the new version is saved like any write (profile, labels, Provenance naming the change from what to what,
/// audit row in the patient's access report, subscriptions, release alerts). A care actor that may update the stay
/// (scopes, and the consent rule's write decision) may use it too.
/// Answers: 200 with the stay (redacted for justice actors), no new version when nothing changes; 400 bad parameters;
/// 404 a stay the caller may not see (or not a stay, for justice actors); 403 a person the justice actor does not follow;
/// 409 a stay that is no longer in progress (its period.end is then the actual release date); 422 a kind of exit
/// outside exit-kinds, or a date outside its window (profile DetentionStay).
/// </summary>
public static class SetReleaseDate
{
    public const string Name = "set-release-date";
    public const string Definition = "https://fhirsortie.fr/fhir/OperationDefinition/Encounter-set-release-date";

    private static readonly object Marker = new();

    /// <summary>
    /// True while this operation is being decided and run for the request: the consent rule lets a justice actor write
    /// an Encounter only then (Consent/ConsentRule.cs), so a PUT or PATCH of the stay stays a 403 for them.
    /// </summary>
    public static bool IsRunning(HttpContext? context) => context?.Items.ContainsKey(Marker) == true;

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var id = FhirRequest.Id(context);
        context.Items[Marker] = true;
        var access = AccessPoint.Of(context);
        access.Require(new AccessRequest(Interaction.Patch, "Encounter"));
        var release = Parse(await FhirRequest.BodyAsync(context));
        var caller = Caller.Of(context)!;
        var result = await FhirRequest.Store(context).WriteAsync(
            access.Guard(s => ExecuteAsync(s, id, release, caller, context.RequestAborted)), context.RequestAborted);
        await FhirResponse.WriteAsync(context, result, isWrite: true);
    }

    public static async Task<FhirResult> ExecuteAsync(WriteSession session, string id, ReleaseDates.Release release, Caller caller, CancellationToken ct)
    {
        var current = await session.ReadForUpdateAsync("Encounter", id, ct);
        if (current is not { Deleted: false, Json: { } json }) throw FhirException.NotFound($"Encounter/{id} is not known.");
        // Decided like a read of the stay (justice actors see detention stays only): a hidden one is 404.
        await AccessPoint.RequireWritableAsync(session, Interaction.Patch, current, ct);
        if (FhirResponse.ParseStored(json) is not Encounter stay || !ReleaseDates.IsDetentionStay(stay))
            throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.BusinessRule,
                $"${Name} applies to a detention stay (Encounter.type {ReleaseDates.EncounterTypes}|{ReleaseDates.DetentionStayCode}).", "Encounter.type");
        if (stay.Status != Encounter.EncounterStatus.InProgress)
            throw FhirException.Error(HttpStatusCode.Conflict, OperationOutcome.IssueType.BusinessRule,
                "The stay is no longer in progress: its period.end is the actual release date, which only the USMP corrects.", "Encounter.status");
        if (caller.Kind == ActorKind.Justice && !await JusticeFollowUp.FollowsAsync(session, stay, caller.OrganizationFiness, ct))
            throw FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden,
                "This organisation does not follow the person during this stay (the stay's justice-follow-up does not name it).", "Encounter.extension");
        var before = ReleaseDates.Of(stay);
        var after = release with { ExitKind = release.ExitKind ?? before.ExitKind };
        if (before == after)
        {
            session.Access?.CheckSave(stay, current, "PATCH");
            return FhirResult.Of(HttpStatusCode.OK, current);
        }
        ReleaseDates.Apply(stay, after);
        var saved = await session.SaveAsync(stay, current, "PATCH", ct);
        return FhirResult.Of(HttpStatusCode.OK, saved);
    }

    /// <summary>The operation's parameters; every mistake is a 400 naming the parameter.</summary>
    public static ReleaseDates.Release Parse(Resource body)
    {
        if (body is not Parameters parameters)
            throw FhirException.BadRequest($"${Name} takes a Parameters resource (releaseDate, certainty, earliest, latest, exitKind).");
        var known = new HashSet<string>(StringComparer.Ordinal) { "releaseDate", "certainty", "earliest", "latest", "exitKind" };
        foreach (var parameter in parameters.Parameter)
        {
            if (parameter.Name is not { } name || !known.Contains(name))
                throw FhirException.BadRequest($"Unknown parameter '{parameter.Name}' of ${Name}.", "Parameters.parameter.name");
            if (parameters.Parameter.Count(p => p.Name == name) > 1)
                throw FhirException.BadRequest($"Parameter '{name}' of ${Name} is given more than once.", "Parameters.parameter.name");
        }
        var date = DateOf(parameters, "releaseDate") ?? throw FhirException.BadRequest($"${Name} needs releaseDate (valueDate or valueDateTime).", "releaseDate");
        var certainty = CodeOf(parameters, "certainty");
        if (certainty is not (ReleaseDates.Estimated or ReleaseDates.Confirmed))
            throw FhirException.BadRequest($"${Name} needs certainty = {ReleaseDates.Estimated} or {ReleaseDates.Confirmed}.", "certainty");
        var earliest = DateOf(parameters, "earliest");
        var latest = DateOf(parameters, "latest");
        if ((earliest is null) != (latest is null))
            throw FhirException.BadRequest("A release window gives both earliest and latest.", "earliest", "latest");
        if (earliest is not null && !(Before(earliest, date) && Before(date, latest!)))
            throw FhirException.BadRequest("releaseDate must lie within the window (earliest <= releaseDate <= latest).", "releaseDate");
        return new ReleaseDates.Release(date, certainty, earliest, latest, CodeOf(parameters, "exitKind"));
    }

    private static string? DateOf(Parameters parameters, string name) => parameters.Parameter.FirstOrDefault(p => p.Name == name)?.Value switch
    {
        null => null,
        Date d when d.Value is { } value => value,
        FhirDateTime dt when dt.Value is { } value => value,
        _ => throw FhirException.BadRequest($"Parameter '{name}' of ${Name} is a valueDate or valueDateTime.", name),
    };

    private static string? CodeOf(Parameters parameters, string name) => parameters.Parameter.FirstOrDefault(p => p.Name == name)?.Value switch
    {
        null => null,
        Code c when c.Value is { Length: > 0 } value => value,
        Coding { Code: { Length: > 0 } value } coding when coding.System is null or ReleaseDates.ExitKinds => value,
        _ => throw FhirException.BadRequest($"Parameter '{name}' of ${Name} is a valueCode.", name),
    };

    private static bool Before(string a, string b) =>
        ReleaseDates.Instant(a) is { } x && ReleaseDates.Instant(b) is { } y && x <= y;
}
