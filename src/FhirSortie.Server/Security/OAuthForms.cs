using FhirSortie.Server.Audit;

namespace FhirSortie.Server.Security;

/// <summary>
/// Forms posted under /auth (token, revocation, introspection, the launch pages) are read once here, so that one past
/// ASP.NET Core's form limits (1,024 fields, 4 MB a value) is a 400 invalid_request rather than the 500 it was when
/// OpenIddict met the exception. The parsed form is kept by ASP.NET Core for everything after (OpenIddict, the pages).
/// </summary>
public static class OAuthForms
{
    /// <summary>After the authentication audit (the refusal is recorded), before anything that reads the form.</summary>
    public static IApplicationBuilder UseOAuthFormLimits(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (context.Request.Path.StartsWithSegments("/auth") && context.Request.HasFormContentType)
        {
            try
            {
                await context.Request.ReadFormAsync(context.RequestAborted);
            }
            catch (InvalidDataException e)
            {
                context.Items[AuthenticationAudit.RefusalItem] = "invalid_request: the form is past the limits";
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                await context.Response.WriteAsJsonAsync(new Dictionary<string, string>
                {
                    ["error"] = OpenIddict.Abstractions.OpenIddictConstants.Errors.InvalidRequest,
                    ["error_description"] = "The form is past the limits (1,024 fields, 4 MB a value): " + e.Message,
                });
                return;
            }
        }
        await next(context);
    });
}
