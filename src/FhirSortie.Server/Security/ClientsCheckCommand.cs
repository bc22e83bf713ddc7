namespace FhirSortie.Server.Security;

/// <summary>
/// Operator command <c>dotnet FhirSortie.Server.dll clients check &lt;file&gt;</c>: reads a clients file
/// (<c>FhirSortie:ClientsFile</c>) with the gateway's own parsing and checks (<see cref="ClientRegistry"/>), so that a
/// file is known good before a restart rather than by a start that refuses it. Where the start stops at the first bad
/// entry, this names every one. Exit 0 when the gateway would accept the file, 2 otherwise.
/// </summary>
public static class ClientsCheckCommand
{
    public const string Verb = "clients check";

    public static async Task<int> RunAsync(string file, TextWriter output, TextWriter error)
    {
        IReadOnlyList<(string Source, ClientOptions Options)> entries;
        try
        {
            entries = ClientRegistry.ReadFile(file);
        }
        catch (InvalidOperationException e)
        {
            await error.WriteLineAsync(e.Message);
            return CommandLine.Refused;
        }
        var valid = new List<Client>();
        var problems = 0;
        foreach (var (source, options) in entries)
        {
            try
            {
                var client = ClientRegistry.Validate(source, options);
                valid.Add(client);
                await output.WriteLineAsync($"ok: {Describe(client)}");
            }
            catch (InvalidOperationException e)
            {
                problems++;
                await error.WriteLineAsync(e.Message);
            }
        }
        try
        {
            _ = new ClientRegistry(valid);
        }
        catch (InvalidOperationException e)
        {
            problems++;
            await error.WriteLineAsync(e.Message);
        }
        if (entries.Count == 0)
        {
            await error.WriteLineAsync($"{file} lists no client: no one could obtain a token.");
            return CommandLine.Refused;
        }
        await (problems == 0 ? output : error).WriteLineAsync(problems == 0
            ? $"{file}: {entries.Count} client(s), all accepted."
            : $"{file}: {entries.Count} client(s), {problems} problem(s): the gateway would refuse to start with this file.");
        return problems == 0 ? 0 : CommandLine.Refused;
    }

    private static string Describe(Client client)
    {
        var authentication = client.Jwks is not null ? "private_key_jwt (Jwks)"
            : client.JwksUri is not null ? $"private_key_jwt ({client.JwksUri})"
            : client.Secret is not null ? "client secret"
            : "public (authorization code with PKCE)";
        return $"{client.ClientId}, {client.Kind}, FINESS {client.OrganizationFiness ?? "none"}, {authentication}, scopes {string.Join(' ', client.AllowedScopes)}";
    }
}
