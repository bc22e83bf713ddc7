using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Server.Security;

/// <summary>
/// The clients allowed to ask for tokens, read once at start from configuration ("FhirSortie:Clients", the optional
/// "FhirSortie:ClientsFile" JSON list, and the demo clients in demo mode). A bad entry stops the start with a message
/// naming the client and the field, rather than failing the first token request.
/// </summary>
public sealed class ClientRegistry
{
    public const string ClientsSection = "FhirSortie:Clients";
    public const string ClientsFileKey = "FhirSortie:ClientsFile";

    private readonly Dictionary<string, Client> _clients;

    public ClientRegistry(IEnumerable<Client> clients)
    {
        _clients = new Dictionary<string, Client>(StringComparer.Ordinal);
        foreach (var client in clients)
        {
            if (!_clients.TryAdd(client.ClientId, client))
                throw new InvalidOperationException($"Client '{client.ClientId}' is configured twice (FhirSortie:Clients, FhirSortie:ClientsFile or demo mode).");
        }
    }

    public IReadOnlyCollection<Client> All => _clients.Values;

    public Client? Find(string? clientId) =>
        clientId is not null && _clients.TryGetValue(clientId, out var client) ? client : null;

    /// <summary>Every scope some client may be granted: OpenIddict must know them to accept them.</summary>
    public IReadOnlyCollection<string> AllScopes =>
        _clients.Values.SelectMany(c => c.AllowedScopes).Distinct(StringComparer.Ordinal).ToArray();

    public static ClientRegistry FromConfiguration(IConfiguration configuration, bool demoMode)
    {
        var entries = new List<(string Source, ClientOptions Options)>();
        var section = configuration.GetSection(ClientsSection);
        var index = 0;
        foreach (var child in section.GetChildren())
        {
            var options = child.Get<ClientOptions>() ?? new ClientOptions();
            entries.Add(($"{ClientsSection}:{child.Key}", options));
            index++;
        }
        if (configuration[ClientsFileKey] is { Length: > 0 } file) entries.AddRange(ReadFile(file));
        if (demoMode)
        {
            foreach (var demo in DemoClients.All) entries.Add(("demo mode", demo));
            entries.Add(("demo mode", Portal.PortalDemo.Client(configuration)));
        }
        return new ClientRegistry(entries.Select(e => Validate(e.Source, e.Options)));
    }

    /// <summary>The entries of a clients file (a JSON list of <see cref="ClientOptions"/>), each named by its place in the file; not validated yet.</summary>
    public static IReadOnlyList<(string Source, ClientOptions Options)> ReadFile(string file)
    {
        if (!File.Exists(file)) throw new InvalidOperationException($"{ClientsFileKey} names '{file}', which does not exist.");
        List<ClientOptions?>? fromFile;
        try
        {
            fromFile = JsonSerializer.Deserialize<List<ClientOptions?>>(File.ReadAllText(file),
                new JsonSerializerOptions { PropertyNameCaseInsensitive = true, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidOperationException($"{ClientsFileKey} '{file}' is not a JSON list of clients: {e.Message}", e);
        }
        return [.. (fromFile ?? []).Select((options, i) => ($"{file}[{i}]", options ?? new ClientOptions()))];
    }

    /// <summary>Checks one configured client and turns it into a <see cref="Client"/>; throws with a clear message otherwise.</summary>
    public static Client Validate(string source, ClientOptions o)
    {
        var name = string.IsNullOrWhiteSpace(o.ClientId) ? source : $"client '{o.ClientId}' ({source})";
        InvalidOperationException Bad(string problem) => new($"Bad client configuration, {name}: {problem}");

        if (string.IsNullOrWhiteSpace(o.ClientId)) throw Bad("ClientId is required.");
        if (o.ClientId.Any(c => char.IsWhiteSpace(c) || char.IsControl(c))) throw Bad("ClientId must not contain spaces.");
        if (!Enum.TryParse<ActorKind>(o.ActorKind, ignoreCase: true, out var kind) || !Enum.IsDefined(kind) || int.TryParse(o.ActorKind, out _))
            throw Bad($"ActorKind '{o.ActorKind}' is not one of {string.Join(", ", Enum.GetNames<ActorKind>())}.");
        if (o.OrganizationFiness is not null && !Finess.IsValid(o.OrganizationFiness))
            throw Bad($"OrganizationFiness '{o.OrganizationFiness}' is not a 9-digit FINESS number with a valid Luhn key.");
        if (o.Secret is not null && o.Secret.Length < 8) throw Bad("Secret is shorter than 8 characters.");

        JsonWebKeySet? jwks = null;
        if (!string.IsNullOrWhiteSpace(o.Jwks))
        {
            try
            {
                jwks = new JsonWebKeySet(o.Jwks);
            }
            catch (Exception e) when (e is ArgumentException or JsonException or InvalidOperationException)
            {
                throw Bad($"Jwks is not a JSON Web Key Set: {e.Message}");
            }
            if (jwks.Keys.Count == 0) throw Bad("Jwks holds no key.");
            if (jwks.Keys.Any(k => k.HasPrivateKey)) throw Bad("Jwks holds a private key; register the public keys only.");
        }
        Uri? jwksUri = null;
        if (!string.IsNullOrWhiteSpace(o.JwksUri))
        {
            if (!Uri.TryCreate(o.JwksUri, UriKind.Absolute, out jwksUri) || (jwksUri.Scheme != Uri.UriSchemeHttps && jwksUri.Scheme != Uri.UriSchemeHttp))
                throw Bad($"JwksUri '{o.JwksUri}' is not an absolute http(s) URL.");
        }
        if (jwks is not null && jwksUri is not null) throw Bad("give Jwks or JwksUri, not both.");

        var scopes = (o.AllowedScopes ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
        if (scopes.Count == 0) throw Bad("AllowedScopes is empty.");

        var redirects = new List<Uri>();
        foreach (var text in o.RedirectUris ?? [])
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || !string.IsNullOrEmpty(uri.Fragment))
                throw Bad($"RedirectUri '{text}' is not an absolute URL without fragment.");
            redirects.Add(uri);
        }
        if (jwks is null && jwksUri is null && o.Secret is null && redirects.Count == 0)
            throw Bad("it has no Secret, no Jwks/JwksUri and no RedirectUris: it could never obtain a token.");

        var endpoints = new List<Uri>();
        foreach (var text in o.NotificationEndpoints ?? [])
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
                || !string.IsNullOrEmpty(uri.Fragment) || !string.IsNullOrEmpty(uri.Query) || uri.UserInfo.Length > 0)
                throw Bad($"NotificationEndpoint '{text}' is not an absolute http(s) URL without query, fragment or user info.");
            endpoints.Add(uri);
        }

        return new Client(o.ClientId, o.Secret, jwks, jwksUri, kind, o.OrganizationFiness, scopes, redirects, o.OrganizationName)
        {
            NotificationEndpoints = endpoints,
            ActsForUser = o.ActsForUser,
        };
    }
}
