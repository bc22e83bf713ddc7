using System.Text.Json;
using System.Text.Json.Serialization;

namespace FhirSortie.Server.Security;

/// <summary>
/// A client as configured in "FhirSortie:Clients" (or the FhirSortie:ClientsFile JSON). AllowedScopes is one
/// space-separated string so that an environment variable can carry it (FhirSortie__Clients__0__AllowedScopes).
/// </summary>
public sealed class ClientOptions
{
    public string ClientId { get; set; } = "";
    public string? Secret { get; set; }
    /// <summary>Inline JSON Web Key Set (public keys) for private_key_jwt.</summary>
    [JsonConverter(typeof(RawJsonStringConverter))]
    public string? Jwks { get; set; }
    public string? JwksUri { get; set; }
    public string? ActorKind { get; set; }
    public string? OrganizationFiness { get; set; }
    public string AllowedScopes { get; set; } = "";
    public List<string> RedirectUris { get; set; } = [];
    /// <summary>Organisation name, used when demo mode seeds the Organization resource.</summary>
    public string? OrganizationName { get; set; }
    /// <summary>
    /// URL prefixes a Subscription of this client may deliver to (Notifications/): absolute http(s) URLs; a prefix
    /// written without a port allows any port of that host (demo receivers on 127.0.0.1 pick a free port).
    /// </summary>
    public List<string> NotificationEndpoints { get; set; } = [];
    /// <summary>
    /// The exit portal (Portal/): its tokens act for the signed-in practitioner's own organisation (their
    /// PractitionerRole: <see cref="PractitionerUser.ActorKind"/>, <see cref="PractitionerUser.OrganizationFiness"/>)
    /// instead of the client's, within the practitioner's <see cref="PractitionerUser.AllowedScopes"/>.
    /// </summary>
    public bool ActsForUser { get; set; }
}

/// <summary>A validated client: what the token endpoint and the principal builder work from.</summary>
public sealed record Client(
    string ClientId,
    string? Secret,
    Microsoft.IdentityModel.Tokens.JsonWebKeySet? Jwks,
    Uri? JwksUri,
    ActorKind Kind,
    string? OrganizationFiness,
    IReadOnlySet<string> AllowedScopes,
    IReadOnlyList<Uri> RedirectUris,
    string? OrganizationName)
{
    /// <summary>Where this client's Subscriptions may deliver (see <see cref="ClientOptions.NotificationEndpoints"/>).</summary>
    public IReadOnlyList<Uri> NotificationEndpoints { get; init; } = [];

    /// <summary>See <see cref="ClientOptions.ActsForUser"/>.</summary>
    public bool ActsForUser { get; init; }

    /// <summary>True when <paramref name="endpoint"/> lies under one of <see cref="NotificationEndpoints"/>.</summary>
    public bool MayNotify(Uri endpoint) => NotificationEndpoints.Any(prefix => Under(endpoint, prefix));

    private static bool Under(Uri endpoint, Uri prefix)
    {
        if (!endpoint.IsAbsoluteUri || endpoint.Scheme != prefix.Scheme || !string.Equals(endpoint.Host, prefix.Host, StringComparison.OrdinalIgnoreCase)) return false;
        if (!AnyPort(prefix) && endpoint.Port != prefix.Port) return false;
        if (endpoint.UserInfo.Length > 0) return false;
        // Path prefix on segment boundaries: "/hooks" allows "/hooks/csapa", not "/hooks-evil".
        var path = prefix.AbsolutePath.TrimEnd('/');
        var candidate = endpoint.AbsolutePath;
        return path.Length == 0 || candidate == path || candidate.StartsWith(path + "/", StringComparison.Ordinal);
    }

    /// <summary>"http://127.0.0.1/" (no port written) allows every port of the host.</summary>
    private static bool AnyPort(Uri prefix) =>
        prefix.IsDefaultPort && !prefix.OriginalString.AsSpan(prefix.Scheme.Length + 3).StartsWith($"{prefix.Host}:", StringComparison.OrdinalIgnoreCase);

    /// <summary>Confidential: can authenticate with a secret or a signed assertion. Public clients only use PKCE.</summary>
    public bool IsConfidential => Secret is not null || Jwks is not null || JwksUri is not null;
}

/// <summary>Accepts a JWKS written in a clients file either as a JSON object or as a string holding JSON.</summary>
internal sealed class RawJsonStringConverter : JsonConverter<string?>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.Null => null,
            JsonTokenType.String => reader.GetString(),
            _ => JsonDocument.ParseValue(ref reader).RootElement.GetRawText(),
        };

    public override void Write(Utf8JsonWriter writer, string? value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}
