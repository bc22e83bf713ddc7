using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace FhirSortie.Server.Storage;

/// <summary>
/// Readiness for the load balancer (<c>GET|HEAD /health/ready</c>): 200 while this node reaches its database, 503 when
/// it does not (PostgreSQL down or failed over, a node cut off from it), so traffic goes to the nodes that can
/// answer. <c>/health</c> stays the liveness check (the process answers; no dependency), which restarts nothing when
/// only the database is away. Anonymous: the answer says ok or unavailable and nothing else (no host names, no
/// errors); the reason goes to the log. ASP.NET Core's health checks do the endpoint; this is the one check.
/// </summary>
public sealed class DatabaseHealthCheck(StorageDialect dialect, ILogger<DatabaseHealthCheck> logger) : IHealthCheck
{
    public const string ReadyTag = "ready";

    /// <summary>A database slower than this to answer SELECT 1 is not ready (the balancer's own timeout is usually 5 s).</summary>
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Timeout);
        try
        {
            await using var connection = dialect.CreateConnection();
            await connection.OpenAsync(timeout.Token);
            await using var select = connection.CreateCommand();
            select.CommandText = "SELECT 1";
            await select.ExecuteScalarAsync(timeout.Token);
            return HealthCheckResult.Healthy();
        }
        catch (Exception e) when (e is System.Data.Common.DbException or OperationCanceledException or InvalidOperationException or TimeoutException or System.Net.Sockets.SocketException)
        {
            logger.LogWarning("Not ready: the database does not answer ({Error})", e.GetType().Name);
            return HealthCheckResult.Unhealthy();
        }
    }

    /// <summary>/health (liveness, no check) and /health/ready (the database), for GET and HEAD, answering {"status":"ok"} or {"status":"unavailable"}.</summary>
    public static void MapHealth(IEndpointRouteBuilder routes)
    {
        routes.MapHealthChecks("/health", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync });
        routes.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag), ResponseWriter = WriteAsync });
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        if (HttpMethods.IsHead(context.Request.Method)) return Task.CompletedTask;
        return context.Response.WriteAsync(JsonSerializer.Serialize(new { status = report.Status == HealthStatus.Healthy ? "ok" : "unavailable" }));
    }
}
