using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using FhirSortie.Server.Audit;
using Microsoft.Extensions.Options;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace FhirSortie.Server.Security;

/// <summary>
/// Slows secret guessing at the OAuth endpoints (token, revocation, introspection): after
/// <see cref="AuthOptions.MaxFailedClientAuthentications"/> refused client authentications (invalid_client) of one
/// client id from one address within <see cref="AuthOptions.FailedClientAuthenticationWindowSeconds"/>, that client id
/// is refused from that address with 429 and Retry-After until the window ends, before its secret or assertion is
/// looked at. Keyed by address and claimed client, so that someone guessing cannot lock the real client out from its
/// own address, nor one misconfigured app its colleagues behind the same NAT.
/// <para>
/// Per node, which is safe to lose: behind N nodes a guesser gets N times the budget, still a handful of guesses per
/// minute against a generated secret or a private key, and a restart forgets the count. A refused request is audited
/// like the others (a Login, outcome 4, "too many failed client authentications").
/// </para>
/// </summary>
public sealed class FailedClientAuthentications(IOptions<AuthOptions> options, TimeProvider clock)
    : FailedAttempts(options.Value.MaxFailedClientAuthentications, TimeSpan.FromSeconds(options.Value.FailedClientAuthenticationWindowSeconds), clock);

/// <summary>The middleware of <see cref="FailedClientAuthentications"/>.</summary>
public static class FailedClientAuthenticationLimit
{
    /// <summary>After the authentication audit (the refusal is recorded), before the authentication middleware (where OpenIddict answers).</summary>
    public static IApplicationBuilder UseFailedClientAuthenticationLimit(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (!HttpMethods.IsPost(context.Request.Method) || !AuthorizationServer.IsClientAuthenticationPath(context.Request.Path))
        {
            await next(context);
            return;
        }
        var limiter = context.RequestServices.GetRequiredService<FailedClientAuthentications>();
        var pair = (AuditEntry.AddressOf(context) ?? "", await ClaimedClientAsync(context.Request) ?? "");
        if (limiter.RetryAfter(pair) is { } wait)
        {
            var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
            context.Items[AuthenticationAudit.RefusalItem] = "too many failed client authentications of this client from this address";
            context.Items[AuthenticationAudit.ClaimedClientItem] = pair.Item2;
            context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
            context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            await context.Response.WriteAsJsonAsync(new Dictionary<string, string>
            {
                ["error"] = Errors.TemporarilyUnavailable,
                ["error_description"] = $"Too many failed client authentications of this client from this address: try again in {seconds} s.",
            });
            return;
        }
        context.Response.OnStarting(() =>
        {
            if (context.Features.Get<OpenIddictServerAspNetCoreFeature>()?.Transaction?.Response?.Error == Errors.InvalidClient) limiter.Failed(pair);
            return Task.CompletedTask;
        });
        await next(context);
    });

    /// <summary>The client the request claims: Basic credentials (RFC 6749 2.3.1, form-encoded), client_id, or the assertion's subject.</summary>
    private static async Task<string?> ClaimedClientAsync(HttpRequest request)
    {
        string? clientId = null;
        if (AuthenticationHeaderValue.TryParse(request.Headers.Authorization.ToString(), out var header)
            && string.Equals(header.Scheme, "Basic", StringComparison.OrdinalIgnoreCase) && header.Parameter is { } parameter)
        {
            try
            {
                var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(parameter));
                if (decoded.IndexOf(':', StringComparison.Ordinal) is var colon and > 0) clientId = Uri.UnescapeDataString(decoded[..colon].Replace('+', ' '));
            }
            catch (FormatException)
            {
                // Not Base64: OpenIddict refuses it; there is no client to count it against.
            }
        }
        if (clientId is null && request.HasFormContentType)
        {
            // Buffered by ASP.NET Core: OpenIddict reads the same parsed form.
            var form = await request.ReadFormAsync(request.HttpContext.RequestAborted);
            return AuthenticationAudit.Claimed(form[Parameters.ClientId].ToString(), form[Parameters.ClientAssertion].ToString());
        }
        return AuthenticationAudit.Claimed(clientId, null);
    }
}
