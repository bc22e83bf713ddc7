using System.Security.Claims;
using FhirSortie.Server.Rest;
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

    public static void MapAuthorizeEndpoint(this IEndpointRouteBuilder routes) =>
        routes.MapMethods(AuthPages.AuthorizePath, [HttpMethods.Get, HttpMethods.Post], AuthorizeAsync).ExcludeFromDescription();

    private static async Task<IResult> AuthorizeAsync(HttpContext context, IClientDirectory clients, LaunchContexts launches, Practitioners practitioners)
    {
        var request = context.GetOpenIddictServerRequest();
        if (request is null) return AuthPages.Page("Bad request", "<p>Not an authorization request.</p>", StatusCodes.Status400BadRequest);
        var client = request.ClientId is { } id ? clients.Find(id) : null;
        if (client is null || client.RedirectUris.Count == 0)
            return Refuse(Errors.UnauthorizedClient, "This client may not use the authorization code grant.");

        // The same request again, as a relative URL: where the login page and the patient picker send the browser back.
        var again = QueryHelpers.AddQueryString(AuthPages.AuthorizePath,
            request.GetParameters().Select(p => new KeyValuePair<string, string?>(p.Key, (string?)p.Value)));

        var requested = request.GetScopes();
        var refused = requested.Where(s => !IsAllowed(client, s)).ToList();
        if (refused.Count > 0) return Refuse(Errors.InvalidScope, $"Scopes not allowed for this client: {string.Join(' ', refused)}.");

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

        var identity = new ClaimsIdentity(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, user.UserName);
        identity.SetClaim(Claims.Name, user.DisplayName ?? user.UserName);
        identity.SetClaim(Caller.Claims.ActorKind, client.Kind.ToString());
        if (client.OrganizationFiness is not null) identity.SetClaim(Caller.Claims.OrganizationFiness, client.OrganizationFiness);
        if (patient is not null) identity.SetClaim(Caller.Claims.Patient, patient);
        if (user.FhirUser is not null && requested.Contains("fhirUser")) identity.SetClaim(Caller.Claims.FhirUser, user.FhirUser);
        identity.SetScopes(requested);
        identity.SetResources(FhirBase.Of(context));
        identity.SetDestinations(Destinations);
        return Results.SignIn(new ClaimsPrincipal(identity), properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    /// <summary>
    /// The client's AllowedScopes, where a client allowed a `launch/...` context scope may also ask for `launch` (the
    /// EHR launch form of the same permission).
    /// </summary>
    private static bool IsAllowed(LaunchClient client, string scope) =>
        client.AllowedScopes.Contains(scope)
        || (scope == LaunchScope && client.AllowedScopes.Any(s => s.StartsWith(LaunchScope + "/", StringComparison.Ordinal)));

    private static IEnumerable<string> Destinations(Claim claim) => claim.Type switch
    {
        Caller.Claims.FhirUser => [OpenIddictConstants.Destinations.AccessToken, OpenIddictConstants.Destinations.IdentityToken],
        Claims.Name or Claims.Subject => [OpenIddictConstants.Destinations.AccessToken, OpenIddictConstants.Destinations.IdentityToken],
        _ => [OpenIddictConstants.Destinations.AccessToken],
    };

    /// <summary>An OAuth error, sent back to the client's redirect_uri by OpenIddict (with the request's state).</summary>
    private static IResult Refuse(string error, string description) =>
        Results.Forbid(new AuthenticationProperties(new Dictionary<string, string?>
        {
            [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
            [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
        }), [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
}
