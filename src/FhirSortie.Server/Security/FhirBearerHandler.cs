using System.Net;
using System.Security.Claims;
using System.Text.Encodings.Web;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Server.Security;

/// <summary>
/// Bearer tokens on /fhir: our own access tokens (issuer, audience = the FHIR base URL, lifetime, signature by a
/// database key, RS256 only, typ at+jwt) or an external provider's (<see cref="ExternalProvider"/>). The principal must
/// carry the <see cref="Caller"/> claims. Failures answer 401 with WWW-Authenticate and an OperationOutcome; a token
/// in the query string is refused (it would end up in logs and browser histories).
/// </summary>
public sealed class FhirBearerHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory loggerFactory, UrlEncoder encoder,
    SigningKeyStore keys, ExternalProvider external)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    public const string SchemeName = "FhirBearer";

    /// <summary>Tolerated clock difference between nodes; small, since tokens live five minutes.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(30);

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (Request.Query.ContainsKey("access_token"))
            return AuthenticateResult.Fail("Access tokens in the query string are refused; send them in the Authorization header.");
        var header = Request.Headers.Authorization.ToString();
        if (header.Length == 0) return AuthenticateResult.NoResult();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return AuthenticateResult.Fail("Only Bearer authorization is accepted.");
        var token = header["Bearer ".Length..].Trim();

        var handler = new JsonWebTokenHandler();
        JsonWebToken unverified;
        try
        {
            unverified = handler.ReadJsonWebToken(token);
        }
        catch (ArgumentException)
        {
            return AuthenticateResult.Fail("The access token is not a JWT.");
        }

        ClaimsIdentity? identity;
        string? failure;
        var ourIssuer = AuthorizationServer.IssuerFor(Context);
        if (SameIssuer(unverified.Issuer, ourIssuer))
        {
            (identity, failure) = await ValidateOursAsync(handler, token, unverified, ourIssuer);
        }
        else if (external.Handles(unverified.Issuer))
        {
            (identity, failure) = await external.ValidateAsync(token, unverified, FhirBase.Of(Context), Context.RequestAborted);
        }
        else
        {
            return AuthenticateResult.Fail("The access token was issued by an issuer this gateway does not trust.");
        }
        if (identity is null) return AuthenticateResult.Fail(failure ?? "The access token is not valid.");

        var principal = new ClaimsPrincipal(identity);
        if (Caller.From(principal) is null)
            return AuthenticateResult.Fail("The access token lacks the client_id and actor_kind claims this gateway needs.");
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    private async Task<(ClaimsIdentity?, string?)> ValidateOursAsync(JsonWebTokenHandler handler, string token, JsonWebToken unverified, string issuer)
    {
        var current = await keys.CurrentIncludingAsync(unverified.Kid, Context.RequestAborted);
        var parameters = new TokenValidationParameters
        {
            ValidIssuers = [issuer, issuer.TrimEnd('/')],
            ValidAudience = FhirBase.Of(Context),
            IssuerSigningKeys = current.Signing,
            // Our own tokens are RS256 only: anything else (including "none") did not come from us.
            ValidAlgorithms = [SecurityAlgorithms.RsaSha256],
            ValidTypes = ["at+jwt", "application/at+jwt"],
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = ClockSkew,
            AuthenticationType = SchemeName,
        };
        var result = await handler.ValidateTokenAsync(token, parameters);
        return result.IsValid ? (result.ClaimsIdentity, null) : (null, Describe(result.Exception));
    }

    /// <summary>What a client may learn about why its token was refused (no token content).</summary>
    public static string Describe(Exception? e) => e switch
    {
        SecurityTokenExpiredException => "The access token has expired.",
        SecurityTokenNotYetValidException => "The access token is not valid yet.",
        SecurityTokenInvalidAudienceException => "The access token was not issued for this FHIR server (audience).",
        SecurityTokenInvalidIssuerException => "The access token's issuer is not trusted.",
        SecurityTokenInvalidAlgorithmException => "The access token's signing algorithm is not accepted.",
        SecurityTokenInvalidTypeException => "The token is not an access token (typ).",
        SecurityTokenSignatureKeyNotFoundException => "The access token was signed with an unknown key.",
        SecurityTokenInvalidSignatureException => "The access token's signature is not valid.",
        SecurityTokenNoExpirationException => "The access token has no expiry.",
        _ => "The access token is not valid.",
    };

    private static bool SameIssuer(string? a, string b) =>
        a is not null && string.Equals(a.TrimEnd('/'), b.TrimEnd('/'), StringComparison.Ordinal);

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        var failure = result.Failure?.Message;
        var realm = "realm=\"FhirSortie\"";
        Response.Headers.WWWAuthenticate = failure is null
            ? $"Bearer {realm}"
            : $"Bearer {realm}, error=\"invalid_token\", error_description=\"{failure.Replace("\"", "'", StringComparison.Ordinal)}\"";
        await FhirResponse.WriteErrorAsync(Context, HttpStatusCode.Unauthorized, Outcomes.Single(
            OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Login,
            failure ?? "This FHIR server needs an access token (Authorization: Bearer ...); see .well-known/smart-configuration."));
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer realm=\"FhirSortie\", error=\"insufficient_scope\"";
        await FhirResponse.WriteErrorAsync(Context, HttpStatusCode.Forbidden, Outcomes.Single(
            OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Forbidden, "The access token does not allow this request."));
    }
}
