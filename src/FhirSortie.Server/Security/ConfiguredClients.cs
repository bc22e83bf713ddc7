namespace FhirSortie.Server.Security;

/// <summary>Reads the clients from FhirSortie:Clients.</summary>
public sealed class ConfiguredClients(IConfiguration configuration) : IClientDirectory
{
    public LaunchClient? Find(string clientId)
    {
        var section = configuration.GetSection("FhirSortie:Clients").GetChildren().FirstOrDefault(c => c["ClientId"] == clientId);
        if (section is null || !Enum.TryParse<ActorKind>(section["ActorKind"], ignoreCase: true, out var kind)) return null;
        return new LaunchClient(clientId, kind, section["OrganizationFiness"],
            Values(section.GetSection("AllowedScopes")), Values(section.GetSection("RedirectUris")));
    }

    // A list, or one space-separated string (as scopes are usually written).
    private static string[] Values(IConfigurationSection section) =>
        section.Value is { } single
            ? single.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            : [.. section.GetChildren().Select(c => c.Value).OfType<string>()];
}
