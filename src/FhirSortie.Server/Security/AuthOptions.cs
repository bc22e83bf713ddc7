namespace FhirSortie.Server.Security;

/// <summary>
/// Configuration section "FhirSortie:Auth": our own authorization server's issuer, and optionally an external OpenID
/// provider (hospital Keycloak, Pro Santé Connect) whose access tokens the FHIR API also accepts.
/// </summary>
public sealed class AuthOptions
{
    public const string Section = "FhirSortie:Auth";

    /// <summary>
    /// Issuer of our tokens ("https://fhirsortie.example.fr/"). Empty: derived from FhirSortie:PublicBaseUrl (its
    /// origin and path base without "/fhir"), else from the request. Every node of a cluster must agree on it.
    /// </summary>
    public string? Issuer { get; set; }

    /// <summary>Access token lifetime in seconds; capped at 300 (SMART backend services: tokens live five minutes at most).</summary>
    public int AccessTokenLifetimeSeconds { get; set; } = 300;

    /// <summary>How long client JWKS fetched from a JwksUri are cached.</summary>
    public int JwksCacheSeconds { get; set; } = 300;

    public ExternalProviderOptions? External { get; set; }

    /// <summary>An OpenID Connect provider practitioners sign in with on the login page (see <see cref="PractitionerProviderOptions"/>).</summary>
    public PractitionerProviderOptions? PractitionerProvider { get; set; }

    /// <summary>
    /// Refused client authentications (invalid_client) of one client id from one address within
    /// <see cref="FailedClientAuthenticationWindowSeconds"/> after which that pair gets 429 until the window ends
    /// (<see cref="FailedClientAuthentications"/>); 0: no limit.
    /// </summary>
    public int MaxFailedClientAuthentications { get; set; } = 20;

    public int FailedClientAuthenticationWindowSeconds { get; set; } = 300;

    /// <summary>
    /// Refused sign-ins (wrong password) of one user name from one address within
    /// <see cref="FailedPractitionerLoginWindowSeconds"/> after which that pair gets 429 until the window ends; ten times
    /// as many from one address, whatever the names, block that address (password spraying)
    /// (<see cref="FailedPractitionerLogins"/>); 0: no limit.
    /// </summary>
    public int MaxFailedPractitionerLogins { get; set; } = 10;

    public int FailedPractitionerLoginWindowSeconds { get; set; } = 900;
}

/// <summary>
/// An external OpenID provider whose access tokens are accepted on /fhir. Its tokens must carry our audience (the FHIR
/// base URL, or <see cref="Audience"/>); the client they were issued to (claim <see cref="ClientIdClaim"/>) must be one
/// of our configured clients, which gives the actor kind and FINESS unless the token carries them.
/// </summary>
public sealed class ExternalProviderOptions
{
    public string Issuer { get; set; } = "";

    /// <summary>JWKS URL; default: the jwks_uri of {Issuer}/.well-known/openid-configuration.</summary>
    public string? JwksUri { get; set; }

    /// <summary>Expected audience; default: the FHIR base URL.</summary>
    public string? Audience { get; set; }

    /// <summary>Accepted "typ" headers; Keycloak types its access tokens "JWT".</summary>
    public List<string> TokenTypes { get; set; } = ["at+jwt", "application/at+jwt", "JWT"];

    public string ClientIdClaim { get; set; } = "azp";
    public string ScopeClaim { get; set; } = "scope";
    public string ActorKindClaim { get; set; } = "actor_kind";
    public string FinessClaim { get; set; } = "finess";
    public string PatientClaim { get; set; } = "patient";
    public string FhirUserClaim { get; set; } = "fhirUser";
}

/// <summary>
/// An OpenID Connect provider practitioners sign in with on the login page of a SMART launch (Pro Santé Connect, the
/// hospital's Keycloak), beside passwords or instead of them (<see cref="AllowPasswords"/>). Only the practitioners
/// listed in FhirSortie:Users with the provider's subject (<see cref="PractitionerUser.ExternalSubject"/>) may sign
/// in: a national provider authenticates every health professional, not the people this gateway serves.
/// </summary>
public sealed class PractitionerProviderOptions
{
    /// <summary>The provider's issuer URL; its discovery document is at .well-known/openid-configuration below it.</summary>
    public string Authority { get; set; } = "";

    public string ClientId { get; set; } = "";

    public string? ClientSecret { get; set; }

    /// <summary>What the login page's button says: "Se connecter avec ...".</summary>
    public string DisplayName { get; set; } = "Pro Santé Connect";

    /// <summary>Scopes asked besides openid, space-separated (Pro Santé Connect: "scope_all").</summary>
    public string? Scope { get; set; }

    /// <summary>The claim that names the practitioner (Pro Santé Connect: "SubjectNameID", the RPPS-based id, from userinfo).</summary>
    public string SubjectClaim { get; set; } = "sub";

    /// <summary>Also read the userinfo endpoint's claims (Pro Santé Connect puts the practitioner's ids there).</summary>
    public bool UseUserInfo { get; set; }

    /// <summary>Only a provider at an https:// URL (tests on 127.0.0.1 turn it off).</summary>
    public bool RequireHttpsMetadata { get; set; } = true;

    /// <summary>False: the login page offers the provider only, and a posted password is refused.</summary>
    public bool AllowPasswords { get; set; } = true;
}
