using System.Globalization;
using System.Net;
using System.Threading.RateLimiting;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.RateLimiting;

namespace FhirSortie.Server.Rest;

/// <summary>
/// Per-client throttling of /fhir (FhirSortie:Throttling:RequestsPerSecond, 0 = off, the default): a CSAPA script
/// caught in a loop gets 429 with an OperationOutcome and Retry-After instead of starving the other organisations.
/// A token bucket per OAuth client (bursts up to Burst requests, RequestsPerSecond on average), with ASP.NET Core's rate
/// limiter. The counts are per node, which is safe to lose: behind a load balancer of N nodes a client gets up to N
/// times the rate, so set it per node. A throttled request is refused like any other: it leaves an AuditEvent (outcome
/// 4, "HTTP 429", the client; it read nothing, so it names no patient), which costs a flood its audit writes but keeps
/// "every access, allowed or refused" whole; the handlers' own work (search, consent, serialisation) is what it saves.
/// </summary>
public static class ClientThrottling
{
    public const string Section = "FhirSortie:Throttling";

    public sealed class Options
    {
        public int RequestsPerSecond { get; set; }

        /// <summary>Requests allowed at once after a quiet moment; 0: twice the rate.</summary>
        public int Burst { get; set; }
    }

    public static void AddClientThrottling(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(Section).Get<Options>() ?? new Options();
        if (options.RequestsPerSecond < 0 || options.Burst < 0) throw new InvalidOperationException($"{Section}: RequestsPerSecond and Burst cannot be negative.");
        if (options.RequestsPerSecond == 0) return;
        var burst = options.Burst > 0 ? options.Burst : 2 * options.RequestsPerSecond;
        services.AddRateLimiter(limiter =>
        {
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
                !context.Request.Path.StartsWithSegments(FhirBase.Path) || context.User.FindFirst("client_id")?.Value is not { } client
                    ? RateLimitPartition.GetNoLimiter("")
                    : RateLimitPartition.GetTokenBucketLimiter(client, _ => new TokenBucketRateLimiterOptions
                    {
                        TokenLimit = burst,
                        TokensPerPeriod = options.RequestsPerSecond,
                        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                        QueueLimit = 0,
                        AutoReplenishment = true,
                    }));
            limiter.OnRejected = async (rejected, ct) =>
            {
                var retryAfter = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
                rejected.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                await FhirResponse.WriteErrorAsync(rejected.HttpContext, HttpStatusCode.TooManyRequests,
                    Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Throttled,
                        $"This client sent more than {options.RequestsPerSecond} requests per second (bursts of {burst}) to this node: try again in {retryAfter} s."));
            };
        });
    }

    /// <summary>After authentication (the partition is the client) and after the audit middleware (the refusal is audited).</summary>
    public static void UseClientThrottling(this WebApplication app)
    {
        if ((app.Configuration.GetSection(Section).Get<Options>()?.RequestsPerSecond ?? 0) > 0) app.UseRateLimiter();
    }
}
