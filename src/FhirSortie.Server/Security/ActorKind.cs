namespace FhirSortie.Server.Security;

/// <summary>
/// What kind of actor a client acts as (see shared domain: USMP, addiction centre, housing service, GP, justice...).
/// Decisions on scopes, consent and secrecy depend on it, so it travels in every access token.
/// </summary>
public enum ActorKind
{
    Usmp,
    Csapa,
    Act,
    Care,
    Telemedicine,
    Justice,
    Social,
    Auditor,
    Observer,
    Admin,
}
