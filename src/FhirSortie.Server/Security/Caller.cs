using System.Security.Claims;

namespace FhirSortie.Server.Security;

/// <summary>
/// Who is calling, read once from the authenticated principal: the client, the kind of actor, the organisation it
/// acts for, its granted scopes and, inside a SMART launch, the patient in context. Scopes, consent and audit all
/// decide from this, never from raw claims.
/// </summary>
public sealed record Caller(
    string ClientId,
    ActorKind Kind,
    string? OrganizationFiness,
    IReadOnlyList<string> Scopes,
    string? PatientId,
    string? FhirUser)
{
    /// <summary>Claim names carried by our access tokens (and mapped from an external provider's tokens).</summary>
    public static class Claims
    {
        public const string ClientId = "client_id";
        /// <summary>Space-separated scopes; several claims are also accepted.</summary>
        public const string Scope = "scope";
        public const string ActorKind = "actor_kind";
        public const string OrganizationFiness = "finess";
        /// <summary>The launch patient (a Patient id on this server) for patient/ scopes.</summary>
        public const string Patient = "patient";
        public const string FhirUser = "fhirUser";
    }

    /// <summary>The caller of an authenticated request, or null when the request carries no usable identity.</summary>
    public static Caller? From(ClaimsPrincipal principal)
    {
        if (principal.Identity?.IsAuthenticated != true) return null;
        var clientId = principal.FindFirst(Claims.ClientId)?.Value;
        if (string.IsNullOrEmpty(clientId)) return null;
        var kindText = principal.FindFirst(Claims.ActorKind)?.Value;
        if (!Enum.TryParse<ActorKind>(kindText, ignoreCase: true, out var kind)) return null;
        var scopes = principal.FindAll(Claims.Scope)
            .SelectMany(c => c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Distinct(StringComparer.Ordinal)
            .ToArray();
        return new Caller(
            clientId,
            kind,
            principal.FindFirst(Claims.OrganizationFiness)?.Value,
            scopes,
            principal.FindFirst(Claims.Patient)?.Value,
            principal.FindFirst(Claims.FhirUser)?.Value);
    }

    /// <summary>The caller of this request, read once and kept on the HttpContext.</summary>
    public static Caller? Of(HttpContext context)
    {
        if (context.Items.TryGetValue(typeof(Caller), out var cached)) return cached as Caller;
        var caller = From(context.User);
        context.Items[typeof(Caller)] = caller;
        return caller;
    }
}
