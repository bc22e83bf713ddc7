using OpenIddict.Abstractions;
using OpenIddict.Server;
using static OpenIddict.Abstractions.OpenIddictConstants;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace FhirSortie.Server.Security;

/// <summary>
/// The introspection endpoint (RFC 7662, SMART App Launch 2 "Token Introspection", <see cref="AuthorizationServer.IntrospectPath"/>):
/// a confidential client asks whether one of its tokens is still good and what it carries. OpenIddict parses the
/// request, validates the client assertion and the token (signature, expiry, and that the token was issued to this
/// client: another client gets active: false), and answers active, client_id, sub, exp, iat; degraded mode leaves
/// client authentication and what only this gateway knows to us: a token of a revoked grant, or a refresh token already
/// redeemed, is inactive, and an active token also names its scope and SMART launch context (patient, fhirUser).
/// Public apps cannot introspect (RFC 7662 §2.1 asks for the caller to be authorized; they hold no credential).
/// This gateway is the only resource server of its tokens, so no other party introspects them.
/// </summary>
public static class TokenIntrospection
{
    public static IEnumerable<OpenIddictServerHandlerDescriptor> Descriptors =>
    [
        .. EndpointClientAuthentication.Descriptors<ValidateIntrospectionRequestContext>(
            OpenIddictServerHandlers.Introspection.ValidateAuthentication.Descriptor.Order, publicAllowed: false,
            publicRefused: "Only a confidential client (a secret or a signed client assertion) may introspect tokens."),
        Answer.Descriptor,
    ];

    /// <summary>Inactive when revoked or spent; otherwise the SMART context claims are added to OpenIddict's answer.</summary>
    public sealed class Answer(JtiReplayStore tokens) : IOpenIddictServerHandler<HandleIntrospectionRequestContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<HandleIntrospectionRequestContext>()
                .UseSingletonHandler<Answer>()
                .SetOrder(OpenIddictServerHandlers.Introspection.AttachMetadataClaims.Descriptor.Order + 500)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public async ValueTask HandleAsync(HandleIntrospectionRequestContext context)
        {
            if (context.GenericTokenPrincipal is not { } principal) return;
            // OpenIddict checked that the token was issued to the caller, so the caller's id is the token's client.
            var clientId = EndpointClientAuthentication.ClientIdOf(context);
            var ct = context.CancellationToken;
            if (principal.GetClaim(OpenIddictHandlers.TokenIssuance.GrantClaim) is { } grant && await tokens.IsGrantRevokedAsync(clientId, grant, ct))
            {
                context.Reject(Errors.InvalidToken, "The grant of this token was revoked.");
                return;
            }
            if (principal.GetTokenType() == TokenTypeIdentifiers.RefreshToken
                && principal.GetClaim(OpenIddictHandlers.TokenIssuance.RefreshTokenIdClaim) is { } refreshId
                && await tokens.IsRefreshTokenSpentAsync(clientId, refreshId, ct))
            {
                context.Reject(Errors.InvalidToken, "This refresh token was already redeemed.");
                return;
            }
            // SMART requires scope in the answer; OpenIddict returns it only to callers listed as audiences (resource servers).
            foreach (var scope in principal.GetScopes()) context.Scopes.Add(scope);
            foreach (var claim in (string[])[Caller.Claims.Patient, Caller.Claims.FhirUser])
            {
                if (principal.GetClaim(claim) is { } value) context.Claims[claim] = value;
            }
        }
    }
}
