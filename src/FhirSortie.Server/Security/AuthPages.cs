using System.Security.Claims;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;

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

    private static async Task<IResult> LoginAsync(HttpContext context, Practitioners practitioners, ILoggerFactory loggers)
    {
        if (await ValidateFormAsync(context) is { } refused) return refused;
        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        var returnUrl = SafeReturnUrl(form["returnUrl"]);
        var user = practitioners.Verify(form["username"].ToString(), form["password"].ToString());
        if (user is null)
        {
            // The user name is not logged: it may be a password typed in the wrong field.
            loggers.CreateLogger(typeof(AuthPages)).LogWarning("Practitioner login refused: wrong user name or password");
            return LoginForm(context, returnUrl, "Wrong user name or password.", StatusCodes.Status401Unauthorized);
        }
        var claims = new List<Claim> { new(ClaimTypes.Name, user.UserName) };
        if (user.FhirUser is not null) claims.Add(new Claim(Caller.Claims.FhirUser, user.FhirUser));
        await context.SignInAsync(PractitionerScheme, new ClaimsPrincipal(new ClaimsIdentity(claims, PractitionerScheme)));
        return Results.Redirect(returnUrl ?? "/auth/login?signedIn=1");
    }

    private static async Task<IResult> LogoutAsync(HttpContext context)
    {
        if (await ValidateFormAsync(context) is { } refused) return refused;
        await context.SignOutAsync(PractitionerScheme);
        return Results.Redirect(LoginPath);
    }

    /// <summary>The signed-in practitioner's user name, or null.</summary>
    public static async Task<string?> PractitionerAsync(HttpContext context)
    {
        var result = await context.AuthenticateAsync(PractitionerScheme);
        return result.Succeeded ? result.Principal?.Identity?.Name : null;
    }

    /// <summary>The form post's antiforgery check: null when fine, else a 400 page.</summary>
    public static async Task<IResult?> ValidateFormAsync(HttpContext context)
    {
        if (!context.Request.HasFormContentType) return Page("Bad request", "<p>This page expects a form.</p>", StatusCodes.Status400BadRequest);
        try
        {
            await context.RequestServices.GetRequiredService<IAntiforgery>().ValidateRequestAsync(context);
            return null;
        }
        catch (AntiforgeryValidationException)
        {
            return Page("Form expired", "<p>This form has expired or did not come from this server. Go back and try again.</p>", StatusCodes.Status400BadRequest);
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

    private static IResult LoginForm(HttpContext context, string? returnUrl, string? error, int status = StatusCodes.Status200OK)
    {
        var body = new StringBuilder();
        if (context.Request.Query.ContainsKey("signedIn") && error is null) body.Append("<p>You are signed in.</p>");
        if (error is not null) body.Append("<p class=\"error\" role=\"alert\">").Append(Encode(error)).Append("</p>");
        body.Append("<form method=\"post\" action=\"").Append(LoginPath).Append("\">")
            .Append(AntiforgeryField(context))
            .Append("<input type=\"hidden\" name=\"returnUrl\" value=\"").Append(Encode(returnUrl ?? "")).Append("\">")
            .Append("<p><label for=\"username\">User name</label><br><input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus></p>")
            .Append("<p><label for=\"password\">Password</label><br><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p>")
            .Append("<p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>");
        return Page("Sign in", body.ToString(), status);
    }

    public static string AntiforgeryField(HttpContext context)
    {
        var tokens = context.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(context);
        return $"<input type=\"hidden\" name=\"{Encode(tokens.FormFieldName)}\" value=\"{Encode(tokens.RequestToken ?? "")}\">";
    }

    public static string Encode(string text) => HtmlEncoder.Default.Encode(text);

    /// <summary>A complete page; never cached, never framed (clickjacking of the login and picker forms).</summary>
    public static IResult Page(string title, string body, int status = StatusCodes.Status200OK) =>
        new HtmlPage($$"""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{{Encode(title)}} - FhirSortie</title>
            <style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}.error{color:#a00}table{border-collapse:collapse}td,th{padding:.3rem .6rem;text-align:left;border-bottom:1px solid #ccc}</style>
            </head><body><h1>{{Encode(title)}}</h1>
            {{body}}
            </body></html>
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
