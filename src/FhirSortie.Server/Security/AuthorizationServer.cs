using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace FhirSortie.Server.Security;

/// <summary>
/// Our OAuth 2.0 / SMART authorization server (OpenIddict 7.8), registered in one place: token endpoint
/// <see cref="TokenPath"/>, authorization endpoint <see cref="AuthorizePath"/> (passthrough: the SMART launch pages
/// answer it), JWKS <see cref="JwksPath"/>, revocation <see cref="RevokePath"/> (<see cref="TokenRevocation"/>), introspection <see cref="IntrospectPath"/>
/// (<see cref="TokenIntrospection"/>); client_credentials, authorization_code (PKCE S256 only) and refresh_token;
/// JWT access tokens typed at+jwt, audience = the FHIR base URL, five minutes at most, signed with the keys of
/// <see cref="SigningKeyStore"/>; and the bearer validation of /fhir (<see cref="FhirBearerHandler"/>).
///
/// Why OpenIddict's degraded mode rather than its EF Core stores: our clients are configuration (FhirSortie:Clients,
/// FhirSortie:ClientsFile), not rows an administrator edits, and the gateway already owns its schema and two dialects
/// without EF Core. Degraded mode leaves client authentication, redirect URI and scope checks to us, which we want
/// anyway (SMART's private_key_jwt differs from OpenIddict's defaults, scopes come per client); the price is that
/// authorization codes and refresh tokens are self-contained (encrypted with the shared database key) rather than
/// stored, so a code's single use is enforced through the same jti store as client assertions.
/// </summary>
public static class AuthorizationServer
{
    public const string TokenPath = "/auth/token";
    public const string AuthorizePath = "/auth/authorize";
    public const string JwksPath = "/auth/jwks";
    public const string RevokePath = "/auth/revoke";
    public const string IntrospectPath = "/auth/introspect";

    /// <summary>The endpoints where a client authenticates itself (secret or assertion).</summary>
    public static bool IsClientAuthenticationPath(PathString path) =>
        path.Equals(TokenPath, StringComparison.OrdinalIgnoreCase) || path.Equals(RevokePath, StringComparison.OrdinalIgnoreCase)
        || path.Equals(IntrospectPath, StringComparison.OrdinalIgnoreCase);

    /// <summary>A refresh token is good for one use within this time; each use gives a new one (OpenIddictHandlers.TokenIssuance).</summary>
    public static readonly TimeSpan RefreshTokenLifetime = TimeSpan.FromHours(8);

    /// <summary>Scopes every deployment understands, besides the ones configured clients may receive.</summary>
    public static readonly string[] StandardScopes = [Scopes.OpenId, Scopes.OfflineAccess, "online_access", "fhirUser", "launch", "launch/patient"];

    public static void AddFhirSortieAuthorization(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        var demoMode = DemoClients.IsOn(configuration, builder.Environment);
        var registry = ClientRegistry.FromConfiguration(configuration, demoMode);
        var auth = configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        if (auth.AccessTokenLifetimeSeconds is <= 0 or > 300)
            throw new InvalidOperationException("FhirSortie:Auth:AccessTokenLifetimeSeconds must be between 1 and 300.");
        if (auth.MaxFailedClientAuthentications < 0 || (auth.MaxFailedClientAuthentications > 0 && auth.FailedClientAuthenticationWindowSeconds <= 0))
            throw new InvalidOperationException("FhirSortie:Auth:MaxFailedClientAuthentications cannot be negative, and FailedClientAuthenticationWindowSeconds must be positive when it is set.");
        if (auth.MaxFailedPractitionerLogins < 0 || (auth.MaxFailedPractitionerLogins > 0 && auth.FailedPractitionerLoginWindowSeconds <= 0))
            throw new InvalidOperationException("FhirSortie:Auth:MaxFailedPractitionerLogins cannot be negative, and FailedPractitionerLoginWindowSeconds must be positive when it is set.");

        services.AddSingleton(registry);
        services.AddSingleton(new DemoMode(demoMode));
        services.Configure<AuthOptions>(configuration.GetSection(AuthOptions.Section));
        // Read when first needed (InitializeAuthorizationAsync): a malformed KEK ends the start with one line, not a stack trace.
        services.AddSingleton(_ => KeyEncryption.FromSetting(configuration[KeyEncryption.Setting], configuration[KeyEncryption.PreviousSetting]));
        services.AddSingleton<SigningKeyStore>();
        services.AddSingleton<ValidatedTokens>();
        services.AddSingleton<JtiReplayStore>();
        services.AddSingleton<ClientKeys>();
        services.AddSingleton<FailedClientAuthentications>();
        services.AddSingleton<FailedPractitionerLogins>();
        services.AddHttpClient(ClientKeys.HttpClientName, http => http.Timeout = TimeSpan.FromSeconds(5));
        services.AddSingleton<ExternalProvider>();

        services.AddOpenIddict().AddServer(server =>
        {
            server.SetTokenEndpointUris(TokenPath.TrimStart('/'))
                .SetAuthorizationEndpointUris(AuthorizePath.TrimStart('/'))
                .SetJsonWebKeySetEndpointUris(JwksPath.TrimStart('/'))
                .SetRevocationEndpointUris(RevokePath.TrimStart('/'))
                .SetIntrospectionEndpointUris(IntrospectPath.TrimStart('/'));
            server.AllowClientCredentialsFlow().AllowAuthorizationCodeFlow().AllowRefreshTokenFlow();
            server.RequireProofKeyForCodeExchange();
            server.Configure(options =>
            {
                // S256 only: "plain" would let an intercepted code be redeemed with the challenge itself.
                options.CodeChallengeMethods.Clear();
                options.CodeChallengeMethods.Add(CodeChallengeMethods.Sha256);
            });
            server.EnableDegradedMode();
            // Access tokens stay signed JWTs that resource servers can read; codes and refresh tokens are encrypted.
            server.DisableAccessTokenEncryption();
            server.SetAccessTokenLifetime(TimeSpan.FromSeconds(auth.AccessTokenLifetimeSeconds));
            server.SetAuthorizationCodeLifetime(TimeSpan.FromMinutes(2));
            server.SetRefreshTokenLifetime(RefreshTokenLifetime);
            server.RegisterScopes([.. StandardScopes, .. registry.AllScopes]);
            // OpenIddict compares requested scopes verbatim with the registered ones (ID2052), which refuses a client
            // asking for less than it is registered for; our handlers check them instead (ScopeNegotiation).
            server.DisableScopeValidation();
            // The same verbatim check at refresh (a narrower scope than granted is refused): TokenIssuance checks coverage.
            server.RemoveEventHandler(OpenIddictServerHandlers.Exchange.ValidateGrantedScopes.Descriptor);
            if (IssuerOf(configuration) is { } issuer) server.SetIssuer(issuer);

            var aspNetCore = server.UseAspNetCore().EnableAuthorizationEndpointPassthrough();
            // TLS usually ends at the load balancer in front of the gateway; set FhirSortie:Auth:RequireHttps where it does not.
            if (!configuration.GetValue<bool>("FhirSortie:Auth:RequireHttps")) aspNetCore.DisableTransportSecurityRequirement();

            foreach (var descriptor in OpenIddictHandlers.Descriptors.Concat(TokenRevocation.Descriptors).Concat(TokenIntrospection.Descriptors)) server.AddEventHandler(descriptor);
        });
        // The keys live in the database: they are read after the migrations (InitializeAsync) and handed to OpenIddict here.
        services.AddOptions<OpenIddictServerOptions>().Configure<SigningKeyStore>((options, keys) =>
        {
            var current = keys.Current;
            foreach (var key in current.Signing) options.SigningCredentials.Add(new Microsoft.IdentityModel.Tokens.SigningCredentials(key, Microsoft.IdentityModel.Tokens.SecurityAlgorithms.RsaSha256));
            foreach (var key in current.Encryption)
                options.EncryptionCredentials.Add(new Microsoft.IdentityModel.Tokens.EncryptingCredentials(key,
                    Microsoft.IdentityModel.Tokens.SecurityAlgorithms.Aes256KW, Microsoft.IdentityModel.Tokens.SecurityAlgorithms.Aes256CbcHmacSha512));
        });

        services.AddAuthentication(options =>
            {
                // The default scheme: /fhir authenticates with it, and in-process tests replace it with theirs.
                options.DefaultScheme = FhirBearerHandler.SchemeName;
                options.DefaultAuthenticateScheme = FhirBearerHandler.SchemeName;
                options.DefaultChallengeScheme = FhirBearerHandler.SchemeName;
                options.DefaultForbidScheme = FhirBearerHandler.SchemeName;
            })
            .AddScheme<AuthenticationSchemeOptions, FhirBearerHandler>(FhirBearerHandler.SchemeName, null);
        // Replaces the default provider (registered with TryAdd): OpenIddict's request handling is skipped on /fhir.
        services.AddHttpContextAccessor();
        services.AddSingleton<IAuthenticationSchemeProvider, FhirAuthenticationSchemes>();
    }

    /// <summary>
    /// Loads (or, on a new database, creates) the keys, and encrypts with the KEK what is not yet. Call after the
    /// migrations, before serving. False when the KEK is malformed, missing or wrong: the reason is written as one line
    /// on stderr, and the caller ends the process (exit code 2).
    /// </summary>
    public static async Task<bool> InitializeAuthorizationAsync(this WebApplication app, CancellationToken ct)
    {
        try
        {
            await app.Services.GetRequiredService<SigningKeyStore>().InitializeAsync(ct);
            await DataProtectionKeyEncryption.EncryptRowsAsync(app.Services.GetRequiredService<Storage.StorageDialect>(),
                app.Services.GetRequiredService<KeyEncryption>(), app.Logger, ct);
        }
        catch (KeyEncryptionException e)
        {
            // The fix is in this node's configuration: the message says which setting and which KEK; a stack trace would bury it.
            await Console.Error.WriteLineAsync($"FhirSortie cannot start: {e.Message}");
            return false;
        }
        if (app.Services.GetRequiredService<ClientRegistry>().All.Count == 0)
            app.Logger.LogWarning("No client is configured ({Clients}, {ClientsFile}): every token request will be refused (invalid_client) and /fhir answers 401 to all", ClientRegistry.ClientsSection, ClientRegistry.ClientsFileKey);
        if (app.Services.GetRequiredService<DemoMode>().On)
        {
            app.Logger.LogWarning("DEMO MODE: the demo clients (usmp-demo, csapa-demo...) are accepted with their PUBLIC secrets. Never in production.");
            await DemoSeeding.SeedOrganizationsAsync(app.Services, ct);
        }
        return true;
    }

    /// <summary>The configured issuer, or the origin of FhirSortie:PublicBaseUrl; null to take it from each request.</summary>
    public static Uri? IssuerOf(IConfiguration configuration)
    {
        if (configuration[$"{AuthOptions.Section}:Issuer"] is { Length: > 0 } issuer) return new Uri(issuer, UriKind.Absolute);
        if (configuration["FhirSortie:PublicBaseUrl"] is { Length: > 0 } publicBase)
        {
            var text = publicBase.TrimEnd('/');
            if (text.EndsWith(Rest.FhirBase.Path, StringComparison.Ordinal)) text = text[..^Rest.FhirBase.Path.Length];
            return new Uri(text + "/", UriKind.Absolute);
        }
        return null;
    }

    /// <summary>The issuer our tokens carry for this request (what OpenIddict writes in "iss").</summary>
    public static string IssuerFor(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<IOptionsMonitor<OpenIddictServerOptions>>().CurrentValue;
        if (options.Issuer is { } issuer) return issuer.AbsoluteUri;
        var request = context.Request;
        return $"{request.Scheme}://{request.Host}{request.PathBase}/";
    }

    /// <summary>The absolute URL of one of our endpoints (token, authorize, JWKS) as clients see it.</summary>
    public static string EndpointUrl(HttpContext context, string path) => IssuerFor(context).TrimEnd('/') + path;

    /// <summary>
    /// The principal an access token is issued for: the client acting for its organisation with the granted scopes,
    /// carrying the claims of the <see cref="Caller"/> contract. A SMART launch adds the patient in context and the
    /// user (fhirUser). The audience (the FHIR base URL) is added at sign-in for every token.
    /// </summary>
    /// <param name="actsFor">For a client that acts for its user (<see cref="Client.ActsForUser"/>): the user's kind and FINESS.</param>
    public static ClaimsPrincipal BuildPrincipal(Client client, IEnumerable<string> grantedScopes, string? subject = null, string? patient = null, string? fhirUser = null,
        (string Kind, string Finess)? actsFor = null)
    {
        var identity = new ClaimsIdentity(OpenIddict.Server.AspNetCore.OpenIddictServerAspNetCoreDefaults.AuthenticationScheme, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, subject ?? client.ClientId);
        identity.SetClaim(Caller.Claims.ActorKind, actsFor?.Kind ?? client.Kind.ToString());
        if ((actsFor?.Finess ?? client.OrganizationFiness) is { } finess) identity.SetClaim(Caller.Claims.OrganizationFiness, finess);
        if (patient is not null) identity.SetClaim(Caller.Claims.Patient, patient);
        if (fhirUser is not null) identity.SetClaim(Caller.Claims.FhirUser, fhirUser);
        var principal = new ClaimsPrincipal(identity);
        principal.SetScopes(grantedScopes.Distinct(StringComparer.Ordinal));
        principal.SetPresenters(client.ClientId);
        return principal;
    }
}

/// <summary>Whether demo mode is on for this process (decided once at start, see <see cref="DemoClients.IsOn"/>).</summary>
public sealed record DemoMode(bool On);
