namespace FhirSortie.Server;

/// <summary>
/// The gateway's command line: ASP.NET Core's configuration arguments (<c>--urls X</c>, <c>--key=value</c>,
/// <c>key=value</c>, <c>--contentRoot X</c>) and at most one operator command, a verb and its operands. No verb: the
/// server starts. Anything else (<c>frobnicate</c>, a command without its operand) prints the usage and exits 2, and
/// <c>help</c> / <c>--help</c> prints it and exits 0: an argument the gateway does not know must never start a server
/// (a second one on the same data directory, or one the operator did not mean to start).
/// </summary>
public sealed class CommandLine
{
    public sealed record Command(string Verb, string Operands, string Purpose)
    {
        public string[] Words => Verb.Split(' ');

        public int OperandCount => Operands.Length == 0 ? 0 : Operands.Split(' ').Length;
    }

    public const string Help = "help";

    /// <summary>Exit code of an unknown or incomplete command line.</summary>
    public const int Refused = 2;

    /// <summary>Every operator command, as the usage lists them.</summary>
    public static readonly IReadOnlyList<Command> Commands =
    [
        new(Storage.Sqlite.SqliteBackup.Command, "<folder>", "consistent copy of the SQLite data directory, taken while the gateway runs"),
        new(Security.SigningKeyCommands.Rotate, "", "add a token signing key; every node signs with it from its next key reload"),
        new(Security.SigningKeyCommands.Retire, "<kid>", "stop a signing key from validating (once its tokens have expired; not the newest)"),
        new(Security.HashPasswordCommand.Verb, "", "read a password on standard input, print its hash for FhirSortie:Users:<n>:PasswordHash"),
        new(Security.ClientsCheckCommand.Verb, "<file>", "check a clients file (FhirSortie:ClientsFile) as the gateway's start does; exit 0 or 2"),
        new(Audit.AuditRetention.Command, "<folder>", "archive the audit records past the retention (or --before YYYY-MM-DD) to .ndjson.gz, then remove them"),
        new(Demo.DemoCommand.Command, "", "load the fictitious demo packages and exit (demo mode only)"),
        new(Help, "", "this text"),
    ];

    private static readonly string[] HelpOptions = ["--help", "-h", "-?", "/?", "/h"];

    private CommandLine(Command? command, IReadOnlyList<string> operands, string? error)
    {
        Verb = command?.Verb;
        Operands = operands;
        Error = error;
    }

    /// <summary>The command's verb (e.g. "backup", "clients check"), or null to serve.</summary>
    public string? Verb { get; }

    public IReadOnlyList<string> Operands { get; }

    /// <summary>Why the command line is refused (unknown verb, wrong operands), or null.</summary>
    public string? Error { get; }

    public bool Is(string verb) => string.Equals(Verb, verb, StringComparison.Ordinal);

    public static string Usage => string.Join(Environment.NewLine,
    [
        "Usage: dotnet FhirSortie.Server.dll [command] [ASP.NET Core arguments: --urls <url>, --<setting>=<value>, --seed-demo]",
        "Without a command the gateway serves. Commands (same configuration as the server):",
        .. Commands.Select(c => $"  {(c.Verb + " " + c.Operands).Trim(),-30} {c.Purpose}"),
        "",
    ]);

    /// <summary>
    /// Reads the command line as ASP.NET Core's configuration does: an argument that starts with "-" is a setting, and
    /// one without "=" takes the next argument as its value (before the command, "/x" is a setting too, as in
    /// ASP.NET Core; after it, an operand such as an absolute path). The other arguments are the verb and its operands.
    /// </summary>
    public static CommandLine Parse(IReadOnlyList<string> args)
    {
        var positional = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (HelpOptions.Contains(arg, StringComparer.OrdinalIgnoreCase)) return new(Find(Help), [], null);
            var setting = arg.StartsWith('-') || (positional.Count == 0 && arg.StartsWith('/'));
            if (setting)
            {
                if (!arg.Contains('=')) i++; // its value
                continue;
            }
            // key=value before any command is a setting too (ASP.NET Core's third form).
            if (positional.Count == 0 && arg.Contains('=')) continue;
            positional.Add(arg);
        }
        if (positional.Count == 0) return new(null, [], null);

        var command = Commands.Where(c => c.Words.Length <= positional.Count && c.Words.SequenceEqual(positional.Take(c.Words.Length), StringComparer.Ordinal))
            .MaxBy(c => c.Words.Length);
        if (command is null)
        {
            var known = Commands.FirstOrDefault(c => c.Words[0] == positional[0]);
            return new(null, [], known is null
                ? $"Unknown command '{positional[0]}'."
                : $"Unknown command '{string.Join(' ', positional.Take(known.Words.Length))}': did you mean '{known.Verb}'?");
        }
        var operands = positional.Skip(command.Words.Length).ToArray();
        if (operands.Length != command.OperandCount)
            return new(null, [], $"Wrong operands for '{command.Verb}', expected: {command.Verb} {command.Operands}".TrimEnd());
        return new(command, operands, null);
    }

    private static Command Find(string verb) => Commands.Single(c => c.Verb == verb);

    /// <summary>
    /// Runs what needs neither the configuration nor the storage: the usage, a refused command line, hash-password and
    /// clients check. The exit code, or null when the gateway's host is needed (serving or another command).
    /// </summary>
    public async Task<int?> RunWithoutHostAsync(TextReader input, TextWriter output, TextWriter error)
    {
        if (Error is not null)
        {
            await error.WriteLineAsync(Error);
            await error.WriteAsync(Usage);
            return Refused;
        }
        if (Is(Help))
        {
            await output.WriteAsync(Usage);
            return 0;
        }
        if (Is(Security.HashPasswordCommand.Verb)) return await Security.HashPasswordCommand.RunAsync(input, output, error);
        if (Is(Security.ClientsCheckCommand.Verb)) return await Security.ClientsCheckCommand.RunAsync(Operands[0], output, error);
        return null;
    }
}
