namespace FhirSortie.Server.Security;

/// <summary>
/// Operator commands on the authorization server's signing keys (<see cref="SigningKeyStore"/>), run with the
/// server's configuration once the migrations and the key store's start have run:
/// <c>rotate-signing-key</c> adds a key generation (every node signs with it from its next key reload; older keys keep
/// validating), <c>retire-signing-key &lt;kid&gt;</c> stops a key from validating (at once on the node that retires it,
/// within <see cref="SigningKeyStore.RefreshInterval"/> on the others), once the tokens it signed have expired.
/// </summary>
public static class SigningKeyCommands
{
    public const string Rotate = "rotate-signing-key";
    public const string Retire = "retire-signing-key";

    public static bool Handles(CommandLine command) => command.Is(Rotate) || command.Is(Retire);

    public static async Task<int> RunAsync(WebApplication app, CommandLine command, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var keys = app.Services.GetRequiredService<SigningKeyStore>();
        if (command.Is(Rotate))
        {
            var kid = await keys.RotateAsync(SigningKeyStore.Sign, ct);
            await output.WriteLineAsync($"New signing key: {kid}");
            return 0;
        }
        var retired = command.Operands[0];
        try
        {
            await keys.RetireAsync(retired, ct);
        }
        catch (InvalidOperationException e)
        {
            await error.WriteLineAsync(e.Message);
            return CommandLine.Refused;
        }
        await output.WriteLineAsync($"Retired signing key: {retired} (tokens it signed no longer validate)");
        return 0;
    }
}
