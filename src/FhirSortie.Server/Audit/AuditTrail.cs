using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Audit;

/// <summary>
/// Records one audit_log row per FHIR interaction, permitted or denied; <see cref="AuditMaterialiser"/> turns the rows
/// into AuditEvent resources (so auditors search them like any other, e.g. AuditEvent?patient=...) shortly after.
/// Reads are recorded and committed before the response's first byte leaves (<see cref="AuditMiddleware"/>) through
/// a write unit (on SQLite it joins the group commit: concurrent reads share one fsync); a successful write already
/// committed its row in its own transaction (<see cref="WriteHook"/>), so only its failures are recorded here.
/// </summary>
public sealed class AuditTrail(StorageDialect dialect, TimeProvider clock, AuditMaterialiser materialiser)
{
    public async System.Threading.Tasks.Task RecordAsync(HttpContext context)
    {
        var note = AuditNote.For(context);
        var status = context.Response.StatusCode;
        if (status < 400 && note.AuditedInTransaction && note.FailedEntries.Count == 0) return;
        var interaction = InteractionOf(context);
        if (note.Entities.Count == 0) AddRouteEntities(context, note);
        var query = interaction.StartsWith("search", StringComparison.Ordinal) ? context.Request.QueryString.Value?.TrimStart('?') : null;
        var caller = Caller.Of(context);
        var now = clock.GetUtcNow();
        var entries = new List<AuditEntry>();
        if (status >= 400 || !note.AuditedInTransaction) entries.Add(AuditEntry.Of(caller, interaction, status, now, note, query));
        // Each failed batch/transaction entry is its own record: what was attempted, on what, and why it failed.
        foreach (var failure in note.FailedEntries)
        {
            var entryNote = new AuditNote { Decision = failure.Decision, Purpose = note.Purpose };
            entryNote.Entities.Add(failure.Target);
            entryNote.Patients.UnionWith(failure.Patients);
            entries.Add(AuditEntry.Of(caller, failure.Interaction, failure.Status, now, entryNote, failure.Query));
        }
        // Not context.RequestAborted: a client hanging up must not cancel the record of what it asked for.
        await using (var unit = await dialect.BeginWriteAsync(CancellationToken.None))
        {
            foreach (var entry in entries) await AppendAsync(unit.Connection, unit.Transaction, entry, CancellationToken.None);
            await unit.CommitAsync(CancellationToken.None);
        }
        materialiser.Notify();
    }

    /// <summary>Adds <paramref name="entry"/> to the audit_log in the given transaction.</summary>
    public static async System.Threading.Tasks.Task AppendAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, AuditEntry entry, CancellationToken ct)
    {
        await using var insert = Sql.Command(connection, transaction, "INSERT INTO audit_log (audit_id, recorded, entry) VALUES (@i, @r, @e)")
            .With("@i", entry.Id).With("@r", entry.Recorded).With("@e", entry.ToJson());
        await insert.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The restful-interaction code of the request, from its method and route template.</summary>
    public static string InteractionOf(HttpContext context)
    {
        // Normalised to "/fhir..." without a trailing slash: the group's "" route (system search, transaction) comes out as "/fhir/".
        var template = "/" + ((context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "").Trim('/');
        var tail = template.StartsWith(FhirBase.Path, StringComparison.Ordinal) ? template[FhirBase.Path.Length..] : template;
        var method = context.Request.Method;
        if (tail.Contains('$', StringComparison.Ordinal)) return "operation";
        return (method, tail) switch
        {
            ("GET", "/metadata") => "capabilities",
            ("GET", "") or ("POST", "/_search") => "search-system",
            ("POST", "") => "transaction",
            (_, "/_history" or "/{type}/_history" or "/{type}/{id}/_history") => "history",
            ("GET", "/{type}") or ("POST", "/{type}/_search") => "search-type",
            ("GET", "/{compartment}/{id}/{type}") => "search-type",
            ("POST", "/{type}") => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", _) => "delete",
            ("GET", "/{type}/{id}") => "read",
            ("GET", "/{type}/{id}/_history/{vid}") => "vread",
            _ => "operation",
        };
    }

    private static void AddRouteEntities(HttpContext context, AuditNote note)
    {
        var values = context.Request.RouteValues;
        var type = values["type"] as string;
        var id = values["id"] as string;
        if (values["compartment"] is "Patient" && id is not null)
        {
            note.Patients.Add(id);
            return;
        }
        if (type is null) return;
        if (id is not null)
        {
            note.Entities.Add(values["vid"] is string vid ? $"{type}/{id}/_history/{vid}" : $"{type}/{id}");
            if (type == "Patient") note.Patients.Add(id);
        }
        if (context.Request.Query["patient"].ToString() is { Length: > 0 } patient) note.Patients.Add(patient.Replace("Patient/", "", StringComparison.Ordinal));
        if (context.Request.Query["subject"].ToString() is { Length: > 0 } subject && subject.StartsWith("Patient/", StringComparison.Ordinal))
            note.Patients.Add(subject["Patient/".Length..]);
    }
}

/// <summary>
/// Records the AuditEvent of every request under /fhir once its status is final and before the response starts,
/// and refuses patches and deletes of AuditEvents (append-only). Register after authentication (it reads the Caller).
/// </summary>
public sealed class AuditMiddleware(RequestDelegate next)
{
    public async System.Threading.Tasks.Task InvokeAsync(HttpContext context, AuditTrail trail)
    {
        if (!context.Request.Path.StartsWithSegments(FhirBase.Path, out var rest))
        {
            await next(context);
            return;
        }
        var note = AuditNote.For(context);
        if (PurposeOfUse.From(context.Request) is { } purpose) note.Purpose = purpose;
        context.Response.OnStarting(() => trail.RecordAsync(context));
        // Updates of an existing AuditEvent are refused in the write itself (WriteHook): a PUT may still create one.
        if (context.Request.Method is "PATCH" or "DELETE" && rest.StartsWithSegments("/AuditEvent"))
        {
            note.Decision = Consents.AccessDecision.Deny("AuditEvents are append-only");
            await FhirResponse.WriteErrorAsync(context, HttpStatusCode.MethodNotAllowed,
                Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.NotSupported, "AuditEvents are append-only: they cannot be updated, patched or deleted."));
            return;
        }
        await next(context);
    }
}
