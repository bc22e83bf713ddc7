using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// Starts an operator gets wrong, as a real process (Production): a key-encryption key missing, wrong or malformed ends
/// the start with one line and exit code 2; no configured client is said at start, and a token request then gets invalid_client.
/// </summary>
public sealed class AuthorizationStartTests
{
    private const string KekVariable = "FhirSortie__Auth__KeyEncryptionKey";

    private static string NewKek() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    [Fact]
    public async Task A_missing_wrong_or_malformed_kek_ends_the_start_with_one_line_and_exit_code_2()
    {
        using var storage = Storage.Create("Sqlite");
        await using (await ServerProcess.StartAsync(storage, new Dictionary<string, string> { [KekVariable] = NewKek() })) { }

        var missing = await Gateway.RunAsync(storage, TestClient.Settings);
        var wrong = await Gateway.RunAsync(storage, With(TestClient.Settings, KekVariable, NewKek()));
        var malformed = await Gateway.RunAsync(storage, With(TestClient.Settings, KekVariable, "not-a-kek"));

        AssertOneLineRefusal(missing, "is encrypted (KEK ");
        Assert.Contains(missing.Output, l => l.Contains("FhirSortie:Auth:KeyEncryptionKey is not set on this node", StringComparison.Ordinal));
        // The start that cannot read the keys does not first say they are stored in clear.
        Assert.DoesNotContain(missing.Output, l => l.Contains("unencrypted", StringComparison.OrdinalIgnoreCase));
        AssertOneLineRefusal(wrong, "is encrypted with KEK ");
        AssertOneLineRefusal(malformed, "FhirSortie:Auth:KeyEncryptionKey is not base64");
    }

    private static void AssertOneLineRefusal((int? Exit, IReadOnlyList<string> Output) run, string reason)
    {
        var output = string.Join('\n', run.Output);
        Assert.True(run.Exit == 2, $"exit {run.Exit}:\n{output}");
        var refusal = Assert.Single(run.Output, l => l.StartsWith("FhirSortie cannot start: ", StringComparison.Ordinal));
        Assert.Contains(reason, refusal, StringComparison.Ordinal);
        // No stack trace, no unhandled exception.
        Assert.DoesNotContain(run.Output, l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal) || l.Contains("Unhandled exception", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task Without_any_client_the_start_warns_and_a_token_request_is_invalid_client(string dialect)
    {
        using var storage = Storage.Create(dialect);
        await using var gateway = await Gateway.StartAsync(storage, new Dictionary<string, string>());
        await gateway.WaitForAsync(l => l.Contains("No client is configured", StringComparison.Ordinal));

        using var http = new HttpClient();
        using var response = await http.PostAsync(new Uri(gateway.BaseUrl, "/auth/token"), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = "csapa-lyon", ["client_secret"] = "whatever-it-is", ["scope"] = "system/*.rs",
        }));
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("invalid_client", body.RootElement.GetProperty("error").GetString());
    }

    private static Dictionary<string, string> With(IReadOnlyDictionary<string, string> settings, string key, string value) =>
        new(settings) { [key] = value };

    /// <summary>
    /// The gateway's dll started with exactly the given settings (ServerProcess always adds a client and waits for
    /// /health): to watch a start that ends, or one without any client.
    /// </summary>
    private sealed class Gateway : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _output = new();

        private Gateway(Process process, Uri baseUrl) => (_process, BaseUrl) = (process, baseUrl);

        public Uri BaseUrl { get; }

        public static Task<Gateway> StartAsync(Storage storage, IReadOnlyDictionary<string, string> settings)
        {
            int port;
            using (var listener = new TcpListener(IPAddress.Loopback, 0))
            {
                listener.Start();
                port = ((IPEndPoint)listener.LocalEndpoint).Port;
            }
            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
                WorkingDirectory = Path.GetDirectoryName(ServerProcess.ServerDll)! };
            info.ArgumentList.Add(ServerProcess.ServerDll);
            info.ArgumentList.Add("--urls");
            info.ArgumentList.Add($"http://127.0.0.1:{port}");
            info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
            info.Environment.Remove("ASPNETCORE_URLS");
            foreach (var (key, value) in storage.Environment.Concat(settings)) info.Environment[key] = value;
            var process = new Process { StartInfo = info };
            var gateway = new Gateway(process, new Uri($"http://127.0.0.1:{port}/"));
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) gateway._output.Enqueue(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) gateway._output.Enqueue(e.Data); };
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return Task.FromResult(gateway);
        }

        /// <summary>Runs a start to its end (at most three minutes on a loaded machine): its exit code, null if it kept running.</summary>
        public static async Task<(int? Exit, IReadOnlyList<string> Output)> RunAsync(Storage storage, IReadOnlyDictionary<string, string> settings)
        {
            await using var gateway = await StartAsync(storage, settings);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            try
            {
                await gateway._process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                return (null, [.. gateway._output]);
            }
            gateway._process.WaitForExit(); // the rest of the redirected output
            return (gateway._process.ExitCode, [.. gateway._output]);
        }

        public async Task WaitForAsync(Func<string, bool> line)
        {
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (!_output.Any(line))
            {
                if (_process.HasExited || DateTime.UtcNow > deadline)
                    throw new InvalidOperationException("The expected line did not come:\n" + string.Join('\n', _output));
                await Task.Delay(100);
            }
            // Listening comes after the start's warnings: wait for the health endpoint too.
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            while (true)
            {
                try
                {
                    using var health = await http.GetAsync(new Uri(BaseUrl, "/health"));
                    if (health.IsSuccessStatusCode) return;
                }
                catch (HttpRequestException) { }
                catch (TaskCanceledException) { }
                if (DateTime.UtcNow > deadline) throw new TimeoutException("No /health answer:\n" + string.Join('\n', _output));
                await Task.Delay(100);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
        }
    }
}
