using System.Security.Claims;
using FhirSortie.Server.Security;

namespace FhirSortie.Server.Portal;

/// <summary>The signed-in portal user, as the access token of their grant says (kind and FINESS of their organisation).</summary>
public sealed record PortalUser(string UserName, string DisplayName, ActorKind Kind, string Finess, string? FhirUser)
{
    public const string KindClaim = "portal_kind";
    public const string FinessClaim = "portal_finess";
    public const string DisplayClaim = "portal_display";

    public static PortalUser? Of(ClaimsPrincipal principal)
    {
        var name = principal.Identity?.Name;
        if (name is null || !Enum.TryParse<ActorKind>(principal.FindFirst(KindClaim)?.Value, out var kind) || principal.FindFirst(FinessClaim)?.Value is not { } finess)
            return null;
        return new PortalUser(name, principal.FindFirst(DisplayClaim)?.Value ?? name, kind, finess, principal.FindFirst(Caller.Claims.FhirUser)?.Value);
    }

    /// <summary>Where this user's work starts.</summary>
    public string HomePath => Kind switch
    {
        ActorKind.Usmp => PortalRoutes.Sorties,
        ActorKind.Justice => PortalRoutes.Spip,
        ActorKind.Auditor => PortalRoutes.AccessReport,
        ActorKind.Observer => PortalRoutes.Indicators,
        _ => PortalRoutes.Inbox,
    };

    public bool Receives => Kind is ActorKind.Csapa or ActorKind.Act or ActorKind.Care;

    public string KindLabel => Kind switch
    {
        ActorKind.Usmp => "Unité sanitaire (USMP)",
        ActorKind.Csapa => "CSAPA",
        ActorKind.Act => "ACT",
        ActorKind.Care => "Structure de soins",
        ActorKind.Justice => "SPIP",
        ActorKind.Auditor => "Délégué à la protection des données",
        ActorKind.Observer => "Observation en santé publique (ARS)",
        _ => Kind.ToString(),
    };
}
