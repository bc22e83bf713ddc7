using System.Text.Json;

namespace FhirSortie.Server.Security;

/// <summary>
/// EHR launch: POST /auth/launch, called by a host (USMP record, telemedicine platform) with its own access token and
/// <c>{ "patient": "Patient/123" }</c>, answers <c>{ "launch": "&lt;opaque&gt;" }</c>. The host then opens the app
/// with <c>launch</c> and <c>iss</c>; the app's authorization request carries the value back, and the token gets that
/// patient. The value is bound to the client it is minted for (the host itself, or the app named in
/// <c>client_id</c>), single use, and expires after <see cref="LaunchContexts.Lifetime"/>. The host must itself be
/// allowed to read the patient (scopes and consent); every answer is an AuditEvent of the host on that patient.
/// </summary>
public static class LaunchEndpoint
{
    public const string Path = "/auth/launch";

    /// <summary>
    /// Only hosts that run a patient record open apps on a patient. Not administrators: they never read patient data
    /// (issue 5), so they cannot open an app on a patient either.
    /// </summary>
    private static readonly HashSet<ActorKind> Hosts = [ActorKind.Usmp, ActorKind.Telemedicine];

    public static void MapLaunchEndpoint(this IEndpointRouteBuilder routes) =>
        routes.MapPost(Path, MintAsync).ExcludeFromDescription();

    /// <summary>Every answer, minted or refused, is an audited "operation" of the host on the patient, committed before it leaves.</summary>
    private static async Task<IResult> MintAsync(HttpContext context, LaunchContexts launches, Storage.ResourceStore store, ClientRegistry clients)
    {
        // The request's own note: the consent rule writes its decision there (the consent that permitted, or why not).
        var note = Audit.AuditNote.For(context);
        var (result, status, reason) = await DecideAsync(context, launches, store, clients, note);
        var entry = Audit.AuditEntry.Of(context, Caller.Of(context), "operation", status, note);
        await context.RequestServices.GetRequiredService<Audit.AuditTrail>().CommitAsync(entry with
        {
            Permitted = status < 400,
            Reason = "EHR launch: " + reason + (note.Decision is { Reason: { Length: > 0 } why } ? $" ({why})" : ""),
        });
        return result;
    }

    private static async Task<(IResult Result, int Status, string Reason)> DecideAsync(HttpContext context, LaunchContexts launches, Storage.ResourceStore store,
        ClientRegistry clients, Audit.AuditNote note)
    {
        var caller = Caller.Of(context);
        if (caller is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Error(StatusCodes.Status401Unauthorized, "invalid_token", "An access token is required.");
        }
        if (!Hosts.Contains(caller.Kind))
            return Error(StatusCodes.Status403Forbidden, "access_denied", $"A {caller.Kind} client cannot mint launch contexts.");

        LaunchRequest? body;
        try
        {
            body = await context.Request.ReadFromJsonAsync<LaunchRequest>(JsonOptions, context.RequestAborted);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return Error(StatusCodes.Status400BadRequest, "invalid_request", "The body must be JSON: { \"patient\": \"Patient/<id>\" }.");
        }
        var reference = body?.Patient ?? "";
        var patientId = reference.StartsWith("Patient/", StringComparison.Ordinal) ? reference["Patient/".Length..] : reference;
        if (!Rest.FhirRequest.IsValidId(patientId))
            return Error(StatusCodes.Status400BadRequest, "invalid_request", "patient must be a reference like \"Patient/<id>\".");
        note.Entities.Add("Patient/" + patientId);
        note.Patients.Add(patientId);
        var stored = await store.ReadAsync("Patient", patientId, context.RequestAborted);
        if (stored is null || stored.Deleted) return Error(StatusCodes.Status404NotFound, "invalid_request", "No such patient on this server.");
        try
        {
            // The host opens apps only on patients it may read itself (its scopes and the consent rules): a hidden
            // patient is as unknown as one that does not exist.
            await AccessPoint.Of(context).RequireInstanceAsync(Interaction.Read, stored, context.RequestAborted);
        }
        catch (Rest.FhirException e)
        {
            return e.Status == System.Net.HttpStatusCode.NotFound
                ? Error(StatusCodes.Status404NotFound, "invalid_request", "No such patient on this server.")
                : Error(StatusCodes.Status403Forbidden, "access_denied", "This client may not read this patient.");
        }

        var clientId = string.IsNullOrEmpty(body?.ClientId) ? caller.ClientId : body.ClientId;
        if (clients.Find(clientId) is not { RedirectUris.Count: > 0 })
            return Error(StatusCodes.Status400BadRequest, "invalid_request", "client_id must name an application registered for SMART App Launch.");

        var launch = await launches.CreateAsync(LaunchKind.Ehr, clientId, patientId, null, context.RequestAborted);
        context.Response.Headers.CacheControl = "no-store";
        return (Results.Json(new LaunchResponse(launch.Id, (int)LaunchContexts.Lifetime.TotalSeconds, clientId), JsonOptions), StatusCodes.Status200OK,
            $"launch minted for {clientId}");
    }

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    private static (IResult, int, string) Error(int status, string error, string description) =>
        (Results.Json(new { error, error_description = description }, statusCode: status), status, $"{error}: {description}");

    private sealed record LaunchRequest(string? Patient, string? ClientId);

    private sealed record LaunchResponse(string Launch, int ExpiresIn, string ClientId);
}
