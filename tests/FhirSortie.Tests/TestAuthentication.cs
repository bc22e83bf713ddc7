using System.Security.Claims;
using System.Text.Encodings.Web;
using FhirSortie.Server.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FhirSortie.Tests;

/// <summary>
/// Test-only authentication for in-process tests that are about something else than tokens: the caller is read
/// from the <c>X-Test-Caller</c> header ("client_id=csapa-demo;actor_kind=Csapa;finess=750000028;scope=system/*.rs;patient=p1"),
/// and without the header it is a USMP client with full system access. Token handling itself is tested over real
/// HTTP with real tokens (Gateway.UseRealAuthentication).
/// </summary>
public sealed class TestAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Test";
    public const string Header = "X-Test-Caller";

    public static readonly string FullAccess =
        $"{Caller.Claims.ClientId}=usmp-test;{Caller.Claims.ActorKind}=Usmp;{Caller.Claims.OrganizationFiness}=750000010;{Caller.Claims.Scope}=system/*.cruds";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var description = Request.Headers[Header].ToString();
        if (description.Length == 0) description = FullAccess;
        var claims = new List<Claim>();
        foreach (var pair in description.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var equals = pair.IndexOf('=');
            if (equals <= 0) return Task.FromResult(AuthenticateResult.Fail($"Bad {Header} part '{pair}'."));
            claims.Add(new Claim(pair[..equals], pair[(equals + 1)..]));
        }
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName)));
    }

    /// <summary>The header value for a caller described by its parts.</summary>
    public static string Describe(string clientId, ActorKind kind, string? finess, string scopes, string? patient = null) =>
        $"{Caller.Claims.ClientId}={clientId};{Caller.Claims.ActorKind}={kind};"
        + (finess is null ? "" : $"{Caller.Claims.OrganizationFiness}={finess};")
        + $"{Caller.Claims.Scope}={scopes}"
        + (patient is null ? "" : $";{Caller.Claims.Patient}={patient}");
}
