using System.Globalization;
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Measures;

/// <summary>
/// GET|POST [base]/Measure/{id}/$evaluate-measure?periodStart=YYYY-MM-DD&amp;periodEnd=YYYY-MM-DD[&amp;reportType=summary][&amp;subject=Organization/{id}]
/// (R4 Measure-evaluate-measure, summary reports only: a subject-list or individual report would name people).
/// <list type="bullet">
/// <item>Who: public-health observers (<see cref="ActorKind.Observer"/>: ARS, the ministry's monitoring) for one USMP or
/// all, and a USMP for its own prison only (subject absent = its own; another organisation's FINESS → 403). Scope
/// <c>MeasureReport.r</c> (e.g. system/MeasureReport.r). Any other actor kind → 403.</item>
/// <item>What: counts computed in SQL over the index tables (<see cref="MeasureCatalog"/>), small counts masked
/// (<see cref="SmallCountSuppression"/>), answered as a MeasureReport (<see cref="MeasureReportWriter"/>), not stored.</item>
/// <item>Audit: the request's AuditEvent names the Measure and the subject Organization, and carries the period and subject
/// as its query; never a patient (none is read).</item>
/// </list>
/// Errors: 400 a missing or malformed period, an unknown parameter, a reportType other than summary, a subject that is not
/// an Organization; 404 an unknown Measure or subject Organization; 403 as above.
/// </summary>
public static class EvaluateMeasure
{
    public const string Definition = "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure";

    /// <summary>What an observer may read at all: the measures, their reports, and the directory (never a patient resource).</summary>
    public static readonly IReadOnlySet<string> ObserverTypes = new HashSet<string>(StringComparer.Ordinal) { "Measure", "MeasureReport", "Organization", "Location" };

    private static readonly HashSet<string> Known = new(StringComparer.Ordinal) { "periodStart", "periodEnd", "reportType", "subject", "_format", "_pretty" };

    /// <summary>Longest period evaluated in one request (the SQL carries one CASE branch per month).</summary>
    public const int MaxYears = 10;

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var id = FhirRequest.Id(context);
        var access = AccessPoint.Of(context);
        access.Require(new AccessRequest(Interaction.Read, "MeasureReport"));
        var caller = Caller.Of(context)!;
        var note = AuditNote.For(context);
        note.Entities.Add($"Measure/{id}");
        if (caller.Kind is not (ActorKind.Observer or ActorKind.Usmp))
        {
            const string reason = "Continuity indicators are evaluated by public-health observers and by a USMP for its own prison.";
            note.Decision = Consents.AccessDecision.Deny(reason);
            throw FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden, reason);
        }
        var parameters = await OperationParameters.ReadAsync(context);
        var (start, end, subjectId) = Parse(parameters);
        note.Query = string.Join("&", parameters.Where(p => Known.Contains(p.Key) && !p.Key.StartsWith('_')).Select(p => $"{p.Key}={p.Value}"));

        if (!MeasureCatalog.All.TryGetValue(id, out var measure)) throw FhirException.NotFound($"Measure/{id} is not one of the gateway's continuity indicators.");
        var store = FhirRequest.Store(context);
        var stored = await store.ReadAsync("Measure", id, context.RequestAborted);
        if (stored is not { Deleted: false, Json: { } json } || FhirResponse.ParseStored(json) is not Measure published)
            throw FhirException.NotFound($"Measure/{id} is not known.");

        await using var connection = await store.OpenAsync(context.RequestAborted);
        MeasureReportWriter.Subject? subject = null;
        if (subjectId is not null)
        {
            note.Entities.Add($"Organization/{subjectId}");
            subject = await OrganizationAsync(store, subjectId, context.RequestAborted);
        }
        if (caller.Kind == ActorKind.Usmp)
        {
            var own = caller.OrganizationFiness ?? throw Refused(note, "This USMP client has no organisation (FINESS): it cannot evaluate indicators for a prison.");
            if (subject is null) subject = new MeasureReportWriter.Subject(own, null);
            else if (subject.Finess != own) throw Refused(note, "A USMP evaluates the indicators of its own prison only (subject = its organisation).");
        }
        note.Decision = Consents.AccessDecision.Permit(caller.Kind == ActorKind.Observer ? "public-health observer" : "USMP, its own prison");

        var sql = new ReleaseSql(start, end, subject is null ? null : [subject.Finess]);
        var result = await MeasureEvaluation.RunAsync(connection, measure, sql, context.RequestAborted);
        if (subject is { Name: null } && result.UsmpNames.TryGetValue(subject.Finess, out var name)) subject = subject with { Name = name };
        var report = MeasureReportWriter.Write(published, measure, result, sql, subject, store.Clock.GetUtcNow());
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, report));
    }

    private static FhirException Refused(AuditNote note, string reason)
    {
        note.Decision = Consents.AccessDecision.Deny(reason);
        return FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden, reason, "subject");
    }

    /// <summary>The parameters; every mistake is a 400 naming the parameter.</summary>
    public static (DateOnly Start, DateOnly End, string? SubjectId) Parse(IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        foreach (var (key, _) in parameters)
        {
            if (!Known.Contains(key))
                throw FhirException.BadRequest($"$evaluate-measure does not support the parameter '{key}' (periodStart, periodEnd, reportType, subject).", key);
            if (!key.StartsWith('_') && parameters.Count(p => p.Key == key) > 1)
                throw FhirException.BadRequest($"The parameter '{key}' of $evaluate-measure is given more than once.", key);
        }
        string? Value(string key) => parameters.FirstOrDefault(p => p.Key == key).Value;
        var start = Date(Value("periodStart"), "periodStart");
        var end = Date(Value("periodEnd"), "periodEnd");
        if (end < start) throw FhirException.BadRequest("periodEnd is before periodStart.", "periodEnd");
        if (end > start.AddYears(MaxYears)) throw FhirException.BadRequest($"The period is longer than {MaxYears} years: evaluate it in parts.", "periodEnd");
        if (Value("reportType") is { } type && type != "summary")
            throw FhirException.BadRequest($"reportType '{type}': only summary reports are produced (subject-list and individual reports would name people).", "reportType");
        string? subject = null;
        if (Value("subject") is { } reference)
        {
            var parts = reference.Split('/');
            if (parts is not ["Organization", var orgId] || !FhirRequest.IsValidId(orgId))
                throw FhirException.BadRequest("subject is an Organization (the USMP: subject=Organization/{id}); indicators are never computed for a person.", "subject");
            subject = orgId;
        }
        return (start, end, subject);
    }

    private static DateOnly Date(string? value, string name)
    {
        if (value is null) throw FhirException.BadRequest($"$evaluate-measure needs {name} (a date, YYYY-MM-DD).", name);
        return DateOnly.TryParseExact(value, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date) && date.Year >= 1970
            ? date
            : throw FhirException.BadRequest($"{name} '{value}' is not a date such as 2026-01-31.", name);
    }

    /// <summary>The subject Organization's FINESS and name, from its stored content; 404 unknown, 400 without a FINESS.</summary>
    private static async Task<MeasureReportWriter.Subject> OrganizationAsync(ResourceStore store, string id, CancellationToken ct)
    {
        var stored = await store.ReadAsync("Organization", id, ct);
        if (stored is not { Deleted: false, Json: { } json } || FhirResponse.ParseStored(json) is not Organization organization)
            throw FhirException.NotFound($"Organization/{id} is not known.");
        var finess = organization.Identifier.FirstOrDefault(i => i.System == Finess.System)?.Value
            ?? throw FhirException.BadRequest($"Organization/{id} has no FINESS identifier ({Finess.System}): the indicators are kept per FINESS.", "subject");
        return new MeasureReportWriter.Subject(finess, organization.Name);
    }
}
