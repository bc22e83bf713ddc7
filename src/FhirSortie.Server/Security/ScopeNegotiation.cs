namespace FhirSortie.Server.Security;

/// <summary>
/// Which requested scopes a client may be granted (token endpoint, authorization endpoint, refresh, external tokens).
/// A client may ask for less than it is registered for, as SMART invites it to (least privilege): a resource scope
/// is granted when one registered scope includes it (<see cref="SmartScope.Includes"/>): <c>system/MedicationRequest.rs</c>
/// or <c>system/*.read</c> (v1) or <c>system/Observation.rs?category=laboratory</c> for a client registered
/// <c>system/*.rs</c>. Other scopes (openid, fhirUser, launch, offline_access...) are granted only as registered.
/// What is granted is what the token carries, and so what <see cref="ScopeRule"/> enforces.
/// </summary>
public static class ScopeNegotiation
{
    /// <summary>True when <paramref name="registered"/> covers <paramref name="requested"/>.</summary>
    public static bool Covers(IReadOnlyCollection<string> registered, string requested)
    {
        if (registered.Contains(requested)) return true;
        if (SmartScope.TryParse(requested) is not { } wanted) return false;
        return registered.Any(r => SmartScope.TryParse(r) is { } scope && scope.Includes(wanted));
    }

    /// <summary>The first of <paramref name="requested"/> that <paramref name="registered"/> does not cover; null when all are covered.</summary>
    public static string? FirstRefused(IEnumerable<string> requested, IReadOnlyCollection<string> registered) =>
        requested.FirstOrDefault(s => !Covers(registered, s));

    /// <summary>The OAuth error description naming the refused scope.</summary>
    public static string Refusal(string refused, string of = "this client") =>
        $"Scope '{refused}' is not allowed for {of}: ask for the registered scopes or narrower ones (fewer types, letters, or added restrictions).";
}
