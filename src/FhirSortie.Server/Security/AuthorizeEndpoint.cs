using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.WebUtilities;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace FhirSortie.Server.Security;

/// <summary>
/// The authorization endpoint's handler (OpenIddict runs it in passthrough mode after validating the request: client,
/// redirect_uri against the client's RedirectUris, response_type, PKCE S256). It signs the practitioner in through
/// the login page, settles the patient (the `launch` value of an EHR launch, or the patient picker for a standalone
/// `launch/patient`), and issues the code with the claims that end up in the access token.
/// </summary>
public static class AuthorizeEndpoint
{
    public const string LaunchParameter = "launch";
    public const string LaunchScope = "launch";
    public const string LaunchPatientScope = "launch/patient";

    /// <summary>Claim carried by the authorization code only (the access token is built afresh), see below.</summary>
    public const string CodeIdClaim = "code_id";

    public static void MapAuthorizeEndpoint(this IEndpointRouteBuilder routes) =>
        routes.MapMethods(AuthPages.AuthorizePath, [HttpMethods.Get, HttpMethods.Post], AuthorizeAsync).ExcludeFromDescription();

    private static async Task<IResult> AuthorizeAsync(HttpContext context, ClientRegistry clients, LaunchContexts launches, Practitioners practitioners)
    {
        var request = context.GetOpenIddictServerRequest();
        if (request is null) return AuthPages.Page("Requête invalide", "<p>Ce n'est pas une demande d'autorisation.</p>", StatusCodes.Status400BadRequest);
        // OpenIddict and AuthorizationClientValidation already checked the client, its redirect_uri, its scopes and PKCE.
        var client = clients.Find(request.ClientId);
        if (client is null || client.RedirectUris.Count == 0)
            return Refuse(Errors.UnauthorizedClient, "This client may not use the authorization code grant.");

        // The same request again, as a relative URL: where the login page and the patient picker send the browser back.
        var again = QueryHelpers.AddQueryString(AuthPages.AuthorizePath,
            request.GetParameters().Select(p => new KeyValuePair<string, string?>(p.Key, (string?)p.Value)));

        var requested = request.GetScopes();

        var launch = (string?)request[LaunchParameter];
        if (launch is not null)
        {
            if (!requested.Contains(LaunchScope)) return Refuse(Errors.InvalidScope, "An EHR launch needs the 'launch' scope.");
            if (await launches.FindAsync(launch, LaunchKind.Ehr, client.ClientId, context.RequestAborted) is null)
                return Refuse(Errors.InvalidRequest, "Unknown launch: it does not exist, has expired, was already used, or was issued for another client.");
        }

        var userName = await AuthPages.PractitionerAsync(context);
        var user = userName is null ? null : practitioners.Find(userName);
        if (user is null)
        {
            if (request.HasPromptValue(PromptValues.None)) return Refuse(Errors.LoginRequired, "The practitioner is not signed in.");
            return Results.Redirect(QueryHelpers.AddQueryString(AuthPages.LoginPath, "returnUrl", PatientPicker.WithoutPick(again)));
        }

        string? patient = null;
        if (launch is not null)
        {
            var redeemed = await launches.RedeemAsync(launch, LaunchKind.Ehr, client.ClientId, context.RequestAborted);
            if (redeemed is null) return Refuse(Errors.InvalidRequest, "Unknown launch: it has expired or was already used.");
            patient = redeemed.PatientId;
        }
        else if (requested.Contains(LaunchPatientScope))
        {
            var pick = (string?)request[PatientPicker.PickParameter];
            var picked = pick is null ? null : await launches.RedeemAsync(pick, LaunchKind.Picked, client.ClientId, context.RequestAborted);
            if (picked is null || picked.UserName != user.UserName)
                return Results.Redirect(PatientPicker.UrlFor(PatientPicker.WithoutPick(again)));
            patient = picked.PatientId;
        }

        (string, string)? actsFor = null;
        if (client.ActsForUser)
        {
            // The exit portal acts for the user's own organisation, within the user's own scopes.
            if (!Enum.TryParse<ActorKind>(user.ActorKind, ignoreCase: true, out var kind) || !Enum.IsDefined(kind) || user.OrganizationFiness is not { } finess || !Finess.IsValid(finess))
                return Refuse(Errors.AccessDenied, "This practitioner has no organisation (ActorKind and OrganizationFiness) to act for.");
            actsFor = (kind.ToString(), finess);
            var ceiling = (user.AllowedScopes ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
            if (ceiling.Count > 0)
                requested = [.. requested.Where(s => ceiling.Contains(s) || !(s.StartsWith("user/", StringComparison.Ordinal) || s.StartsWith("system/", StringComparison.Ordinal) || s.StartsWith("patient/", StringComparison.Ordinal)))];
        }
        var fhirUser = requested.Contains("fhirUser") ? user.FhirUser : null;
        var principal = AuthorizationServer.BuildPrincipal(client, requested, subject: user.UserName, patient: patient, fhirUser: fhirUser, actsFor: actsFor);
        // The code's own identifier: in degraded mode OpenIddict stores no codes and gives them none, and the token
        // endpoint records it in the jti store to refuse a second redemption (OpenIddictHandlers.TokenIssuance).
        // (OpenIddict drops a "jti" set here, so the claim has its own name.)
        principal.SetClaim(CodeIdClaim, Guid.NewGuid().ToString("N"));
        return Results.SignIn(principal, properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    /// <summary>An OAuth error, sent back to the client's redirect_uri by OpenIddict (with the request's state).</summary>
    private static IResult Refuse(string error, string description) =>
        Results.Forbid(new AuthenticationProperties(new Dictionary<string, string?>
        {
            [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
            [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
        }), [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
}
