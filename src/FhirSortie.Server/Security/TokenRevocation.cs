using OpenIddict.Abstractions;
using OpenIddict.Server;
using static OpenIddict.Abstractions.OpenIddictConstants;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace FhirSortie.Server.Security;

/// <summary>
/// The revocation endpoint (RFC 7009, <see cref="AuthorizationServer.RevokePath"/>): an app that signs its user out, or
/// a CSAPA whose workstation was lost, revokes its refresh token, and every token of that authorization dies with it.
/// OpenIddict parses the request, validates the client assertion and the token (signature, expiry, and that the token
/// was issued to this client); degraded mode leaves client authentication and the revocation itself to us.
///
/// What is revoked is the grant the token belongs to (the chain of refresh tokens born from one authorization, and
/// their access tokens), through the same revoked-grant rows as a refresh token used twice: the gateway refuses its
/// access tokens at once on this node and within <see cref="JtiReplayStore.RevokedGrantsRefresh"/> on the others.
/// Client-credentials access tokens belong to no grant: they are answered unsupported_token_type (RFC 7009 2.2.1) and
/// live out their five minutes; a backend service that must stop acting simply stops asking for tokens.
/// </summary>
public static class TokenRevocation
{
    /// <summary>Client authentication (a public app identifies itself by its client_id), then the revocation.</summary>
    public static IEnumerable<OpenIddictServerHandlerDescriptor> Descriptors =>
    [
        .. EndpointClientAuthentication.Descriptors<ValidateRevocationRequestContext>(
            OpenIddictServerHandlers.Revocation.ValidateAuthentication.Descriptor.Order, publicAllowed: true, publicRefused: ""),
        GrantRevocation.Descriptor,
    ];

    /// <summary>Revokes the grant of the token (refresh or access token); a token of no grant is unsupported_token_type.</summary>
    public sealed class GrantRevocation(JtiReplayStore revoked, TimeProvider clock, ILogger<GrantRevocation> logger)
        : IOpenIddictServerHandler<HandleRevocationRequestContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<HandleRevocationRequestContext>()
                .UseSingletonHandler<GrantRevocation>()
                .SetOrder(OpenIddictServerHandlers.Revocation.AttachPrincipal.Descriptor.Order + 500)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public async ValueTask HandleAsync(HandleRevocationRequestContext context)
        {
            var principal = context.GenericTokenPrincipal;
            if (principal?.GetClaim(OpenIddictHandlers.TokenIssuance.GrantClaim) is not { } grant)
            {
                context.Reject(Errors.UnsupportedTokenType,
                    "This token belongs to no authorization (client_credentials): it cannot be revoked and expires within five minutes.");
                return;
            }
            var clientId = EndpointClientAuthentication.ClientIdOf(context);
            // Every token of the grant was issued before now, so none outlives now + the refresh token lifetime.
            await revoked.RevokeGrantAsync(clientId!, grant, clock.GetUtcNow() + AuthorizationServer.RefreshTokenLifetime, context.CancellationToken);
            Audit.AuthenticationAudit.Concerns(context, principal);
            logger.LogInformation("Grant revoked at the revocation endpoint by client {ClientId} ({TokenType})", clientId, principal.GetTokenType());
        }
    }
}
