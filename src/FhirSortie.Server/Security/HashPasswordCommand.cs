namespace FhirSortie.Server.Security;

/// <summary>
/// Operator command <c>dotnet FhirSortie.Server.dll hash-password</c>: reads a practitioner's password on standard
/// input and prints the hash to put in <c>FhirSortie:Users:&lt;n&gt;:PasswordHash</c>, in the format the login page
/// verifies (<see cref="Practitioners.HashPassword"/>, ASP.NET Core Identity's PBKDF2). Standard input, never an
/// argument: an argument stays in the shell's history and is visible to every user in the process list.
/// On a terminal it asks twice, without echo; piped (<c>printf %s "$PASSWORD" | ...</c>) it reads the first line.
/// </summary>
public static class HashPasswordCommand
{
    public const string Verb = "hash-password";

    /// <summary>Shorter passwords are refused: the login page is the only thing between a guesser and patient data.</summary>
    public const int MinimumLength = 12;

    public static async Task<int> RunAsync(TextReader input, TextWriter output, TextWriter error)
    {
        string? password;
        if (ReferenceEquals(input, Console.In) && !Console.IsInputRedirected)
        {
            password = ReadHidden(error, "Password: ");
            if (password != ReadHidden(error, "Again: "))
            {
                await error.WriteLineAsync("The two passwords differ: nothing printed.");
                return CommandLine.Refused;
            }
        }
        else
        {
            password = await input.ReadLineAsync();
        }
        if (string.IsNullOrEmpty(password))
        {
            await error.WriteLineAsync($"No password on standard input. Usage: {Verb} (then type it), or: printf %s \"$PASSWORD\" | dotnet FhirSortie.Server.dll {Verb}");
            return CommandLine.Refused;
        }
        if (password.Length < MinimumLength)
        {
            await error.WriteLineAsync($"The password is shorter than {MinimumLength} characters: nothing printed.");
            return CommandLine.Refused;
        }
        await output.WriteLineAsync(Practitioners.HashPassword(password));
        return 0;
    }

    private static string ReadHidden(TextWriter prompt, string text)
    {
        prompt.Write(text);
        var typed = new System.Text.StringBuilder();
        for (var key = Console.ReadKey(intercept: true); key.Key != ConsoleKey.Enter; key = Console.ReadKey(intercept: true))
        {
            if (key.Key == ConsoleKey.Backspace) { if (typed.Length > 0) typed.Length--; }
            else if (!char.IsControl(key.KeyChar)) typed.Append(key.KeyChar);
        }
        prompt.WriteLine();
        return typed.ToString();
    }
}
