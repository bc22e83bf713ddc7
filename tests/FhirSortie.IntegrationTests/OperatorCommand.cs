namespace FhirSortie.IntegrationTests;

/// <summary>What an operator command wrote and how it ended.</summary>
public sealed record CommandResult(int Exit, string Output, string Error)
{
    public string All => Output + Error;
}

/// <summary>
/// Runs the built gateway with a command line as an operator would (<c>dotnet FhirSortie.Server.dll backup ...</c>), with
/// the storage's and the test client's configuration, in Production. A command that does not end within the timeout
/// (a server started by mistake) is killed and fails the test.
/// </summary>
public static class OperatorCommand
{
    public static async Task<CommandResult> RunAsync(Storage? storage, IEnumerable<string> arguments, string? input = null,
        string? workingDirectory = null, TimeSpan? timeout = null)
    {
        var info = ServerProcess.Dotnet(workingDirectory ?? Path.GetDirectoryName(ServerProcess.ServerDll)!, [ServerProcess.ServerDll, .. arguments]);
        foreach (var (key, value) in storage?.Environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        foreach (var (key, value) in TestClient.Settings) info.Environment[key] = value;
        using var command = System.Diagnostics.Process.Start(info)!;
        var stdout = command.StandardOutput.ReadToEndAsync();
        var stderr = command.StandardError.ReadToEndAsync();
        if (input is not null) await command.StandardInput.WriteAsync(input);
        command.StandardInput.Close();
        using var limit = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        try
        {
            await command.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            command.Kill(entireProcessTree: true);
            await command.WaitForExitAsync();
            throw new TimeoutException($"'{string.Join(' ', info.ArgumentList.Skip(1))}' did not end within {timeout}: {await stdout}{await stderr}");
        }
        return new CommandResult(command.ExitCode, await stdout, await stderr);
    }
}
