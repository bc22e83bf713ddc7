using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;

namespace FhirSortie.Server.Security;

/// <summary>
/// Practitioners' sign-in through an OpenID Connect provider (FhirSortie:Auth:PractitionerProvider: Pro Santé Connect,
/// the hospital's Keycloak), with ASP.NET Core's OpenID Connect handler: authorization code with PKCE, the ID token
/// checked against the provider's keys. The provider's subject must be the <see cref="PractitionerUser.ExternalSubject"/>
/// of a configured practitioner; the session is then the same cookie as after a password, so the rest of the SMART
/// launch (picker, authorization) does not know how the practitioner signed in. Every outcome is a Login AuditEvent.
/// </summary>
public static class PractitionerLogin
{
    public const string Scheme = "FhirSortie.PractitionerProvider";
    /// <summary>Where the login page's button goes: the challenge (a redirect to the provider).</summary>
    public const string Path = "/auth/login/provider";
    /// <summary>Where the provider sends the browser back (register it at the provider).</summary>
    public const string CallbackPath = "/auth/login/provider/callback";

    /// <summary>The provider's settings, or null when none is configured; a half-configured one stops the start.</summary>
    public static PractitionerProviderOptions? Settings(IConfiguration configuration)
    {
        var provider = configuration.GetSection(AuthOptions.Section).Get<AuthOptions>()?.PractitionerProvider;
        if (provider is null || (string.IsNullOrWhiteSpace(provider.Authority) && string.IsNullOrWhiteSpace(provider.ClientId))) return null;
        if (!Uri.TryCreate(provider.Authority, UriKind.Absolute, out var authority) || authority.Scheme is not ("https" or "http"))
            throw new InvalidOperationException($"{AuthOptions.Section}:PractitionerProvider:Authority must be the provider's absolute URL.");
        if (string.IsNullOrWhiteSpace(provider.ClientId))
            throw new InvalidOperationException($"{AuthOptions.Section}:PractitionerProvider:ClientId is required.");
        return provider;
    }

    public static void AddPractitionerProvider(this AuthenticationBuilder authentication, PractitionerProviderOptions provider) =>
        authentication.AddOpenIdConnect(Scheme, provider.DisplayName, options =>
        {
            options.Authority = provider.Authority;
            options.ClientId = provider.ClientId;
            options.ClientSecret = provider.ClientSecret;
            options.ResponseType = "code";
            options.UsePkce = true;
            options.CallbackPath = CallbackPath;
            options.SignInScheme = AuthPages.PractitionerScheme;
            options.Scope.Clear();
            options.Scope.Add("openid");
            foreach (var scope in (provider.Scope ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)) options.Scope.Add(scope);
            options.GetClaimsFromUserInfoEndpoint = provider.UseUserInfo;
            options.RequireHttpsMetadata = provider.RequireHttpsMetadata;
            // The provider's claims only serve to find the practitioner: nothing of them is kept (no tokens in the cookie).
            options.SaveTokens = false;
            options.MapInboundClaims = false;
            // The provider sends the browser back with a top-level GET: Lax cookies come along, over http behind a TLS proxy too.
            foreach (var cookie in new[] { options.CorrelationCookie, options.NonceCookie })
            {
                cookie.SameSite = SameSiteMode.Lax;
                cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            }
            options.Events.OnTicketReceived = context => SignedInAsync(context, provider);
            options.Events.OnRemoteFailure = context => FailedAsync(context, provider);
        });

    /// <summary>The provider of this deployment, or null (passwords only).</summary>
    public static PractitionerProviderOptions? Configured(HttpContext context) =>
        context.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<AuthOptions>>().Value.PractitionerProvider is { Authority.Length: > 0 } provider
            ? provider
            : null;

    public static void MapPractitionerProvider(this IEndpointRouteBuilder routes) =>
        routes.MapGet(Path, ChallengeAsync).ExcludeFromDescription();

    /// <summary>Sends the browser to the provider; a provider that cannot be reached (its discovery document) is a 503 page, not an error.</summary>
    private static async Task<IResult> ChallengeAsync(HttpContext context, string? returnUrl, ILoggerFactory loggers)
    {
        if (Configured(context) is not { } provider) return Results.NotFound();
        var safe = AuthPages.SafeReturnUrl(returnUrl);
        try
        {
            await context.ChallengeAsync(Scheme, new AuthenticationProperties { RedirectUri = safe ?? AuthPages.SignedInPath });
            return Results.Empty;
        }
        catch (InvalidOperationException e) when (e.InnerException is IOException or HttpRequestException || e.Message.Contains("IDX20803", StringComparison.Ordinal))
        {
            loggers.CreateLogger(typeof(PractitionerLogin)).LogError(e, "The practitioners' OpenID Connect provider cannot be reached");
            return AuthPages.LoginForm(context, safe, $"{provider.DisplayName} est injoignable pour le moment. Réessayez plus tard.", StatusCodes.Status503ServiceUnavailable);
        }
    }

    /// <summary>The provider authenticated someone: a configured practitioner gets the session, anyone else a refusal.</summary>
    private static async Task SignedInAsync(TicketReceivedContext context, PractitionerProviderOptions provider)
    {
        var http = context.HttpContext;
        var subject = context.Principal?.FindFirst(provider.SubjectClaim)?.Value;
        var user = subject is null ? null : http.RequestServices.GetRequiredService<Practitioners>().FindExternal(subject);
        var returnUrl = AuthPages.SafeReturnUrl(context.ReturnUri);
        var clientId = AuthPages.ClientIdOf(returnUrl);
        if (user is null)
        {
            // The provider's subject is an identifier it vouches for, not something typed: it is recorded.
            await Audit.AuthenticationAudit.RecordPractitionerAsync(http, Audit.AuditRecords.Login, StatusCodes.Status403Forbidden, null, clientId,
                $"sign-in refused: {(subject is null ? $"no {provider.SubjectClaim} claim" : $"{subject} is not a practitioner of this gateway")} ({provider.DisplayName})");
            context.HandleResponse();
            await AuthPages.LoginForm(http, returnUrl, $"Votre compte {provider.DisplayName} n'est pas enregistré sur cette passerelle.", StatusCodes.Status403Forbidden)
                .ExecuteAsync(http);
            return;
        }
        context.Principal = AuthPages.PrincipalOf(user);
        await Audit.AuthenticationAudit.RecordPractitionerAsync(http, Audit.AuditRecords.Login, StatusCodes.Status302Found, user, clientId,
            $"practitioner signed in through {provider.DisplayName}");
    }

    /// <summary>The provider refused, the user cancelled, or the answer did not check out (state, nonce, signature): refused, audited.</summary>
    private static async Task FailedAsync(RemoteFailureContext context, PractitionerProviderOptions provider)
    {
        var http = context.HttpContext;
        var returnUrl = AuthPages.SafeReturnUrl(context.Properties?.RedirectUri);
        await Audit.AuthenticationAudit.RecordPractitionerAsync(http, Audit.AuditRecords.Login, StatusCodes.Status401Unauthorized, null,
            AuthPages.ClientIdOf(returnUrl), $"sign-in refused: {provider.DisplayName} answer not accepted: {context.Failure?.Message ?? "unknown"}");
        context.HandleResponse();
        await AuthPages.LoginForm(http, returnUrl, $"La connexion avec {provider.DisplayName} a échoué. Réessayez.", StatusCodes.Status401Unauthorized)
            .ExecuteAsync(http);
    }
}
