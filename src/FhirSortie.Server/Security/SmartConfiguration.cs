using System.Text.Json;
using Hl7.Fhir.Model;
using OpenIddict.Abstractions;

namespace FhirSortie.Server.Security;

/// <summary>
/// SMART discovery: [base]/.well-known/smart-configuration (always JSON, absolute URLs as clients see them, honouring
/// FhirSortie:PublicBaseUrl / FhirSortie:Auth:Issuer), and the security section of the CapabilityStatement.
/// </summary>
public static class SmartConfiguration
{
    public const string OAuthUrisExtension = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

    public static readonly string[] Capabilities =
    [
        "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
        "context-ehr-patient", "context-standalone-patient", "permission-v2", "permission-v1", "permission-patient",
        "permission-user", "sso-openid-connect",
    ];

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var registry = context.RequestServices.GetRequiredService<ClientRegistry>();
        var document = new Dictionary<string, object>
        {
            ["issuer"] = AuthorizationServer.IssuerFor(context),
            ["jwks_uri"] = AuthorizationServer.EndpointUrl(context, AuthorizationServer.JwksPath),
            ["authorization_endpoint"] = AuthorizationServer.EndpointUrl(context, AuthorizationServer.AuthorizePath),
            ["token_endpoint"] = AuthorizationServer.EndpointUrl(context, AuthorizationServer.TokenPath),
            ["revocation_endpoint"] = AuthorizationServer.EndpointUrl(context, AuthorizationServer.RevokePath),
            ["revocation_endpoint_auth_methods_supported"] = new[] { "client_secret_basic", "client_secret_post", "private_key_jwt", "none" },
            ["introspection_endpoint"] = AuthorizationServer.EndpointUrl(context, AuthorizationServer.IntrospectPath),
            ["grant_types_supported"] = new[] { OpenIddictConstants.GrantTypes.AuthorizationCode, OpenIddictConstants.GrantTypes.ClientCredentials, OpenIddictConstants.GrantTypes.RefreshToken },
            ["token_endpoint_auth_methods_supported"] = new[] { "client_secret_basic", "client_secret_post", "private_key_jwt" },
            ["token_endpoint_auth_signing_alg_values_supported"] = OpenIddictHandlers.ClientAssertionValidation.Algorithms,
            ["scopes_supported"] = AuthorizationServer.StandardScopes.Concat(registry.AllScopes).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray(),
            ["response_types_supported"] = new[] { "code" },
            ["code_challenge_methods_supported"] = new[] { "S256" },
            ["capabilities"] = Capabilities,
        };
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        await JsonSerializer.SerializeAsync(context.Response.Body, document, cancellationToken: context.RequestAborted);
    }

    /// <summary>CapabilityStatement.rest.security: the SMART-on-FHIR service and the OAuth endpoints.</summary>
    public static void DescribeSecurity(CapabilityStatement statement, HttpContext context)
    {
        foreach (var rest in statement.Rest)
        {
            var security = new CapabilityStatement.SecurityComponent
            {
                Cors = true,
                Service = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR", "SMART-on-FHIR")],
                Description = new Markdown("OAuth 2.0 / SMART on FHIR v2: client_credentials (private_key_jwt or client secret) and authorization code with PKCE; see .well-known/smart-configuration. " + Consents.AccessRules.LabelsAndConsent),
            };
            var uris = new Extension { Url = OAuthUrisExtension };
            uris.Extension.Add(new Extension("token", new FhirUri(AuthorizationServer.EndpointUrl(context, AuthorizationServer.TokenPath))));
            uris.Extension.Add(new Extension("authorize", new FhirUri(AuthorizationServer.EndpointUrl(context, AuthorizationServer.AuthorizePath))));
            uris.Extension.Add(new Extension("revoke", new FhirUri(AuthorizationServer.EndpointUrl(context, AuthorizationServer.RevokePath))));
            uris.Extension.Add(new Extension("introspect", new FhirUri(AuthorizationServer.EndpointUrl(context, AuthorizationServer.IntrospectPath))));
            security.Extension.Add(uris);
            rest.Security = security;
        }
    }
}
