using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.WebUtilities;

namespace FhirSortie.Server.Export;

/// <summary>
/// The kick-offs: GET [base]/$export, [base]/Patient/$export and [base]/Group/{id}/$export with _type, _since, _typeFilter
/// and _outputFormat (application/fhir+ndjson, application/ndjson or ndjson). Decided and checked here, before anything
/// is queued: <c>Prefer: respond-async</c> (400 without), care actors only (justice, social, auditor and admin actors get
/// 403: no bulk export across patients for non-care actors), no patient launch (a bulk export is for backend services
/// with system/ scopes, or a user with user/ scopes; a patient/ scope's single compartment is a search away), every
/// exported type covered by a scope with r and s (an explicit _type not covered is 403; without _type the types not
/// covered are left out), each _typeFilter a valid search (400 otherwise). Answer: 202 with Content-Location.
/// </summary>
public static class ExportKickoff
{
    public const string BulkDataCapabilities = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data";
    public const string SystemDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export";
    public const string PatientDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export";
    public const string GroupDefinition = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export";

    private static readonly HashSet<string> OutputFormats = new(StringComparer.Ordinal) { "application/fhir+ndjson", "application/ndjson", "ndjson" };
    private static readonly HashSet<string> Allowed = new(StringComparer.Ordinal) { "_type", "_since", "_typeFilter", "_outputFormat", "_format" };

    public static Task System(HttpContext context) => KickOffAsync(context, ExportLevel.System, null);

    public static Task Patient(HttpContext context) => KickOffAsync(context, ExportLevel.Patient, null);

    public static Task Group(HttpContext context) => KickOffAsync(context, ExportLevel.Group, FhirRequest.Id(context));

    private static async Task KickOffAsync(HttpContext context, ExportLevel level, string? groupId)
    {
        if (!RespondAsync(context.Request))
            throw FhirException.BadRequest("A bulk export runs asynchronously: send the header 'Prefer: respond-async'.");
        var access = AccessPoint.Of(context); // 401 without a caller
        var caller = Caller.Of(context)!;
        if (!AccessRules.IsCareActor(caller.Kind))
            throw Forbidden($"Bulk export is for care organisations; a {caller.Kind} actor may not export data across patients.");
        if (caller.PatientId is not null)
            throw Forbidden("Bulk export needs system/ (backend) or user/ scopes, not a patient launch.");

        var query = context.Request.Query;
        foreach (var key in query.Keys)
        {
            if (!Allowed.Contains(key)) throw FhirException.BadRequest($"$export does not support the parameter '{key}' (only _type, _since, _typeFilter and _outputFormat).", key);
            if (key != "_typeFilter" && query[key].Count > 1) throw FhirException.BadRequest($"'{key}' may be given once.", key);
        }
        if (query["_outputFormat"].ToString() is { Length: > 0 } format && !OutputFormats.Contains(format))
            throw FhirException.BadRequest($"_outputFormat '{format}' is not served: use application/fhir+ndjson.", "_outputFormat");
        DateTimeOffset? since = query["_since"].ToString() is { Length: > 0 } s ? FhirRequest.Instant(s, "_since") : null;

        var services = context.RequestServices;
        var compartments = services.GetRequiredService<Compartments>();
        var members = new List<string>();
        if (groupId is not null) members = await GroupMembersAsync(context, access, groupId);

        var types = await TypesAsync(context, access, level, compartments, query["_type"].ToString());
        var filters = TypeFilters(query["_typeFilter"], types, access, services.GetRequiredService<SearchEngine>());

        var baseUrl = FhirBase.Of(context);
        var queryText = context.Request.QueryString.Value?.TrimStart('?');
        var spec = new ExportSpec(caller, level, groupId, types, since, filters, members,
            baseUrl + context.Request.Path.Value![FhirBase.Path.Length..] + context.Request.QueryString.Value, baseUrl, string.IsNullOrEmpty(queryText) ? null : queryText);
        var now = services.GetRequiredService<TimeProvider>().GetUtcNow();
        var job = new ExportJob(Guid.NewGuid().ToString("N"), caller.ClientId, spec, ExportStatus.Accepted, now, null, null, 0, null, null, null, null, null);
        await services.GetRequiredService<ExportJobs>().CreateAsync(job, context.RequestAborted);
        services.GetService<ExportWorker>()?.Wake();
        Audit.AuditNote.For(context).Patients.UnionWith(members);
        context.Response.Headers.ContentLocation = ExportRoutes.StatusUrl(baseUrl, job.Id);
        await FhirResponse.WriteErrorAsync(context, HttpStatusCode.Accepted, Outcomes.Information("The export is accepted; poll the Content-Location URL for its status."));
    }

    private static bool RespondAsync(HttpRequest request) =>
        request.Headers["Prefer"].Any(h => (h ?? "").Split([',', ';'], StringSplitOptions.TrimEntries).Any(p => p.Equals("respond-async", StringComparison.OrdinalIgnoreCase)));

    /// <summary>The types to export: the _type list (each permitted, else 403), or every type present that the caller may search.</summary>
    private static async Task<List<string>> TypesAsync(HttpContext context, AccessPoint access, ExportLevel level, Compartments compartments, string typeParameter)
    {
        bool Permitted(string type) => access.Decide(new Security.AccessRequest(Interaction.SearchType, type)).Permitted
            && access.Decide(new Security.AccessRequest(Interaction.Read, type)).Permitted;
        if (typeParameter.Length > 0)
        {
            var listed = typeParameter.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal).ToList();
            foreach (var type in listed)
            {
                if (!ModelInfo.IsKnownResource(type) || type is "Resource" or "DomainResource" or Audit.AuditStore.Type)
                    throw FhirException.BadRequest($"_type '{type}' is not a resource type this export serves.", "_type");
                if (level != ExportLevel.System && !compartments.IsInPatientCompartment(type))
                    throw FhirException.BadRequest($"_type '{type}' is not in the Patient compartment, which a patient or group export covers.", "_type");
                var decision = access.Decide(new Security.AccessRequest(Interaction.SearchType, type));
                if (!decision.Permitted) throw Forbidden(decision.Reason ?? $"No scope lets this client export {type}.");
                if (!Permitted(type)) throw Forbidden($"Exporting {type} needs a scope with r and s on it (e.g. system/{type}.rs).");
            }
            return listed;
        }
        var present = new List<string>();
        var dialect = context.RequestServices.GetRequiredService<StorageDialect>();
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync(context.RequestAborted);
            await using var select = Sql.Command(connection, null, "SELECT DISTINCT type FROM resources WHERE deleted = 0");
            await using var reader = await select.ExecuteReaderAsync(context.RequestAborted);
            while (await reader.ReadAsync(context.RequestAborted)) present.Add(reader.GetString(0));
        }
        return present.Where(t => level == ExportLevel.System || compartments.IsInPatientCompartment(t)).Where(Permitted).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>_typeFilter values ("MedicationRequest?status=active"), by type; each checked now as the search it will be (strict: 400).</summary>
    private static Dictionary<string, List<List<KeyValuePair<string, string>>>> TypeFilters(IEnumerable<string?> values, List<string> types, AccessPoint access, SearchEngine engine)
    {
        var filters = new Dictionary<string, List<List<KeyValuePair<string, string>>>>(StringComparer.Ordinal);
        foreach (var value in values)
        {
            if (string.IsNullOrEmpty(value)) continue;
            var mark = value.IndexOf('?');
            if (mark <= 0) throw FhirException.BadRequest($"_typeFilter '{value}' is not of the form Type?parameters.", "_typeFilter");
            var type = value[..mark];
            if (!types.Contains(type, StringComparer.Ordinal))
                throw FhirException.BadRequest($"_typeFilter names {type}, which this export does not include (see _type and the scopes).", "_typeFilter");
            var query = new List<KeyValuePair<string, string>>();
            foreach (var (k, vs) in QueryHelpers.ParseQuery(value[mark..]))
                foreach (var v in vs) query.Add(new(k, v ?? ""));
            if (query.Any(p => p.Key.StartsWith('_') && p.Key is not ("_lastUpdated" or "_id" or "_tag" or "_security" or "_profile")))
                throw FhirException.BadRequest($"_typeFilter '{value}' may only hold search parameters, not result controls.", "_typeFilter");
            var decision = access.Decide(new Security.AccessRequest(Interaction.SearchType, type) { Query = query });
            if (!decision.Permitted) throw Forbidden(decision.Reason ?? $"No scope lets this client search {type} so.");
            engine.AppendWhere(new SqlQuery(), "r", type, query, AccessFilter.None, strict: true); // 400 now for an unknown parameter or bad value
            if (!filters.TryGetValue(type, out var list)) filters[type] = list = [];
            list.Add(query);
        }
        return filters;
    }

    /// <summary>The Patient members of the Group (read like any read: 404 when unknown or hidden, 403 without the scope).</summary>
    private static async Task<List<string>> GroupMembersAsync(HttpContext context, AccessPoint access, string groupId)
    {
        access.Require(Interaction.Read, "Group");
        var stored = Read.Found(await FhirRequest.Store(context).ReadAsync("Group", groupId, context.RequestAborted), "Group", groupId).Stored!;
        await access.RequireInstanceAsync(Interaction.Read, stored, context.RequestAborted);
        var group = (Hl7.Fhir.Model.Group)FhirResponse.ParseStored(stored.Json!);
        return group.Member.Select(m => m.Entity?.Reference).OfType<string>()
            .Where(r => r.StartsWith("Patient/", StringComparison.Ordinal)).Select(r => r["Patient/".Length..]).Distinct(StringComparer.Ordinal).ToList();
    }

    private static FhirException Forbidden(string reason) =>
        new(HttpStatusCode.Forbidden, Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Forbidden, reason));
}
