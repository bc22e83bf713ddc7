using System.Globalization;
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// "Who saw my data" (issue 5): <c>GET [base]/Patient/{id}/$access-report[?_since=instant][&amp;_until=instant]</c> answers a
/// Parameters with one <c>access</c> per recorded interaction touching that patient, newest first: when, client, organisation
/// (FINESS and the Organization's name when this server knows it), actor kind, interaction, resources, outcome
/// (permitted / refused / error, with the reason), purpose of use and the break-the-glass reason.
/// <list type="bullet">
/// <item>Who: Auditor clients, and a caller whose <c>fhirUser</c> is that Patient (a patient-facing app). Anyone else 403
/// (before the patient's existence is looked up, so the answer does not confirm it). An unknown patient is 404.</item>
/// <item>Built on the AuditEvent search (<c>AuditEvent?patient=Patient/{id}&amp;_sort=-date</c>, served by the audit store,
/// Audit/AuditSearch.cs) run by the server itself, so it keeps working whatever stores the AuditEvents. Every request
/// answered before is in it (audit records are durable before the response). The report's own request is audited like
/// any other and shows in the next report.</item>
/// <item>The AuditEvent's query string is not repeated (it may name other search values); the AuditEvent is referenced.</item>
/// </list>
/// </summary>
public static class AccessReport
{
    public const string OperationUrl = "https://fhirsortie.fr/fhir/OperationDefinition/Patient-access-report";

    /// <summary>More than this many accesses in the period: the report says it is truncated (narrow it with _since/_until).</summary>
    public const int MaxAccesses = 5000;

    private static readonly HashSet<string> Allowed = new(StringComparer.Ordinal) { "_since", "_until", "_format", "_pretty" };

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var id = FhirRequest.Id(context);
        var caller = Caller.Of(context);
        AccessPoint.Of(context); // 401 without a caller
        var note = AuditNote.For(context);
        note.Patients.Add(id);
        if (!MayRead(caller!, id))
        {
            const string reason = "Only auditors and the patient themself (fhirUser) may read a patient's access report.";
            note.Decision = AccessDecision.Deny(reason);
            throw FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden, reason);
        }
        note.Decision = AccessDecision.Permit(caller!.Kind == ActorKind.Auditor ? "auditor" : "the patient's own access report");

        var query = new List<KeyValuePair<string, string>> { new("patient", "Patient/" + id), new("_sort", "-date") };
        foreach (var (key, value) in await Rest.Search.QueryAsync(context))
        {
            if (!Allowed.Contains(key)) throw FhirException.BadRequest($"$access-report does not support the parameter '{key}' (only _since and _until).", key);
            if (key is "_since" or "_until")
                query.Add(new("date", FhirRequest.DateSearchValue(key == "_since" ? "ge" : "le", FhirRequest.Instant(value, key))));
        }

        var services = context.RequestServices;
        var store = FhirRequest.Store(context);
        Read.Found(await store.ReadAsync("Patient", id, context.RequestAborted), "Patient", id);

        var (events, truncated) = await AuditEventsAsync(context, query);
        var organisations = new Dictionary<string, string?>(StringComparer.Ordinal);
        var report = new Parameters();
        report.Add("patient", new ResourceReference("Patient/" + id));
        report.Add("count", new Integer(events.Count));
        if (truncated)
            report.Add("truncated", new FhirString($"More than {MaxAccesses} accesses: narrow the period with _since and _until."));
        foreach (var audit in events)
            report.Parameter.Add(await AccessOfAsync(context, audit, organisations));
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, report));
    }

    /// <summary>Auditors, or the patient in person: fhirUser "Patient/{id}" (relative or absolute).</summary>
    private static bool MayRead(Caller caller, string id) =>
        caller.Kind == ActorKind.Auditor || ConsentAuthority.IsThePerson(caller, id);

    private static async Task<(List<AuditEvent> Events, bool Truncated)> AuditEventsAsync(HttpContext context, List<KeyValuePair<string, string>> query)
    {
        var services = context.RequestServices;
        var baseUrl = FhirBase.Of(context);
        var owner = "access-report:" + Guid.NewGuid();
        var events = new List<AuditEvent>();
        var request = new SearchRequest(baseUrl, "AuditEvent", [.. query, new("_count", "1000")]) { Access = AccessFilter.None, Owner = owner };
        while (true)
        {
            var page = await Rest.Search.ExecuteAsync(services, request, null, null, context.RequestAborted);
            events.AddRange(page.Entry.Select(e => e.Resource).OfType<AuditEvent>());
            if (events.Count > MaxAccesses) return (events.Take(MaxAccesses).ToList(), true);
            if (page.Link.FirstOrDefault(l => l.Relation == "next")?.Url is not { } next) return (events, false);
            var pageQuery = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(new Uri(next).Query)
                .SelectMany(p => p.Value.Select(v => new KeyValuePair<string, string>(p.Key, v ?? ""))).ToList();
            request = new SearchRequest(baseUrl, "AuditEvent", pageQuery) { Access = AccessFilter.None, Owner = owner };
        }
    }

    private static async Task<Parameters.ParameterComponent> AccessOfAsync(HttpContext context, AuditEvent audit, Dictionary<string, string?> organisations)
    {
        var access = new Parameters.ParameterComponent { Name = "access" };
        void Part(string name, DataType? value)
        {
            if (value is not null) access.Part.Add(new Parameters.ParameterComponent { Name = name, Value = value });
        }
        Part("when", audit.RecordedElement is { } recorded ? new Instant(recorded.Value) : null);
        var client = audit.Agent.FirstOrDefault(a => a.Who?.Identifier?.System == AuditRecords.ClientIds);
        Part("client", client?.Who?.Identifier?.Value is { } clientId ? new FhirString(clientId) : null);
        Part("actorKind", client?.Who?.Display is { } kind ? new Code(kind) : null);
        if (audit.Agent.FirstOrDefault(a => a.Who?.Identifier?.System == ConsentGrants.Finess)?.Who?.Identifier?.Value is { } finess)
        {
            Part("organization", new Identifier(ConsentGrants.Finess, finess));
            Part("organizationName", await OrganisationNameAsync(context, finess, organisations) is { } name ? new FhirString(name) : null);
        }
        Part("user", audit.Agent.FirstOrDefault(a => a.Who?.Reference is not null)?.Who?.Reference is { } user ? new FhirString(user) : null);
        // A FHIR interaction's code (read, search-type...), or for the OAuth endpoints' records "Login" (a token for an app
        // acting on this patient, or a refused refresh of one) and "Logout" (that authorization revoked).
        Part("interaction", audit.Subtype.FirstOrDefault() is { } subtype && (subtype.Display ?? subtype.Code) is { } interaction ? new Code(interaction) : null);
        foreach (var entity in audit.Entity.Where(e => e.Type?.Code == "2" && e.What?.Reference is not null))
            Part("resource", new ResourceReference(entity.What!.Reference));
        var (outcome, reason) = OutcomeOf(audit);
        Part("outcome", new Code(outcome));
        Part("reason", reason is null ? null : new FhirString(reason));
        Part("purpose", audit.PurposeOfEvent.FirstOrDefault()?.Coding.FirstOrDefault() is { } purpose ? (Coding)purpose.DeepCopy() : null);
        var breakGlass = audit.Entity.SelectMany(e => e.Detail).FirstOrDefault(d => d.Type == AuditRecords.BreakGlassReasonDetail)?.Value;
        Part("breakGlassReason", breakGlass is FhirString text ? new FhirString(text.Value) : null);
        foreach (var consent in audit.Entity.Where(e => e.What?.Reference?.StartsWith("Consent/", StringComparison.Ordinal) == true))
            Part("consent", new ResourceReference(consent.What!.Reference));
        Part("auditEvent", new ResourceReference("AuditEvent/" + audit.Id));
        return access;
    }

    /// <summary>permitted / refused / error, and the decision's reason ("permitted: ..." / "denied: ..." in outcomeDesc).</summary>
    private static (string Outcome, string? Reason) OutcomeOf(AuditEvent audit)
    {
        var outcome = audit.Outcome switch
        {
            AuditEvent.AuditEventOutcome.N0 => "permitted",
            AuditEvent.AuditEventOutcome.N4 => "refused",
            _ => "error",
        };
        var description = audit.OutcomeDesc;
        foreach (var prefix in new[] { "permitted: ", "denied: " })
        {
            if (description?.StartsWith(prefix, StringComparison.Ordinal) == true) return (outcome, description[prefix.Length..]);
        }
        return (outcome, description);
    }

    /// <summary>The name of the Organization with this FINESS on this server, looked up once per report.</summary>
    private static async Task<string?> OrganisationNameAsync(HttpContext context, string finess, Dictionary<string, string?> known)
    {
        if (known.TryGetValue(finess, out var name)) return name;
        var request = new SearchRequest(FhirBase.Of(context), "Organization", [new("identifier", $"{ConsentGrants.Finess}|{finess}"), new("_count", "1")])
        {
            Access = AccessFilter.None,
            Owner = "access-report",
        };
        var found = await Rest.Search.ExecuteAsync(context.RequestServices, request, null, null, context.RequestAborted);
        name = found.Entry.Select(e => e.Resource).OfType<Organization>().FirstOrDefault()?.Name;
        known[finess] = name;
        return name;
    }
}
