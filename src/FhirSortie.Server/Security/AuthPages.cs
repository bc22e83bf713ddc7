using System.Security.Claims;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.WebUtilities;

namespace FhirSortie.Server.Security;

/// <summary>
/// The practitioner's side of a SMART App Launch: a plain server-rendered login form (no script, antiforgery token,
/// cookie session limited to /auth) and the shared bits of the HTML pages.
/// </summary>
public static class AuthPages
{
    /// <summary>Cookie scheme of the practitioner's browser session with the authorization server.</summary>
    public const string PractitionerScheme = "FhirSortie.Practitioner";
    public const string LoginPath = "/auth/login";
    public const string LogoutPath = "/auth/logout";
    public const string AuthorizePath = "/auth/authorize";

    public static void AddPractitionerCookie(this AuthenticationBuilder authentication) =>
        authentication.AddCookie(PractitionerScheme, options =>
        {
            options.Cookie.Name = "fhirsortie_practitioner";
            options.Cookie.Path = "/auth";
            options.Cookie.HttpOnly = true;
            // Lax: the cookie must come along when the app's page navigates to /auth/authorize.
            options.Cookie.SameSite = SameSiteMode.Lax;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            options.ExpireTimeSpan = TimeSpan.FromMinutes(30);
            options.SlidingExpiration = true;
            options.LoginPath = LoginPath;
            options.ReturnUrlParameter = "returnUrl";
        });

    public static void MapLoginPages(this IEndpointRouteBuilder routes)
    {
        routes.MapGet(LoginPath, (HttpContext context, string? returnUrl) => LoginForm(context, SafeReturnUrl(returnUrl), error: null))
            .ExcludeFromDescription();
        routes.MapPost(LoginPath, LoginAsync).ExcludeFromDescription();
        routes.MapPost(LogoutPath, (Delegate)LogoutAsync).ExcludeFromDescription();
    }

    private static async Task<IResult> LoginAsync(HttpContext context, Practitioners practitioners, FailedPractitionerLogins failures, ILoggerFactory loggers)
    {
        if (PractitionerLogin.Configured(context) is { AllowPasswords: false } provider)
        {
            // Refused before anything else is looked at: no password is checked here, whatever the form holds.
            var posted = context.Request.HasFormContentType ? SafeReturnUrl((await context.Request.ReadFormAsync(context.RequestAborted))["returnUrl"]) : null;
            await Audit.AuthenticationAudit.RecordPractitionerAsync(context, Audit.AuditRecords.Login, StatusCodes.Status403Forbidden, null, ClientIdOf(posted),
                "sign-in refused: passwords are not accepted on this gateway");
            return LoginForm(context, posted, $"Les mots de passe ne sont pas acceptés sur cette passerelle : connectez-vous avec {provider.DisplayName}.", StatusCodes.Status403Forbidden);
        }
        if (await ValidateFormAsync(context) is { } refused) return refused;
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var returnUrl = SafeReturnUrl(form["returnUrl"]);
        var clientId = ClientIdOf(returnUrl);
        var userName = form["username"].ToString();
        // The account tried, when it exists: what the audit record names (never an unknown name, which may be a password).
        var account = practitioners.Find(userName);
        var address = Audit.AuditEntry.AddressOf(context) ?? "";
        var counted = userName.Length <= MaxCountedUserName ? userName : userName[..MaxCountedUserName];
        if (failures.RetryAfter(address, counted) is { } wait)
        {
            var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
            context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await Audit.AuthenticationAudit.RecordPractitionerAsync(context, Audit.AuditRecords.Login, StatusCodes.Status429TooManyRequests, account, clientId,
                "sign-in refused: too many failed sign-ins from this address");
            return LoginForm(context, returnUrl, $"Trop de tentatives de connexion échouées depuis cet ordinateur. Réessayez dans {(seconds + 59) / 60} min.",
                StatusCodes.Status429TooManyRequests);
        }
        var user = practitioners.Verify(userName, form["password"].ToString());
        if (user is null)
        {
            failures.Failed(address, counted);
            // The user name is not logged: it may be a password typed in the wrong field.
            loggers.CreateLogger(typeof(AuthPages)).LogWarning("Practitioner login refused: wrong user name or password");
            await Audit.AuthenticationAudit.RecordPractitionerAsync(context, Audit.AuditRecords.Login, StatusCodes.Status401Unauthorized, account, clientId,
                account is null ? "sign-in refused: unknown user name" : "sign-in refused: wrong password");
            return LoginForm(context, returnUrl, "Identifiant ou mot de passe incorrect.", StatusCodes.Status401Unauthorized);
        }
        await context.SignInAsync(PractitionerScheme, PrincipalOf(user));
        await Audit.AuthenticationAudit.RecordPractitionerAsync(context, Audit.AuditRecords.Login, StatusCodes.Status302Found, user, clientId, "practitioner signed in");
        return Results.Redirect(returnUrl ?? SignedInPath);
    }

    /// <summary>Where a sign-in that was not part of an authorization request ends.</summary>
    public const string SignedInPath = LoginPath + "?signedIn=1";

    /// <summary>The practitioner's session (the cookie's principal), however they signed in.</summary>
    public static ClaimsPrincipal PrincipalOf(PractitionerUser user)
    {
        var claims = new List<Claim> { new(ClaimTypes.Name, user.UserName) };
        if (user.FhirUser is not null) claims.Add(new Claim(Caller.Claims.FhirUser, user.FhirUser));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, PractitionerScheme));
    }

    /// <summary>Failed sign-ins are counted under the user name cut to this length (the counter's memory is bounded by keys, not by their size).</summary>
    private const int MaxCountedUserName = 128;

    private static async Task<IResult> LogoutAsync(HttpContext context, Practitioners practitioners)
    {
        if (await ValidateFormAsync(context) is { } refused) return refused;
        var user = await PractitionerAsync(context) is { } name ? practitioners.Find(name) : null;
        await context.SignOutAsync(PractitionerScheme);
        if (user is not null)
            await Audit.AuthenticationAudit.RecordPractitionerAsync(context, Audit.AuditRecords.Logout, StatusCodes.Status302Found, user, clientId: null, "practitioner signed out");
        return Results.Redirect(LoginPath);
    }

    /// <summary>The app an authorization request (a safe return URL) is for: its client_id, or null.</summary>
    public static string? ClientIdOf(string? authorizeUrl) =>
        authorizeUrl is null ? null
            : QueryHelpers.ParseQuery(new Uri("http://x" + authorizeUrl).Query).GetValueOrDefault("client_id").ToString() is { Length: > 0 } id ? id : null;

    /// <summary>The signed-in practitioner's user name, or null.</summary>
    public static async Task<string?> PractitionerAsync(HttpContext context)
    {
        var result = await context.AuthenticateAsync(PractitionerScheme);
        return result.Succeeded ? result.Principal?.Identity?.Name : null;
    }

    /// <summary>The form post's antiforgery check: null when fine, else a 400 page.</summary>
    public static async Task<IResult?> ValidateFormAsync(HttpContext context)
    {
        if (!context.Request.HasFormContentType) return Page("Requête invalide", "<p>Cette page attend un formulaire.</p>", StatusCodes.Status400BadRequest);
        try
        {
            await context.RequestServices.GetRequiredService<IAntiforgery>().ValidateRequestAsync(context);
            return null;
        }
        catch (AntiforgeryValidationException)
        {
            return Page("Formulaire expiré", "<p>Ce formulaire a expiré ou ne vient pas de ce serveur. Revenez en arrière et réessayez.</p>", StatusCodes.Status400BadRequest);
        }
    }

    /// <summary>
    /// Only our own authorization endpoint is a valid place to return to after login or patient selection:
    /// anything else (absolute URLs, //host, other paths) would make the login page an open redirector.
    /// </summary>
    public static string? SafeReturnUrl(string? returnUrl) =>
        returnUrl is not null
        && (returnUrl.StartsWith(AuthorizePath + "?", StringComparison.Ordinal) || returnUrl == AuthorizePath)
        && !returnUrl.Contains('\\') && !returnUrl.Contains("//", StringComparison.Ordinal)
            ? returnUrl
            : null;

    /// <summary>The login page: the provider's button when one is configured, the password form unless it turned passwords off.</summary>
    public static IResult LoginForm(HttpContext context, string? returnUrl, string? error, int status = StatusCodes.Status200OK)
    {
        var body = new StringBuilder();
        if (context.Request.Query.ContainsKey("signedIn") && error is null) body.Append("<p role=\"status\">Vous êtes connecté(e).</p>");
        if (error is not null) body.Append("<p class=\"error\" id=\"login-error\" role=\"alert\">").Append(Encode(error)).Append("</p>");
        var provider = PractitionerLogin.Configured(context);
        if (provider is not null)
        {
            body.Append("<form method=\"get\" action=\"").Append(PractitionerLogin.Path).Append("\">")
                .Append("<input type=\"hidden\" name=\"returnUrl\" value=\"").Append(Encode(returnUrl ?? "")).Append("\">")
                .Append("<p><button type=\"submit\" id=\"sign-in-provider\">Se connecter avec ").Append(Encode(provider.DisplayName)).Append("</button></p></form>");
        }
        if (provider is not { AllowPasswords: false })
        {
            body.Append("<form method=\"post\" action=\"").Append(LoginPath).Append("\">")
                .Append(AntiforgeryField(context))
                .Append("<input type=\"hidden\" name=\"returnUrl\" value=\"").Append(Encode(returnUrl ?? "")).Append("\">")
                .Append("<p><label for=\"username\">Identifiant</label><br><input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus></p>")
                .Append("<p><label for=\"password\">Mot de passe</label><br><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p>")
                .Append("<p><button type=\"submit\" id=\"sign-in\">Se connecter</button></p></form>");
        }
        return Page("Connexion", body.ToString(), status);
    }

    public static string AntiforgeryField(HttpContext context)
    {
        var tokens = context.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(context);
        return $"<input type=\"hidden\" name=\"{Encode(tokens.FormFieldName)}\" value=\"{Encode(tokens.RequestToken ?? "")}\">";
    }

    // All of Unicode left as is (French accents), only the HTML-special characters encoded.
    private static readonly HtmlEncoder Encoder = HtmlEncoder.Create(System.Text.Unicode.UnicodeRanges.All);

    public static string Encode(string text) => Encoder.Encode(text);

    /// <summary>A complete page; never cached, never framed (clickjacking of the login and picker forms).</summary>
    public static IResult Page(string title, string body, int status = StatusCodes.Status200OK) =>
        new HtmlPage($$"""
            <!DOCTYPE html>
            <html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{{Encode(title)}} - FhirSortie</title>
            <style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}.error{color:#a00}.hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}:focus{outline:3px solid #004b9b;outline-offset:2px}table{border-collapse:collapse}td,th{padding:.3rem .6rem;text-align:left;border-bottom:1px solid #ccc}</style>
            </head><body><main><h1>{{Encode(title)}}</h1>
            {{body}}
            </main></body></html>
            """, status);

    private sealed class HtmlPage(string html, int status) : IResult
    {
        public Task ExecuteAsync(HttpContext context)
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = "text/html; charset=utf-8";
            context.Response.Headers.CacheControl = "no-store";
            context.Response.Headers["X-Frame-Options"] = "DENY";
            context.Response.Headers.ContentSecurityPolicy =
                // No form-action: browsers apply it to the redirects after a post too, and ours end at the app.
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";
            return context.Response.WriteAsync(html, context.RequestAborted);
        }
    }
}
