using System.Security.Claims;
using FhirSortie.Server.Security;
using Microsoft.IdentityModel.JsonWebTokens;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using OpenIddict.Server.AspNetCore;

namespace FhirSortie.Server.Audit;

/// <summary>
/// The OAuth endpoints leave AuditEvents too (DICOM 110114 "User Authentication"): every token request, granted or
/// refused, is a Login (110122), every revocation a Logout (110123). A security officer finds with
/// <c>AuditEvent?subtype=http://dicom.nema.org/resources/ontology/DCM|110122&amp;outcome=4</c> the failed client
/// authentications (a guessed secret, a replayed assertion, a refresh token used twice), and with
/// <c>agent:identifier=...|client</c> what one client did; a patient's access report lists the apps that obtained a
/// token for their record. The record is durable before the answer leaves, as for FHIR interactions (issue 5).
/// <para>
/// The client a refused request names is the one it <em>claims</em> (client_id, or the unverified subject of its
/// assertion), cut to <see cref="MaxClaimedClientId"/> characters; its kind and FINESS are written only once it is
/// authenticated. The record never holds a secret, an assertion or a token. Introspection is not recorded: a client
/// asking about its own token reaches no data and changes nothing.
/// </para>
/// <para>
/// The browser side of a SMART launch leaves records too: the authorization endpoint's answer to the app (a Login
/// naming the app, the practitioner and the launch patient: "authorization code issued", or the OAuth error), and the
/// practitioner's sign-in (granted, or refused: wrong password, too many failures, passwords off; through the OpenID
/// Connect provider: granted, an unregistered subject, a cancelled or unverifiable answer) and sign-out on the login
/// pages (<see cref="RecordPractitionerAsync"/>, <see cref="PractitionerLogin"/>). The patient picker's searches are "search-type" records listing the
/// patients it showed (<see cref="PatientPicker"/>).
/// </para>
/// </summary>
public static class AuthenticationAudit
{
    /// <summary>A claimed client id longer than this is cut: the record must not carry what an attacker pads it with.</summary>
    public const int MaxClaimedClientId = 128;

    private const int MaxReason = 300;
    private const string PrincipalProperty = "fhirsortie:audited_principal";

    /// <summary>Why a request was refused before OpenIddict saw it (HttpContext.Items), for its record.</summary>
    public const string RefusalItem = "fhirsortie:auth_refusal";

    /// <summary>The client such a request claimed (HttpContext.Items): OpenIddict, which did not run, parsed nothing.</summary>
    public const string ClaimedClientItem = "fhirsortie:claimed_client";

    /// <summary>The principal a token was issued for, or whose grant was revoked: its patient and user go in the record.</summary>
    public static void Concerns(OpenIddictServerEvents.BaseContext context, ClaimsPrincipal principal) =>
        context.Transaction.Properties[PrincipalProperty] = principal;

    /// <summary>
    /// Records the token, revocation and authorization endpoints' answers; place it before the authentication middleware
    /// (OpenIddict answers there). The authorization endpoint's record is its answer to the app (a code or an OAuth
    /// error), not its steps through the login page and the patient picker, which record their own.
    /// </summary>
    public static IApplicationBuilder UseAuthenticationAudit(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var path = context.Request.Path;
        var subtype = path.Equals(AuthorizationServer.TokenPath, StringComparison.OrdinalIgnoreCase) ? AuditRecords.Login
            : path.Equals(AuthorizationServer.RevokePath, StringComparison.OrdinalIgnoreCase) ? AuditRecords.Logout
            : null;
        if (subtype is not null)
        {
            var trail = context.RequestServices.GetRequiredService<AuditTrail>();
            var clock = context.RequestServices.GetRequiredService<TimeProvider>();
            var registry = context.RequestServices.GetRequiredService<ClientRegistry>();
            context.Response.OnStarting(() => trail.CommitAsync(EntryOf(context, subtype, registry, clock.GetUtcNow())));
        }
        else if (path.Equals(AuthPages.AuthorizePath, StringComparison.OrdinalIgnoreCase))
        {
            context.Response.OnStarting(() => RecordAuthorizationAsync(context));
        }
        await next(context);
    });

    /// <summary>The authorization endpoint's answer to the app: a Login record naming the app, the practitioner and the patient.</summary>
    private static async Task RecordAuthorizationAsync(HttpContext context)
    {
        var answer = context.Features.Get<OpenIddictServerAspNetCoreFeature>()?.Transaction?.Response;
        if (answer is null || (answer.Code is null && answer.Error is null)) return; // a step: the login page or the picker
        var services = context.RequestServices;
        var practitioner = await AuthPages.PractitionerAsync(context) is { } name ? services.GetRequiredService<Practitioners>().Find(name) : null;
        var entry = EntryOf(context, AuditRecords.Login, services.GetRequiredService<ClientRegistry>(), services.GetRequiredService<TimeProvider>().GetUtcNow());
        await services.GetRequiredService<AuditTrail>().CommitAsync(entry with { User = entry.User ?? practitioner?.FhirUser });
    }

    /// <summary>
    /// The record of a practitioner's sign-in (<see cref="AuditRecords.Login"/>) or sign-out (<see cref="AuditRecords.Logout"/>)
    /// on the login pages, durable when this returns; the reason is cut to a bounded length (it may quote the provider). <paramref name="user"/>: the account concerned, when it exists
    /// (a refused sign-in under an unknown name records no name: it may be a password typed in the wrong field).
    /// <paramref name="clientId"/>: the app the practitioner signs in for, from the authorization request, when known.
    /// </summary>
    public static Task RecordPractitionerAsync(HttpContext context, string subtype, int status, PractitionerUser? user, string? clientId, string reason)
    {
        var services = context.RequestServices;
        var client = clientId is null ? null : services.GetRequiredService<ClientRegistry>().Find(clientId);
        var entry = AuditEntry.Of(context, caller: null, subtype, status, new AuditNote()) with
        {
            ClientId = client?.ClientId,
            Kind = client?.Kind.ToString(),
            Finess = client?.OrganizationFiness,
            User = user?.FhirUser,
            Permitted = status < 400,
            Reason = Cut(user is null ? reason : $"{reason} ({user.UserName})", MaxReason),
        };
        return services.GetRequiredService<AuditTrail>().CommitAsync(entry);
    }

    /// <summary>The record of one token, revocation or authorization request, from what OpenIddict parsed and answered.</summary>
    public static AuditEntry EntryOf(HttpContext context, string subtype, ClientRegistry registry, DateTimeOffset now)
    {
        var transaction = context.Features.Get<OpenIddictServerAspNetCoreFeature>()?.Transaction;
        var request = transaction?.Request;
        var error = transaction?.Response?.Error;
        var authorization = transaction?.EndpointType == OpenIddictServerEndpointType.Authorization;
        // An authorization error goes back to the app by redirect (RFC 6749 4.1.2.1): a refused request all the same.
        var status = authorization && error is not null && context.Response.StatusCode < 400 ? StatusCodes.Status400BadRequest : context.Response.StatusCode;
        // The authorization endpoint identifies the app by its client_id and registered redirect_uri, without a secret.
        var identified = authorization && error is null ? request?.ClientId
            : transaction is null ? null : EndpointClientAuthentication.AuthenticatedClient(transaction);
        var client = identified is null ? null : registry.Find(identified);
        var principal = transaction is not null && transaction.Properties.TryGetValue(PrincipalProperty, out var value) ? value as ClaimsPrincipal : null;
        var note = new AuditNote();
        if (principal?.GetClaim(Caller.Claims.Patient) is { Length: > 0 } patient) note.Patients.Add(patient);
        return AuditEntry.Of(caller: null, subtype, status, now, note, query: null, AuditEntry.AddressOf(context)) with
        {
            ClientId = client?.ClientId ?? Claimed(request) ?? context.Items[ClaimedClientItem] as string,
            Kind = client?.Kind.ToString(),
            Finess = client?.OrganizationFiness,
            User = principal?.GetClaim(Caller.Claims.FhirUser),
            Permitted = status < 400,
            Reason = Cut(error is not null
                ? $"{error}: {transaction!.Response!.ErrorDescription}"
                : status >= 400 ? context.Items[RefusalItem] as string ?? $"HTTP {status}"
                : authorization ? "authorization code issued"
                : subtype == AuditRecords.Login ? $"token issued ({request?.GrantType})"
                : principal is not null ? "grant revoked"
                : "nothing revoked: the token is unknown, expired or another client's", MaxReason),
        };
    }

    private static string? Claimed(OpenIddictRequest? request) => Claimed(request?.ClientId, request?.ClientAssertion);

    /// <summary>The client a request names before it is authenticated: client_id (form or Basic), else its assertion's subject, unverified.</summary>
    public static string? Claimed(string? clientId, string? clientAssertion)
    {
        if (clientId is { Length: > 0 } id) return Cut(id, MaxClaimedClientId);
        if (clientAssertion is not { Length: > 0 } assertion) return null;
        try
        {
            return new JsonWebToken(assertion).Subject is { Length: > 0 } subject ? Cut(subject, MaxClaimedClientId) : null;
        }
        catch (Exception e) when (e is ArgumentException or Microsoft.IdentityModel.Tokens.SecurityTokenMalformedException)
        {
            return null;
        }
    }

    private static string Cut(string text, int max) => text.Length <= max ? text : text[..max] + "…";
}
