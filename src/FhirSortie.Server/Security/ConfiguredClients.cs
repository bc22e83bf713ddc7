namespace FhirSortie.Server.Security;

/// <summary>Reads the interactive clients (those with RedirectUris) from FhirSortie:Clients.</summary>
public sealed class ConfiguredClients(IConfiguration configuration) : IClientDirectory
{
    public bool CanUseAuthorizationCode(string clientId) =>
        configuration.GetSection("FhirSortie:Clients").GetChildren()
            .Any(c => c["ClientId"] == clientId && c.GetSection("RedirectUris").GetChildren().Any());
}
