using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Export;

/// <summary>
/// FHIR Bulk Data Access 2.0 over HTTP: the three kick-offs (<see cref="ExportKickoff"/>), the status URL (GET: 202 with
/// X-Progress and Retry-After, then 200 with the manifest, or the failure's OperationOutcome; DELETE: cancel, 202) and the
/// output files, each served only to the client that kicked the export off, with its token (requiresAccessToken).
/// Another client's export, a cancelled or expired one: 404.
/// </summary>
public static class ExportRoutes
{
    public const string StatusSegment = "$export-status";
    public const string FileSegment = "$export-file";
    public const string NdjsonContentType = "application/fhir+ndjson";

    public static void MapExport(this IEndpointRouteBuilder fhir)
    {
        fhir.MapGet("/$export", ExportKickoff.System).WithMetadata(new Capabilities.OperationDefinition(ExportKickoff.SystemDefinition));
        fhir.MapGet("/Patient/$export", ExportKickoff.Patient).WithMetadata(new Capabilities.OperationDefinition(ExportKickoff.PatientDefinition));
        fhir.MapGet("/Group/{id}/$export", ExportKickoff.Group).WithMetadata(new Capabilities.OperationDefinition(ExportKickoff.GroupDefinition));
        fhir.MapGet($"/{StatusSegment}/{{job}}", Status);
        fhir.MapDelete($"/{StatusSegment}/{{job}}", Cancel);
        fhir.MapGet($"/{FileSegment}/{{job}}/{{file:int}}", File);
    }

    public static string StatusUrl(string baseUrl, string jobId) => $"{baseUrl}/{StatusSegment}/{jobId}";

    /// <summary>An output file's path under the FHIR base, as the stored manifest holds it.</summary>
    public static string FilePath(string jobId, int fileNo) => $"{FileSegment}/{jobId}/{fileNo}";

    private static async Task Status(HttpContext context)
    {
        var job = await FindAsync(context);
        var response = context.Response;
        switch (job.Status)
        {
            case ExportStatus.Completed:
                response.StatusCode = StatusCodes.Status200OK;
                response.ContentType = "application/json";
                if (job.Expires is { } expires) response.Headers.Expires = expires.ToString("R");
                await response.WriteAsync(WithAbsoluteUrls(job.Manifest!, FhirBase.Of(context)), context.RequestAborted);
                return;
            case ExportStatus.Failed:
                // Bulk Data: a failed export answers its status with a 5XX and an OperationOutcome (the failure is the server's).
                throw FhirException.Error(HttpStatusCode.InternalServerError, OperationOutcome.IssueType.Exception, job.Error ?? "The export failed.");
            default:
                response.StatusCode = StatusCodes.Status202Accepted;
                response.Headers["X-Progress"] = job.Status == ExportStatus.Accepted ? "queued" : job.Progress ?? "running";
                response.Headers.RetryAfter = Options(context).RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                return;
        }
    }

    /// <summary>The stored manifest with each output url made absolute on <paramref name="baseUrl"/> (this node's, as the client reached it).</summary>
    private static string WithAbsoluteUrls(string manifest, string baseUrl)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(manifest)!;
        foreach (var output in node["output"]!.AsArray())
        {
            var url = (string)output!["url"]!;
            if (!url.StartsWith("http", StringComparison.Ordinal)) output["url"] = baseUrl + "/" + url;
        }
        return node.ToJsonString();
    }

    private static async Task Cancel(HttpContext context)
    {
        var caller = Caller.Of(context) ?? throw Unauthorized();
        var id = (string)context.Request.RouteValues["job"]!;
        if (!await Jobs(context).CancelAsync(id, caller.ClientId, context.RequestAborted)) throw NotFound();
        context.Response.StatusCode = StatusCodes.Status202Accepted;
        await FhirResponse.WriteErrorAsync(context, HttpStatusCode.Accepted, Outcomes.Information("The export is cancelled and its files removed."));
    }

    private static async Task File(HttpContext context)
    {
        var job = await FindAsync(context);
        var fileNo = int.Parse((string)context.Request.RouteValues["file"]!, System.Globalization.CultureInfo.InvariantCulture);
        // Only a completed export's files: a running attempt's chunks are a half file.
        if (job.Status != ExportStatus.Completed || fileNo < 0 || fileNo >= job.Spec.Types.Count) throw NotFound();
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = NdjsonContentType;
        await Jobs(context).CopyFileAsync(job.Id, fileNo, context.Response.Body, context.RequestAborted);
    }

    private static async Task<ExportJob> FindAsync(HttpContext context)
    {
        var caller = Caller.Of(context) ?? throw Unauthorized();
        var id = (string)context.Request.RouteValues["job"]!;
        // The audit record names the export asked for (status or file URL, ids only): a client trying another's
        // export (requiresAccessToken: its token is not the one that kicked it off) is on record, refused.
        var note = Audit.AuditNote.For(context);
        note.Entities.Add(context.Request.Path.Value![(FhirBase.Path.Length + 1)..]);
        var job = await Jobs(context).FindAsync(id, caller.ClientId, context.RequestAborted);
        if (job is null)
        {
            note.Decision = Consents.AccessDecision.Deny("no export of this client by that id (unknown, another client's, cancelled or expired)");
            throw NotFound();
        }
        return job;
    }

    private static ExportJobs Jobs(HttpContext context) => context.RequestServices.GetRequiredService<ExportJobs>();

    internal static ExportOptions Options(HttpContext context) => context.RequestServices.GetRequiredService<IOptions<ExportOptions>>().Value;

    private static FhirException NotFound() => FhirException.NotFound("No such export for this client (unknown, cancelled or expired).");

    private static FhirException Unauthorized() => new(HttpStatusCode.Unauthorized, Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Login,
        "This request needs a valid access token (Authorization: Bearer ...)."));
}
