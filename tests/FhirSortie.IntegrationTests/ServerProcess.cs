using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Npgsql;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// Where a gateway keeps its data: a temp folder (SQLite) or a fresh database on the throwaway PostgreSQL cluster
/// that test.sh starts. The same storage can be given to several successive server processes (restart after a crash).
/// </summary>
public abstract class Storage : IDisposable
{
    public abstract string Name { get; }

    public abstract IReadOnlyDictionary<string, string> Environment { get; }

    public virtual void Dispose() => GC.SuppressFinalize(this);

    public static Storage Create(string dialect) => dialect switch
    {
        "Sqlite" => new SqliteStorage(),
        "Postgres" => new PostgresStorage(),
        _ => throw new ArgumentOutOfRangeException(nameof(dialect), dialect, "Sqlite or Postgres"),
    };
}

public sealed class SqliteStorage : Storage
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "fhirsortie-it", Guid.NewGuid().ToString("N"));

    public override string Name => "Sqlite";

    public override IReadOnlyDictionary<string, string> Environment => new Dictionary<string, string>
    {
        ["FhirSortie__Storage__Provider"] = "Sqlite",
        ["FhirSortie__DataDirectory"] = _folder,
    };

    public override void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        base.Dispose();
    }
}

public sealed class PostgresStorage : Storage
{
    public const string Variable = "FHIRSORTIE_TEST_POSTGRES";

    private readonly string _connectionString;

    public PostgresStorage()
    {
        var server = System.Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException(
                $"{Variable} is not set: PostgreSQL tests need the throwaway cluster that ./test.sh starts. Run ./test.sh (it runs every test).");
        var name = "fsit_" + Guid.NewGuid().ToString("N")[..16];
        using (var connection = new NpgsqlConnection(server))
        {
            connection.Open();
            using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            cmd.ExecuteNonQuery();
        }
        _connectionString = new NpgsqlConnectionStringBuilder(server) { Database = name, MaxPoolSize = 20 }.ToString();
    }

    public override string Name => "Postgres";

    public override IReadOnlyDictionary<string, string> Environment => new Dictionary<string, string>
    {
        ["FhirSortie__Storage__Provider"] = "Postgres",
        ["FhirSortie__Storage__ConnectionString"] = _connectionString,
    };
}

/// <summary>
/// The built gateway started as its own process (`dotnet FhirSortie.Server.dll --urls http://127.0.0.1:port`),
/// as it runs in production: no test host, real Kestrel, real sockets. The process is the server itself, not a
/// `dotnet run` wrapper, so <see cref="Crash"/> really is a kill -9 of the server.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private ServerProcess(Process process, Uri baseUrl)
    {
        _process = process;
        BaseUrl = baseUrl;
    }

    /// <summary>FHIR base, e.g. http://127.0.0.1:41234/fhir/ (trailing slash, for relative HttpClient URLs).</summary>
    public Uri BaseUrl { get; }

    public int Pid => _process.Id;

    /// <summary>A handler that sends <see cref="TestClient"/>'s access token (fetched from this server) with every request.</summary>
    public HttpMessageHandler Authenticated(HttpMessageHandler? inner = null) => new BearerTokenHandler(BaseUrl, inner ?? new SocketsHttpHandler());

    /// <summary>Everything the server wrote on stdout and stderr so far.</summary>
    public IReadOnlyList<string> Output => [.. _output];

    public static string ServerDll => Metadata("ServerDll");

    /// <summary>The server project's folder and the configuration it was built in, for `dotnet run --no-build`.</summary>
    public static string ServerProject => Metadata("ServerProject");

    public static string Configuration => Metadata("Configuration");

    private static string Metadata(string key) =>
        typeof(ServerProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    /// <summary>Starts the built dll; <paramref name="arguments"/> come after its own <c>--urls</c>.</summary>
    public static async Task<ServerProcess> StartAsync(Storage storage, IReadOnlyDictionary<string, string>? settings = null, string? dll = null,
        IEnumerable<string>? arguments = null)
    {
        dll ??= ServerDll;
        if (!File.Exists(dll)) throw new FileNotFoundException("The gateway is not built (dotnet build FhirSortie.sln).", dll);
        var port = FreePort();
        var info = Dotnet(Path.GetDirectoryName(dll)!, [dll, "--urls", $"http://127.0.0.1:{port}", .. arguments ?? []]);
        foreach (var (key, value) in storage.Environment) info.Environment[key] = value;
        // Every request to /fhir needs a token: unless the test configures its own clients, the server knows ours.
        if (settings?.ContainsKey("FhirSortie__Clients__0__ClientId") != true)
        {
            foreach (var (key, value) in TestClient.Settings) info.Environment[key] = value;
        }
        foreach (var (key, value) in settings ?? new Dictionary<string, string>()) info.Environment[key] = value;
        return await LaunchAsync(info, port);
    }

    /// <summary>
    /// The README's first command as a newcomer runs it: <c>dotnet run --project src/FhirSortie.Server -- --urls ...</c>
    /// from <paramref name="workingDirectory"/>, with no data directory configured (the default, ./data).
    /// </summary>
    public static async Task<ServerProcess> RunProjectAsync(string workingDirectory)
    {
        var port = FreePort();
        var info = Dotnet(workingDirectory, ["run", "--no-build", "-c", Configuration, "--project", ServerProject, "--", "--urls", $"http://127.0.0.1:{port}"]);
        info.Environment.Remove("FhirSortie__DataDirectory");
        foreach (var (key, value) in TestClient.Settings) info.Environment[key] = value;
        return await LaunchAsync(info, port);
    }

    /// <summary>`dotnet` with <paramref name="arguments"/> in <paramref name="workingDirectory"/>, in Production, output redirected.</summary>
    public static ProcessStartInfo Dotnet(string workingDirectory, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        info.Environment.Remove("ASPNETCORE_URLS");
        info.Environment.Remove("DOTNET_ENVIRONMENT");
        return info;
    }

    private static async Task<ServerProcess> LaunchAsync(ProcessStartInfo info, int port)
    {
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var server = new ServerProcess(process, new Uri($"http://127.0.0.1:{port}/fhir/"));
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) server._output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) server._output.Enqueue(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            // Generous: a cold start (JIT, migrations, demo seeding) on a 2-core CI machine busy with the other test
            // project took over a minute once; a healthy start answers in a few seconds and does not wait longer.
            await server.WaitHealthyAsync(TimeSpan.FromSeconds(180));
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    private async Task WaitHealthyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var health = new Uri(BaseUrl, "/health");
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"The gateway exited with code {_process.ExitCode} during start:\n{string.Join('\n', Output)}");
            try
            {
                using var response = await http.GetAsync(health);
                if (response.StatusCode == HttpStatusCode.OK) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"The gateway did not answer /health within {timeout}:\n{string.Join('\n', Output)}");
    }

    /// <summary>kill -9: Process.Kill sends SIGKILL on Unix; nothing in the server gets to flush or shut down.</summary>
    public async Task CrashAsync()
    {
        _process.Kill(entireProcessTree: false);
        await _process.WaitForExitAsync();
    }

    /// <summary>Waits until the server has written a line that matches, or fails after the timeout.</summary>
    public async Task<IReadOnlyList<string>> WaitForOutputAsync(Func<IReadOnlyList<string>, bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!done(Output))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("Expected server output did not come:\n" + string.Join('\n', Output));
            await Task.Delay(50);
        }
        return Output;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
