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
/// Our own tokens, once validated, are remembered by this node until they expire (<see cref="ValidatedTokens"/>): a
/// client repeating its token pays a hash and a lookup instead of the RS256 check. A retired signing key still refuses
/// its tokens: at once on the node that retired it, within <see cref="SigningKeyStore.RefreshInterval"/> on the others.
/// </summary>
public sealed class FhirBearerHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory loggerFactory, UrlEncoder encoder,
    SigningKeyStore keys, ExternalProvider external, ValidatedTokens validated, JtiReplayStore grants)
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

        var ourIssuer = AuthorizationServer.IssuerFor(Context);
        var audience = FhirBase.Of(Context);
        var current = await keys.RefreshedAsync(Context.RequestAborted);
        if (validated.Find(token, ourIssuer, audience, current) is { } known)
        {
            if (await RevokedAsync(known.Identity, known.Caller.ClientId)) return AuthenticateResult.Fail(Revoked);
            Context.Items[typeof(Caller)] = known.Caller; // what Caller.Of would read again from these same claims
            return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(known.Identity), SchemeName));
        }

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
        var ours = SameIssuer(unverified.Issuer, ourIssuer);
        if (ours)
        {
            (identity, failure) = await ValidateOursAsync(handler, token, unverified, ourIssuer, audience, current);
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
        if (Caller.From(principal) is not { } caller)
            return AuthenticateResult.Fail("The access token lacks the client_id and actor_kind claims this gateway needs.");
        if (ours && await RevokedAsync(identity, caller.ClientId)) return AuthenticateResult.Fail(Revoked);
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    private const string Revoked = "The access token's grant was revoked (at the revocation endpoint, or a refresh token of it was used twice): authorize again.";

    /// <summary>Our access tokens of a grant (authorization code, refresh) die with it; client credentials have none.</summary>
    private async ValueTask<bool> RevokedAsync(ClaimsIdentity identity, string clientId) =>
        identity.FindFirst(OpenIddictHandlers.TokenIssuance.GrantClaim)?.Value is { } grant && await grants.IsGrantRevokedAsync(clientId, grant, Context.RequestAborted);

    private async Task<(ClaimsIdentity?, string?)> ValidateOursAsync(JsonWebTokenHandler handler, string token, JsonWebToken unverified, string issuer,
        string audience, SigningKeyStore.KeySet loaded)
    {
        var current = unverified.Kid is { } kid && loaded.Signing.Any(k => k.KeyId == kid)
            ? loaded
            : await keys.CurrentIncludingAsync(unverified.Kid, Context.RequestAborted);
        var parameters = new TokenValidationParameters
        {
            ValidIssuers = [issuer, issuer.TrimEnd('/')],
            ValidAudience = audience,
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
        if (!result.IsValid) return (null, Describe(result.Exception));
        // Remembered only when it makes a caller; the kid is the one whose signature was just checked.
        if (Caller.From(new ClaimsPrincipal(result.ClaimsIdentity)) is { } caller && result.SecurityToken is JsonWebToken checkedToken
            && checkedToken.Kid is { Length: > 0 } signedBy)
        {
            validated.Add(token, issuer, audience, signedBy, new DateTimeOffset(checkedToken.ValidTo, TimeSpan.Zero), result.ClaimsIdentity, caller);
        }
        return (result.ClaimsIdentity, null);
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
