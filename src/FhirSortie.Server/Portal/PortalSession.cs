using System.Net.Http.Headers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FhirSortie.Server.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.IdentityModel.JsonWebTokens;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The portal's session IS the user's SMART grant: authorization code + PKCE at our own /auth/authorize (the
/// practitioner signs in on the gateway's login page, by password or Pro Santé Connect), tokens from /auth/token,
/// kept in an encrypted cookie (ASP.NET Core Data Protection, key ring in the database: any node reads it), idle
/// timeout 30 min; signing out revokes the grant at /auth/revoke (every node refuses its tokens) and ends the
/// practitioner's sign-in too (a shared workstation).
/// </summary>
public static class PortalSession
{
    public const string Scheme = "FhirSortie.Portal";
    private const string OAuthCookie = "fhirsortie_portal_oauth";
    private const string AccessToken = "access_token";
    private const string RefreshToken = "refresh_token";
    private const string ExpiresAt = "expires_at";
    public const string CsrfItem = "csrf";
    public const string CsrfField = "_csrf";
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(30);

    public static void AddPortalCookie(this AuthenticationBuilder authentication) =>
        authentication.AddCookie(Scheme, options =>
        {
            options.Cookie.Name = "fhirsortie_portal";
            options.Cookie.Path = PortalRoutes.Root;
            options.Cookie.HttpOnly = true;
            options.Cookie.SameSite = SameSiteMode.Lax;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            options.ExpireTimeSpan = IdleTimeout;
            options.SlidingExpiration = true;
            options.LoginPath = PortalRoutes.Home;
            options.Events.OnRedirectToLogin = context => { context.Response.Redirect(PortalRoutes.Home); return Task.CompletedTask; };
        });

    /// <summary>GET /portal/connexion: state and PKCE verifier in a short-lived encrypted cookie, then our authorization endpoint.</summary>
    public static IResult Start(HttpContext context, ClientRegistry clients, IDataProtectionProvider protection, IConfiguration configuration)
    {
        var client = PortalClient(clients, configuration);
        if (client is null) return PortalPage.Message(context, "Portail indisponible", "Le portail n'est pas configuré sur cette passerelle (client « portal » absent).", StatusCodes.Status503ServiceUnavailable);
        var state = Random();
        var verifier = Random();
        var challenge = WebEncoders.Base64UrlEncode(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        var protector = protection.CreateProtector(OAuthCookie);
        context.Response.Cookies.Append(OAuthCookie, protector.Protect(state + " " + verifier), new CookieOptions
        {
            Path = PortalRoutes.Root, HttpOnly = true, SameSite = SameSiteMode.Lax, Secure = context.Request.IsHttps, MaxAge = TimeSpan.FromMinutes(10),
        });
        var url = QueryHelpers.AddQueryString(AuthPages.AuthorizePath, new Dictionary<string, string?>
        {
            ["response_type"] = "code",
            ["client_id"] = client.ClientId,
            ["redirect_uri"] = RedirectUri(context),
            ["scope"] = string.Join(' ', client.AllowedScopes.Order(StringComparer.Ordinal)),
            ["state"] = state,
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
        });
        return Results.Redirect(url);
    }

    /// <summary>GET /portal/callback: the code for tokens (over loopback), then the session cookie.</summary>
    public static async Task<IResult> CallbackAsync(HttpContext context, ClientRegistry clients, IDataProtectionProvider protection, IConfiguration configuration,
        IHttpClientFactory http, Loopback loopback, Practitioners practitioners, ILoggerFactory loggers)
    {
        var client = PortalClient(clients, configuration);
        var query = context.Request.Query;
        string? saved = null;
        if (context.Request.Cookies[OAuthCookie] is { } cookie)
        {
            try { saved = protection.CreateProtector(OAuthCookie).Unprotect(cookie); }
            catch (CryptographicException) { saved = null; }
        }
        context.Response.Cookies.Delete(OAuthCookie, new CookieOptions { Path = PortalRoutes.Root });
        if (query["error"].ToString() is { Length: > 0 } error)
        {
            var text = error == "access_denied"
                ? "Ce compte n'est rattaché à aucune structure : il ne peut pas utiliser le portail."
                : "La connexion a été refusée par la passerelle. Réessayez.";
            return PortalPage.Message(context, "Connexion impossible", text, StatusCodes.Status403Forbidden, signInAgain: true);
        }
        var parts = saved?.Split(' ');
        if (client is null || parts is not [var state, var verifier] || !FixedEquals(state, query["state"].ToString()) || query["code"].ToString() is not { Length: > 0 } code)
            return PortalPage.Message(context, "Connexion expirée", "Cette connexion a expiré ou ne vient pas de ce navigateur. Reconnectez-vous.", StatusCodes.Status400BadRequest, signInAgain: true);

        var tokens = await TokenRequestAsync(context, client, http, loopback, new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code",
            ["code"] = code,
            ["redirect_uri"] = RedirectUri(context),
            ["code_verifier"] = verifier,
        });
        if (tokens is null)
        {
            loggers.CreateLogger(typeof(PortalSession)).LogWarning("Portal sign-in: the token endpoint refused the code");
            return PortalPage.Message(context, "Connexion impossible", "La passerelle n'a pas délivré de jeton. Reconnectez-vous.", StatusCodes.Status502BadGateway, signInAgain: true);
        }
        var jwt = new JsonWebToken(tokens.Value.Access);
        var subject = ClaimOf(jwt, "sub") ?? "";
        var claims = new List<Claim>
        {
            new(ClaimTypes.Name, subject),
            new(PortalUser.KindClaim, ClaimOf(jwt, Caller.Claims.ActorKind) ?? ""),
            new(PortalUser.FinessClaim, ClaimOf(jwt, Caller.Claims.OrganizationFiness) ?? ""),
            new(PortalUser.DisplayClaim, practitioners.Find(subject)?.DisplayName ?? subject),
        };
        if (ClaimOf(jwt, Caller.Claims.FhirUser) is { } fhirUser) claims.Add(new Claim(Caller.Claims.FhirUser, fhirUser));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, Scheme));
        var user = PortalUser.Of(principal);
        if (user is null)
            return PortalPage.Message(context, "Connexion impossible", "Ce compte n'est rattaché à aucune structure : il ne peut pas utiliser le portail.", StatusCodes.Status403Forbidden, signInAgain: true);
        var properties = new AuthenticationProperties();
        Store(properties, tokens.Value);
        properties.Items[CsrfItem] = Random();
        await context.SignInAsync(Scheme, principal, properties);
        return Results.Redirect(user.HomePath);
    }

    /// <summary>POST /portal/deconnexion: the grant revoked (all nodes), both sessions ended.</summary>
    public static async Task<IResult> SignOutAsync(HttpContext context, ClientRegistry clients, IConfiguration configuration, IHttpClientFactory http, Loopback loopback, Practitioners practitioners)
    {
        var session = await context.AuthenticateAsync(Scheme);
        if (session.Succeeded)
        {
            if (await CsrfRefusedAsync(context, session.Properties!) is { } refused) return refused;
            if (PortalClient(clients, configuration) is { } client && Item(session.Properties!, RefreshToken) is { } refresh)
                await PostAsync(context, client, http, loopback, "auth/revoke", new Dictionary<string, string> { ["token"] = refresh, ["token_type_hint"] = "refresh_token" });
        }
        await context.SignOutAsync(Scheme);
        var name = await AuthPages.PractitionerAsync(context);
        await context.SignOutAsync(AuthPages.PractitionerScheme);
        if (name is not null && practitioners.Find(name) is { } user)
            await Audit.AuthenticationAudit.RecordPractitionerAsync(context, Audit.AuditRecords.Logout, StatusCodes.Status302Found, user, PortalDemo.ClientId, "practitioner signed out of the portal (grant revoked)");
        return Results.Redirect(PortalRoutes.Home + "?deconnecte=1");
    }

    /// <summary>The signed-in user and a fresh access token (refreshed when about to expire), or the page to show instead.</summary>
    public static async Task<(PortalContext? Portal, IResult? Instead)> RequireAsync(HttpContext context, params ActorKind[] kinds)
    {
        var session = await context.AuthenticateAsync(Scheme);
        var user = session.Succeeded ? PortalUser.Of(session.Principal!) : null;
        if (user is null) return (null, Results.Redirect(PortalRoutes.Home));
        if (kinds.Length > 0 && !kinds.Contains(user.Kind))
            return (null, PortalPage.Message(context, "Accès non autorisé", "Cette page n'est pas destinée à votre structure.", StatusCodes.Status403Forbidden, user: user, csrf: session.Properties!.Items[CsrfItem]));
        var properties = session.Properties!;
        if (HttpMethods.IsPost(context.Request.Method) && await CsrfRefusedAsync(context, properties) is { } refused) return (null, refused);
        var expires = DateTimeOffset.Parse(properties.Items[ExpiresAt]!, System.Globalization.CultureInfo.InvariantCulture);
        var services = context.RequestServices;
        if (expires - TimeSpan.FromSeconds(30) < services.GetRequiredService<TimeProvider>().GetUtcNow())
        {
            var client = PortalClient(services.GetRequiredService<ClientRegistry>(), services.GetRequiredService<IConfiguration>());
            var tokens = client is null ? null : await TokenRequestAsync(context, client, services.GetRequiredService<IHttpClientFactory>(), services.GetRequiredService<Loopback>(),
                new Dictionary<string, string> { ["grant_type"] = "refresh_token", ["refresh_token"] = Item(properties, RefreshToken) ?? "" });
            if (tokens is null)
            {
                // Revoked elsewhere, expired, or used twice: the grant is over, so is the session.
                await context.SignOutAsync(Scheme);
                return (null, PortalPage.Message(context, "Session terminée", "Votre session a pris fin. Reconnectez-vous.", StatusCodes.Status401Unauthorized, signInAgain: true));
            }
            Store(properties, tokens.Value);
            await context.SignInAsync(Scheme, session.Principal!, properties);
        }
        var api = new PortalApi(context, services.GetRequiredService<IHttpClientFactory>(), services.GetRequiredService<Loopback>(), properties.Items[AccessToken]!);
        return (new PortalContext(user, api, properties.Items[CsrfItem]!), null);
    }

    private static async Task<IResult?> CsrfRefusedAsync(HttpContext context, AuthenticationProperties properties)
    {
        var expected = Item(properties, CsrfItem) ?? "";
        var given = context.Request.HasFormContentType ? (await context.Request.ReadFormAsync(context.RequestAborted))[CsrfField].ToString() : "";
        return expected.Length > 0 && FixedEquals(expected, given)
            ? null
            : PortalPage.Message(context, "Formulaire expiré", "Ce formulaire a expiré ou ne vient pas de ce portail. Revenez en arrière et réessayez.", StatusCodes.Status400BadRequest);
    }

    public static Client? PortalClient(ClientRegistry clients, IConfiguration configuration) =>
        clients.Find(configuration["FhirSortie:Portal:ClientId"] ?? PortalDemo.ClientId) is { ActsForUser: true, IsConfidential: true } client ? client : null;

    private static string RedirectUri(HttpContext context)
    {
        var fhirBase = Rest.FhirBase.Of(context);
        return fhirBase[..^Rest.FhirBase.Path.Length] + PortalRoutes.Callback;
    }

    private static void Store(AuthenticationProperties properties, (string Access, string? Refresh, int ExpiresIn) tokens)
    {
        properties.Items[AccessToken] = tokens.Access;
        if (tokens.Refresh is not null) properties.Items[RefreshToken] = tokens.Refresh;
        properties.Items[ExpiresAt] = DateTimeOffset.UtcNow.AddSeconds(tokens.ExpiresIn).ToString("O", System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<(string Access, string? Refresh, int ExpiresIn)?> TokenRequestAsync(HttpContext context, Client client, IHttpClientFactory http, Loopback loopback,
        Dictionary<string, string> form)
    {
        using var response = await PostAsync(context, client, http, loopback, "auth/token", form);
        if (response is null || !response.IsSuccessStatusCode) return null;
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(context.RequestAborted));
        var root = json.RootElement;
        if (root.TryGetProperty("access_token", out var access) is false) return null;
        return (access.GetString()!, root.TryGetProperty("refresh_token", out var refresh) ? refresh.GetString() : null,
            root.TryGetProperty("expires_in", out var expires) ? expires.GetInt32() : 300);
    }

    private static async Task<HttpResponseMessage?> PostAsync(HttpContext context, Client client, IHttpClientFactory http, Loopback loopback, string path, Dictionary<string, string> form)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(loopback.BaseFor(context), path)) { Content = new FormUrlEncodedContent(form) };
        PortalApi.AsBrowserOrigin(request, context);
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.EscapeDataString(client.ClientId) + ":" + Uri.EscapeDataString(client.Secret ?? ""))));
        try
        {
            return await http.CreateClient(Loopback.HttpClientName).SendAsync(request, context.RequestAborted);
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private static string? Item(AuthenticationProperties properties, string key) => properties.Items.TryGetValue(key, out var value) ? value : null;

    private static string? ClaimOf(JsonWebToken jwt, string name) => jwt.TryGetPayloadValue<string>(name, out var value) ? value : null;

    private static string Random() => WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(32));

    private static bool FixedEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(a)), SHA256.HashData(Encoding.UTF8.GetBytes(b)));
}

/// <summary>What a page handler works with: the user, their API client, the form token.</summary>
public sealed record PortalContext(PortalUser User, PortalApi Api, string Csrf);
