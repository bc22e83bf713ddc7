using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// Every error under /fhir leaves as an OperationOutcome. Known errors keep their status; anything else is
/// logged (without the request body: it may hold patient data) and answered 500.
/// </summary>
public sealed class FhirErrorMiddleware(RequestDelegate next, ILogger<FhirErrorMiddleware> logger)
{
    public async System.Threading.Tasks.Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
            if (!context.Response.HasStarted && context.Response.StatusCode is 404 or 405 && context.Response.ContentType is null
                && context.Request.Path.StartsWithSegments(FhirBase.Path))
                await AnswerUnroutedAsync(context);
        }
        catch (FhirException e) when (!context.Response.HasStarted)
        {
            context.Response.Clear();
            if (e.Status == HttpStatusCode.Unauthorized) context.Response.Headers.WWWAuthenticate = "Bearer";
            if (e.Allow is { } allow) context.Response.Headers.Allow = allow;
            await FhirResponse.WriteErrorAsync(context, e.Status, e.Outcome);
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            context.Response.Clear();
            var status = (HttpStatusCode)e.StatusCode;
            var code = status == HttpStatusCode.RequestEntityTooLarge ? OperationOutcome.IssueType.TooCostly : OperationOutcome.IssueType.Invalid;
            await FhirResponse.WriteErrorAsync(context, status, Outcomes.Single(OperationOutcome.IssueSeverity.Error, code, e.Message));
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (System.Data.Common.DbException e) when (!context.Response.HasStarted
            && context.RequestServices.GetRequiredService<Storage.StorageDialect>() is var dialect && dialect.IsConnectionLost(e))
        {
            // The database went away under this request (restart, failover): nothing was acknowledged, so the client may
            // try again. The pool's other idle connections are most likely dead too: drop them for the next requests.
            logger.LogWarning("Database connection lost on {Method} {Route}: answering 503", context.Request.Method,
                (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(no route)");
            await using (var any = dialect.CreateConnection()) dialect.ClearPool(any);
            context.Response.Clear();
            context.Response.Headers.RetryAfter = "1";
            await FhirResponse.WriteErrorAsync(context, HttpStatusCode.ServiceUnavailable,
                Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Transient,
                    "The database connection was lost while answering; nothing was changed by this request's failed part. Try again."));
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            logger.LogError(e, "Unhandled error on {Method} {Path}", context.Request.Method, context.Request.Path);
            context.Response.Clear();
            await FhirResponse.WriteErrorAsync(context, HttpStatusCode.InternalServerError,
                Outcomes.Single(OperationOutcome.IssueSeverity.Fatal, OperationOutcome.IssueType.Exception,
                    "Internal error; it has been logged with the request's trace id " + context.TraceIdentifier));
        }
    }

    /// <summary>
    /// ASP.NET Core's routing answers a URL no route matches with a bare 404, and a method a route does not serve with a
    /// bare 405: under /fhir they get an OperationOutcome like every other error (the 405 keeps its Allow header). A
    /// URL ending in an $operation is answered as an operation not supported.
    /// </summary>
    private static System.Threading.Tasks.Task AnswerUnroutedAsync(HttpContext context)
    {
        // [base]/.../$name with a method no route serves there: an operation this server lacks (UnknownOperation).
        if (UnknownOperation.Named(context) is not null)
        {
            var refused = UnknownOperation.Refusal(context);
            context.Response.Clear();
            if (refused.Allow is { } allow) context.Response.Headers.Allow = allow;
            return FhirResponse.WriteErrorAsync(context, refused.Status, refused.Outcome);
        }
        var methodNotAllowed = context.Response.StatusCode == 405;
        var message = methodNotAllowed
            ? $"{context.Request.Method} is not served at this URL (allowed: {context.Response.Headers.Allow})."
            : "No FHIR interaction is served at this URL.";
        return FhirResponse.WriteErrorAsync(context, methodNotAllowed ? HttpStatusCode.MethodNotAllowed : HttpStatusCode.NotFound,
            Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.NotSupported, message));
    }
}
