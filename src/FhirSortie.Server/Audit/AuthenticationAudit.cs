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

    /// <summary>Records the token and revocation endpoints' answers; place it before the authentication middleware (OpenIddict answers there).</summary>
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
        await next(context);
    });

    /// <summary>The record of one token or revocation request, from what OpenIddict parsed and answered.</summary>
    public static AuditEntry EntryOf(HttpContext context, string subtype, ClientRegistry registry, DateTimeOffset now)
    {
        var transaction = context.Features.Get<OpenIddictServerAspNetCoreFeature>()?.Transaction;
        var request = transaction?.Request;
        var error = transaction?.Response?.Error;
        var status = context.Response.StatusCode;
        var authenticated = transaction is null ? null : EndpointClientAuthentication.AuthenticatedClient(transaction);
        var client = authenticated is null ? null : registry.Find(authenticated);
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
