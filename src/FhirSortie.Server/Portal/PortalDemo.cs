using FhirSortie.Server.Security;

namespace FhirSortie.Server.Portal;

/// <summary>
/// Demo mode only: the portal's confidential client and one practitioner per demo organisation, each
/// "&lt;name&gt;" / "&lt;name&gt;-password" (public knowledge, like the demo clients' secrets).
/// </summary>
public static class PortalDemo
{
    public const string ClientId = "portal";
    public const string Secret = "portal-secret";

    // Care organisations that receive: read what the consent lets through, move their hand-off Tasks, record the
    // appointment's outcome, issue attendance attestations, record a consent they collected (Consent.u: attach the
    // signed sheet, withdraw it; Bundle: the sheet and its Consent in one transaction).
    private const string ReceiverScopes = "user/*.rs user/Task.u user/Appointment.u user/DocumentReference.c user/Consent.c user/Consent.u";
    private const string UsmpScopes = "user/*.cruds";
    // Location: where the appointment takes place (a directory resource, never clinical).
    private const string JusticeScopes = "user/Patient.rs user/Appointment.rs user/DocumentReference.rs user/Location.rs";
    private const string AuditorScopes = "user/AuditEvent.rs user/Patient.rs";

    /// <summary>Fresh instances each time (the caller sets their password hash).</summary>
    public static IReadOnlyList<PractitionerUser> Users =>
    [
        User("usmp-medecin", "Dr Camille Exemple (USMP, démo)", ActorKind.Usmp, Demo.DemoPackages.UsmpFiness, UsmpScopes),
        User("csapa-referent", "Inès Modèle (CSAPA Les Tilleuls, démo)", ActorKind.Csapa, Demo.DemoPackages.CsapaAFiness, ReceiverScopes),
        User("csapa2-accueil", "Accueil du CSAPA Bastide (démo)", ActorKind.Csapa, Demo.DemoPackages.CsapaBFiness, ReceiverScopes),
        User("act-coordination", "Coordination de l'ACT Horizon (démo)", ActorKind.Act, Demo.DemoPackages.ActFiness, ReceiverScopes),
        User("spip-cpip", "CPIP du SPIP de Paris (démo)", ActorKind.Justice, "750000069", JusticeScopes),
        User("dpo", "Délégué à la protection des données (démo)", ActorKind.Auditor, "750000077", AuditorScopes),
    ];

    /// <summary>
    /// The portal as a registered confidential client acting for its users. Its redirect URIs are the callback on
    /// every address this server was told to listen on (urls, PublicBaseUrl) and the README's default one.
    /// </summary>
    public static ClientOptions Client(IConfiguration configuration)
    {
        var origins = new List<string> { "http://127.0.0.1:8080", "http://localhost:8080" };
        foreach (var url in (configuration["urls"] ?? configuration["ASPNETCORE_URLS"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(url.Replace("://+", "://0.0.0.0", StringComparison.Ordinal).Replace("://*", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var uri)) continue;
            if (uri.Host is "0.0.0.0" or "[::]" or "::")
            {
                origins.Add($"{uri.Scheme}://127.0.0.1:{uri.Port}");
                origins.Add($"{uri.Scheme}://localhost:{uri.Port}");
            }
            else origins.Add(uri.GetLeftPart(UriPartial.Authority));
        }
        if (configuration["FhirSortie:PublicBaseUrl"] is { Length: > 0 } publicBase && Uri.TryCreate(publicBase, UriKind.Absolute, out var configured))
            origins.Add(configured.GetLeftPart(UriPartial.Authority));
        return new ClientOptions
        {
            ClientId = ClientId,
            Secret = Secret,
            ActorKind = nameof(ActorKind.Care),
            ActsForUser = true,
            AllowedScopes = string.Join(' ', new[] { "openid fhirUser offline_access", ReceiverScopes, UsmpScopes, JusticeScopes, AuditorScopes }
                .SelectMany(s => s.Split(' ')).Distinct(StringComparer.Ordinal)),
            RedirectUris = [.. origins.Distinct(StringComparer.Ordinal).Select(o => o + PortalRoutes.Callback)],
        };
    }

    private static PractitionerUser User(string name, string display, ActorKind kind, string finess, string scopes) => new()
    {
        UserName = name,
        DisplayName = display,
        FhirUser = "Practitioner/" + name,
        ActorKind = kind.ToString(),
        OrganizationFiness = finess,
        AllowedScopes = scopes,
    };
}
