using System.Collections.Immutable;
using Microsoft.AspNetCore;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace FhirSortie.Server.Security;

/// <summary>Our additions to OpenIddict's pipeline; see <see cref="AuthorizationServer"/> for why degraded mode.</summary>
public static class OpenIddictHandlers
{
    public static IEnumerable<OpenIddictServerHandlerDescriptor> Descriptors =>
    [
        ClientAssertionValidation.Descriptor,
        ServerTokenKeys.Descriptor,
        TokenClientAuthentication.Descriptor,
        AuthorizationClientValidation.Descriptor,
        TokenIssuance.Descriptor,
        SignInAudience.Descriptor,
        CurrentKeys.Descriptor,
        PublishedKeys.Descriptor,
    ];

    internal const string AssertionClientProperty = "fhirsortie:assertion_client";

    /// <summary>
    /// SMART Backend Services client assertions (private_key_jwt), validated here in full rather than by OpenIddict:
    /// OpenIddict 7.8 only accepts "typ: client-authentication+jwt" with the issuer as audience and, in degraded mode,
    /// has no client keys (stack-notes). We accept typ JWT (or client-authentication+jwt, or none), RS384/ES384/RS256/ES256
    /// only, iss = sub = a configured client whose inline or fetched JWKS verifies the signature, aud = our token
    /// endpoint URL (or the URL of the revocation or introspection endpoint it is sent to), exp in the future and at most five minutes ahead, and a jti never seen before (database, all nodes).
    /// Setting the principal (typed as a client assertion) makes OpenIddict's own IdentityModel validation step aside;
    /// its later checks (well-known claims, iss = sub, audience) still run on it.
    /// </summary>
    public sealed class ClientAssertionValidation(ClientRegistry registry, ClientKeys clientKeys, JtiReplayStore jtis, TimeProvider clock, ILogger<ClientAssertionValidation> logger)
        : IOpenIddictServerHandler<ValidateTokenContext>
    {
        public static readonly string[] Algorithms =
            [SecurityAlgorithms.RsaSha384, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.RsaSha256, SecurityAlgorithms.EcdsaSha256];

        public static readonly TimeSpan MaxLifetime = TimeSpan.FromMinutes(5);
        private static readonly TimeSpan Skew = TimeSpan.FromSeconds(30);

        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<ValidateTokenContext>()
                .UseScopedHandler<ClientAssertionValidation>()
                .SetOrder(OpenIddictServerHandlers.Protection.ResolveTokenValidationParameters.Descriptor.Order + 500)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public async ValueTask HandleAsync(ValidateTokenContext context)
        {
            if (context.ValidTokenTypes.Count != 1 || context.ValidTokenTypes.Single() != TokenTypeIdentifiers.Private.ClientAssertion) return;
            var http = context.Transaction.GetHttpRequest()?.HttpContext
                ?? throw new InvalidOperationException("Client assertions are only validated inside an HTTP request.");
            var ct = http.RequestAborted;

            void Refuse(string why)
            {
                // The client learns only that its assertion was refused; the reason goes to the log (no token content).
                logger.LogInformation("Client assertion refused: {Reason}", why);
                context.Reject(error: Errors.InvalidClient, description: "The client assertion is not valid: " + why);
            }

            var handler = new JsonWebTokenHandler();
            if (!handler.CanReadToken(context.Token)) { Refuse("not a JWT."); return; }
            JsonWebToken unverified;
            try
            {
                unverified = handler.ReadJsonWebToken(context.Token);
            }
            catch (ArgumentException)
            {
                Refuse("not a JWT.");
                return;
            }
            var client = registry.Find(unverified.Issuer);
            if (client is null) { Refuse("iss is not a known client."); return; }
            if (unverified.Subject != client.ClientId) { Refuse("sub differs from iss."); return; }

            var keys = await clientKeys.ForAsync(client, unverified.Kid, ct);
            if (keys.Count == 0) { Refuse("the client has no registered public key."); return; }
            var tokenUrl = AuthorizationServer.EndpointUrl(http, AuthorizationServer.TokenPath);
            // At the revocation and introspection endpoints, RFC 7523 clients often name the endpoint they call instead.
            string[] audiences = [.. new[] { tokenUrl, AuthorizationServer.EndpointUrl(http, http.Request.Path.Value ?? "") }.Distinct(StringComparer.Ordinal)];
            var parameters = new TokenValidationParameters
            {
                ValidIssuer = client.ClientId,
                ValidAudiences = audiences,
                IssuerSigningKeys = keys,
                ValidAlgorithms = Algorithms,
                // SMART sends "JWT"; RFC 7523bis types them client-authentication+jwt; many clients send no typ.
                ValidTypes = ["JWT", "client-authentication+jwt", "application/client-authentication+jwt"],
                TryAllIssuerSigningKeys = unverified.Kid is not { Length: > 0 },
                RequireExpirationTime = true,
                RequireSignedTokens = true,
                ClockSkew = Skew,
                LifetimeValidator = null,
                NameClaimType = Claims.Subject,
            };
            var result = await handler.ValidateTokenAsync(context.Token, parameters);
            if (!result.IsValid)
            {
                Refuse(result.Exception switch
                {
                    SecurityTokenExpiredException => "expired.",
                    SecurityTokenInvalidAudienceException => "aud must be the token endpoint URL " + tokenUrl + (audiences.Length > 1 ? " or " + audiences[1] : "") + ".",
                    SecurityTokenSignatureKeyNotFoundException => "no registered key matches its kid.",
                    SecurityTokenInvalidSignatureException => "bad signature.",
                    SecurityTokenInvalidAlgorithmException => "alg must be one of " + string.Join(", ", Algorithms) + ".",
                    SecurityTokenInvalidTypeException => "typ must be JWT.",
                    _ => result.Exception?.GetType().Name ?? "invalid.",
                });
                return;
            }
            var token = (JsonWebToken)result.SecurityToken;
            var now = clock.GetUtcNow();
            if (token.ValidTo > now.UtcDateTime + MaxLifetime + Skew) { Refuse("exp is more than five minutes ahead."); return; }
            if (string.IsNullOrEmpty(token.Id)) { Refuse("jti is missing."); return; }
            if (!await jtis.TryUseAsync(client.ClientId, token.Id, new DateTimeOffset(token.ValidTo, TimeSpan.Zero) + Skew, ct))
            {
                Refuse("its jti was already used.");
                return;
            }

            var identity = new ClaimsIdentity(result.ClaimsIdentity.Claims, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme, Claims.Subject, Claims.Role);
            var principal = new ClaimsPrincipal(identity);
            principal.SetTokenType(TokenTypeIdentifiers.Private.ClientAssertion);
            principal.SetAudiences(token.Audiences.ToImmutableArray());
            // OpenIddict's own audience check only expects its issuer; the SMART audience is the token endpoint URL.
            foreach (var audience in audiences) context.ValidAudiences.Add(audience);
            context.Principal = principal;
            context.Transaction.Properties[AssertionClientProperty] = client.ClientId;
        }
    }

    /// <summary>
    /// Codes and refresh tokens are validated with the database keys as they are now (another node may have rotated
    /// since this one started), not only those OpenIddict was given at start.
    /// </summary>
    public sealed class ServerTokenKeys(SigningKeyStore keys) : IOpenIddictServerHandler<ValidateTokenContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<ValidateTokenContext>()
                .UseSingletonHandler<ServerTokenKeys>()
                .SetOrder(OpenIddictServerHandlers.Protection.ResolveTokenValidationParameters.Descriptor.Order + 600)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public async ValueTask HandleAsync(ValidateTokenContext context)
        {
            if (context.ValidTokenTypes.Contains(TokenTypeIdentifiers.Private.ClientAssertion)) return;
            string? kid = null;
            try
            {
                kid = new JsonWebToken(context.Token).Kid;
            }
            catch (ArgumentException)
            {
                // Not a JWT: OpenIddict rejects it next.
            }
            var current = await keys.CurrentIncludingAsync(kid, CancellationToken.None);
            context.TokenValidationParameters.IssuerSigningKeys = current.Signing;
            context.TokenValidationParameters.TokenDecryptionKeys = current.Encryption;
        }
    }

    /// <summary>
    /// Client authentication at the token endpoint (degraded mode leaves it to us): a client assertion validated above,
    /// or the client's secret (client_secret_basic or client_secret_post); public clients only redeem codes with PKCE.
    /// Requested scopes must be covered by the client's AllowedScopes (<see cref="ScopeNegotiation"/>).
    /// </summary>
    public sealed class TokenClientAuthentication(ClientRegistry registry) : IOpenIddictServerHandler<ValidateTokenRequestContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<ValidateTokenRequestContext>()
                .UseSingletonHandler<TokenClientAuthentication>()
                .SetOrder(OpenIddictServerHandlers.Exchange.ValidateAuthentication.Descriptor.Order + 500)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public ValueTask HandleAsync(ValidateTokenRequestContext context)
        {
            // A public client only redeems what its own authorization gave it: codes (with PKCE) and refresh tokens.
            var publicAllowed = context.Request.IsAuthorizationCodeGrantType() || context.Request.IsRefreshTokenGrantType();
            if (Authenticate(context, registry, publicAllowed, "A public client can only redeem authorization codes (with PKCE).") is not { } client)
                return default;

            if (context.Request.IsClientCredentialsGrantType())
            {
                if (!client.IsConfidential)
                {
                    context.Reject(Errors.UnauthorizedClient, "client_credentials needs a confidential client.");
                    return default;
                }
                var requested = context.Request.GetScopes();
                if (requested.IsEmpty)
                {
                    context.Reject(Errors.InvalidScope, "Ask for at least one scope (SMART: system/Type.rs...).");
                    return default;
                }
                if (ScopeNegotiation.FirstRefused(requested, client.AllowedScopes) is { } refused)
                {
                    context.Reject(Errors.InvalidScope, ScopeNegotiation.Refusal(refused));
                    return default;
                }
            }
            return default;
        }

        /// <summary>
        /// The client of a token or revocation request, authenticated by a client assertion validated above or by its
        /// secret; a public client (no secret, no keys) only where <paramref name="publicAllowed"/>. Null once rejected.
        /// </summary>
        internal static Client? Authenticate(BaseValidatingClientContext context, ClientRegistry registry, bool publicAllowed, string publicRefused)
        {
            var client = registry.Find(context.ClientId);
            if (client is null)
            {
                context.Reject(Errors.InvalidClient, "Unknown client.");
                return null;
            }
            var assertionClient = context.Transaction.Properties.TryGetValue(AssertionClientProperty, out var value) ? value as string : null;
            if (!string.IsNullOrEmpty(context.Transaction.Request?.ClientAssertion))
            {
                if (assertionClient != client.ClientId)
                {
                    context.Reject(Errors.InvalidClient, "The client assertion does not authenticate this client.");
                    return null;
                }
            }
            else if (client.Secret is not null)
            {
                if (context.ClientSecret is null || !FixedTimeEquals(context.ClientSecret, client.Secret))
                {
                    context.Reject(Errors.InvalidClient, "Bad client credentials.");
                    return null;
                }
            }
            else if (client.IsConfidential)
            {
                context.Reject(Errors.InvalidClient, "This client authenticates with a signed client assertion (private_key_jwt).");
                return null;
            }
            else if (!publicAllowed)
            {
                context.Reject(Errors.UnauthorizedClient, publicRefused);
                return null;
            }
            EndpointClientAuthentication.Remember(context, client);
            return client;
        }

        private static bool FixedTimeEquals(string given, string expected) =>
            CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
    }

    /// <summary>
    /// Authorization requests (degraded mode leaves these checks to us): a configured client, one of its registered
    /// redirect URIs exactly, and scopes it is allowed. The launch pages then answer the request (passthrough).
    /// </summary>
    public sealed class AuthorizationClientValidation(ClientRegistry registry) : IOpenIddictServerHandler<ValidateAuthorizationRequestContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<ValidateAuthorizationRequestContext>()
                .UseSingletonHandler<AuthorizationClientValidation>()
                .SetOrder(OpenIddictServerHandlers.Authentication.ValidateClientRedirectUri.Descriptor.Order + 500)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public ValueTask HandleAsync(ValidateAuthorizationRequestContext context)
        {
            var client = registry.Find(context.ClientId);
            if (client is null)
            {
                context.Reject(Errors.InvalidClient, "Unknown client.");
                return default;
            }
            if (context.RedirectUri is null || !client.RedirectUris.Any(u => string.Equals(u.OriginalString, context.RedirectUri, StringComparison.Ordinal)))
            {
                context.Reject(Errors.InvalidRequest, "redirect_uri is not registered for this client.");
                return default;
            }
            if (ScopeNegotiation.FirstRefused(context.Request.GetScopes(), client.AllowedScopes) is { } refused)
            {
                context.Reject(Errors.InvalidScope, ScopeNegotiation.Refusal(refused));
                return default;
            }
            return default;
        }
    }

    /// <summary>
    /// Answers token requests (no passthrough needed): client_credentials gets a token for the client itself; a code
    /// or refresh token gets a new token for the principal it carries, with the client's current kind and FINESS.
    /// </summary>
    public sealed class TokenIssuance(ClientRegistry registry, JtiReplayStore used, TimeProvider clock, ILogger<TokenIssuance> logger) : IOpenIddictServerHandler<HandleTokenRequestContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<HandleTokenRequestContext>()
                .UseSingletonHandler<TokenIssuance>()
                .SetOrder(int.MinValue + 100_000)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public async ValueTask HandleAsync(HandleTokenRequestContext context)
        {
            var client = registry.Find(context.ClientId)!;
            if (context.Request.IsClientCredentialsGrantType())
            {
                context.SignIn(AuthorizationServer.BuildPrincipal(client, context.Request.GetScopes()));
                return;
            }
            var previous = context.AuthorizationCodePrincipal ?? context.RefreshTokenPrincipal;
            if (previous is null) return;
            var granted = previous.GetScopes();
            var requested = context.Request.GetScopes();
            // A refresh may narrow the scopes, never widen them (RFC 6749 §6): what the grant covers, else invalid_scope,
            // checked before the refresh token is spent so that the client can ask again.
            if (ScopeNegotiation.FirstRefused(requested, granted) is { } widened)
            {
                context.Reject(Errors.InvalidScope, ScopeNegotiation.Refusal(widened, "this grant"));
                return;
            }
            // Degraded mode stores no tokens, so OpenIddict cannot see a code or a refresh token redeemed twice: the jti
            // store does, on every node.
            if (context.RefreshTokenPrincipal is { } refresh && await RedeemRefreshTokenAsync(context, client, refresh) is { } refused)
            {
                // The refused refresh concerns the grant's patient: the attempt shows in their access report.
                Audit.AuthenticationAudit.Concerns(context, refresh);
                context.Reject(Errors.InvalidGrant, refused);
                return;
            }
            if (context.AuthorizationCodePrincipal is { } code)
            {
                var id = code.GetTokenId() ?? code.GetClaim(Claims.JwtId) ?? code.GetClaim(AuthorizeEndpoint.CodeIdClaim);
                var expires = code.GetExpirationDate() ?? DateTimeOffset.UtcNow.AddMinutes(10);
                if (id is null)
                {
                    context.Reject(Errors.InvalidGrant, "The authorization code carries no identifier (jti), so its single use cannot be enforced.");
                    return;
                }
                if (!await used.TryUseAsync("code:" + client.ClientId, id, expires, CancellationToken.None))
                {
                    context.Reject(Errors.InvalidGrant, "The authorization code was already used.");
                    return;
                }
            }
            var scopes = requested.IsEmpty ? granted : requested;
            var principal = AuthorizationServer.BuildPrincipal(client, scopes,
                subject: previous.GetClaim(Claims.Subject),
                patient: previous.GetClaim(Caller.Claims.Patient),
                fhirUser: previous.GetClaim(Caller.Claims.FhirUser),
                // The portal's grant acts for the user's organisation, settled at authorization (AuthorizeEndpoint).
                actsFor: client.ActsForUser && previous.GetClaim(Caller.Claims.ActorKind) is { } kind && previous.GetClaim(Caller.Claims.OrganizationFiness) is { } finess
                    ? (kind, finess) : null);
            // The refresh token issued with this answer (with offline_access): its own id, and the grant it continues.
            // The refresh token's id stays in it; the grant also goes into the access token (SignInAudience), so that the
            // gateway refuses it once the grant is revoked (FhirBearerHandler).
            principal.SetClaim(RefreshTokenIdClaim, Guid.NewGuid().ToString("N"));
            principal.SetClaim(GrantClaim, previous.GetClaim(GrantClaim) ?? Guid.NewGuid().ToString("N"));
            context.SignIn(principal);
        }

        public const string RefreshTokenIdClaim = "refresh_id";
        public const string GrantClaim = "grant_id";

        /// <summary>
        /// Rotation (OpenIddict rolls refresh tokens: every refresh answers a new one): a refresh token is good once.
        /// A second use revokes the whole grant, so both the thief and the client must authorize again (RFC 9700
        /// 4.14.2); a client that lost a refresh answer on the network is in the same case. Returns why it is refused.
        /// </summary>
        private async Task<string?> RedeemRefreshTokenAsync(HandleTokenRequestContext context, Client client, System.Security.Claims.ClaimsPrincipal refresh)
        {
            var id = refresh.GetClaim(RefreshTokenIdClaim);
            var grant = refresh.GetClaim(GrantClaim);
            if (id is null || grant is null) return "The refresh token carries no identifier, so its single use cannot be enforced: authorize again.";
            // The jti store's clock: it compares the revocation's expiry with its own now.
            var now = clock.GetUtcNow();
            var expires = refresh.GetExpirationDate() ?? now + AuthorizationServer.RefreshTokenLifetime;
            // Every token of the grant was issued before now, so none outlives now + the lifetime.
            var use = await used.UseRefreshTokenAsync(client.ClientId, id, grant, expires, now + AuthorizationServer.RefreshTokenLifetime,
                context.CancellationToken);
            // A theft signal for the security officer: the log line names the client, never the token or the patient.
            if (use == JtiReplayStore.RefreshUse.Reused)
                logger.LogWarning("A refresh token of client {ClientId} was used twice: its grant is revoked (stolen token, or a client that lost an answer)", client.ClientId);
            return use switch
            {
                JtiReplayStore.RefreshUse.First => null,
                JtiReplayStore.RefreshUse.Reused => "The refresh token was already used: its grant is revoked, authorize again.",
                _ => "The grant of this refresh token was revoked (at the revocation endpoint, or a refresh token of it was used twice): authorize again.",
            };
        }
    }

    /// <summary>
    /// Every token: audience = the FHIR base URL; the Caller claims go into the access token (and patient/fhirUser
    /// also into the token response and the id_token, as SMART asks).
    /// </summary>
    public sealed class SignInAudience : IOpenIddictServerHandler<ProcessSignInContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<ProcessSignInContext>()
                .UseSingletonHandler<SignInAudience>()
                .SetOrder(int.MinValue + 100_000)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public ValueTask HandleAsync(ProcessSignInContext context)
        {
            var http = context.Transaction.GetHttpRequest()?.HttpContext;
            if (http is null || context.Principal is null) return default;
            context.Principal.SetResources(Rest.FhirBase.Of(http));
            foreach (var claim in context.Principal.Claims)
            {
                claim.SetDestinations(claim.Type switch
                {
                    Caller.Claims.Patient or Caller.Claims.FhirUser => [Destinations.AccessToken, Destinations.IdentityToken],
                    Claims.Name or Claims.Subject => [Destinations.AccessToken, Destinations.IdentityToken],
                    // Only for the server: they stay in the code or refresh token that carries them.
                    TokenIssuance.RefreshTokenIdClaim or AuthorizeEndpoint.CodeIdClaim => [],
                    // The grant an access token belongs to: refused once the grant is revoked (revocation, or a refresh token used twice).
                    TokenIssuance.GrantClaim => [Destinations.AccessToken],
                    _ => [Destinations.AccessToken],
                });
            }
            if (context.EndpointType == OpenIddictServerEndpointType.Token && context.Principal.GetClaim(Caller.Claims.Patient) is { } patient)
                context.Parameters[Caller.Claims.Patient] = patient;
            // OpenIddict only answers "scope" when the grant differs from the request; SMART Backend Services requires it always.
            if (context.EndpointType == OpenIddictServerEndpointType.Token)
                context.Parameters[Parameters.Scope] = string.Join(' ', context.Principal.GetScopes());
            // The record of the token, or of the code that will be exchanged for one, names the launch's patient and user.
            if (context.EndpointType is OpenIddictServerEndpointType.Token or OpenIddictServerEndpointType.Authorization)
                Audit.AuthenticationAudit.Concerns(context, context.Principal);
            return default;
        }
    }

    /// <summary>New tokens are signed (and codes encrypted) with the newest database keys, so a rotation applies on every node.</summary>
    public sealed class CurrentKeys(SigningKeyStore keys) : IOpenIddictServerHandler<GenerateTokenContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<GenerateTokenContext>()
                .UseSingletonHandler<CurrentKeys>()
                .SetOrder(OpenIddictServerHandlers.Protection.AttachSecurityCredentials.Descriptor.Order + 500)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public ValueTask HandleAsync(GenerateTokenContext context)
        {
            var current = keys.Current;
            context.SigningCredentials = current.SigningCredentials;
            if (context.EncryptionCredentials is not null) context.EncryptionCredentials = current.EncryptingCredentials;
            return default;
        }
    }

    /// <summary>The JWKS endpoint publishes the database's current public signing keys (not only those known at start).</summary>
    public sealed class PublishedKeys(SigningKeyStore keys) : IOpenIddictServerHandler<HandleJsonWebKeySetRequestContext>
    {
        public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
            OpenIddictServerHandlerDescriptor.CreateBuilder<HandleJsonWebKeySetRequestContext>()
                .UseSingletonHandler<PublishedKeys>()
                .SetOrder(int.MaxValue - 100_000)
                .SetType(OpenIddictServerHandlerType.Custom)
                .Build();

        public async ValueTask HandleAsync(HandleJsonWebKeySetRequestContext context)
        {
            await keys.LoadAsync(CancellationToken.None);
            context.Keys.Clear();
            foreach (var key in keys.Current.Signing)
            {
                var jwk = JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(key.Rsa.ExportParameters(false)) { KeyId = key.KeyId });
                context.Keys.Add(new JsonWebKey
                {
                    Kid = key.KeyId,
                    Kty = JsonWebAlgorithmsKeyTypes.RSA,
                    Use = JsonWebKeyUseNames.Sig,
                    Alg = SecurityAlgorithms.RsaSha256,
                    E = jwk.E,
                    N = jwk.N,
                });
            }
        }
    }
}
