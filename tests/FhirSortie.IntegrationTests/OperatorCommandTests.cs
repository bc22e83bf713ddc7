using System.Net;
using System.Text.Json;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// The gateway's command line as an operator meets it: what never starts a server, what starts only one per SQLite
/// data directory, where relative paths land, and the operator commands (hash-password, retire-signing-key, clients check).
/// </summary>
public sealed class OperatorCommandTests
{
    [Theory]
    [InlineData("--help")]
    [InlineData("help")]
    [InlineData("-h")]
    public async Task Help_prints_the_usage_and_exits_0_without_starting_a_server(string help)
    {
        using var storage = new SqliteStorage();
        var result = await OperatorCommand.RunAsync(storage, ["--urls", "http://127.0.0.1:0", help], timeout: TimeSpan.FromSeconds(60));
        Assert.True(result.Exit == 0, result.All);
        Assert.StartsWith("Usage: dotnet FhirSortie.Server.dll", result.Output, StringComparison.Ordinal);
        foreach (var verb in new[] { "backup <folder>", "rotate-signing-key", "retire-signing-key <kid>", "hash-password", "clients check <file>", "seed-demo" })
            Assert.Contains(verb, result.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(storage.Environment["FhirSortie__DataDirectory"]), "the data directory was created: a server started");
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("--urls", "http://127.0.0.1:0", "frobnicate")]
    [InlineData("backup")] // its folder is missing
    [InlineData("retire-signing-key")]
    [InlineData("rotate-signing-key", "now")]
    [InlineData("clients", "list")]
    public async Task An_unknown_or_incomplete_command_prints_the_usage_and_exits_2_without_starting_a_server(params string[] arguments)
    {
        using var storage = new SqliteStorage();
        var result = await OperatorCommand.RunAsync(storage, arguments, timeout: TimeSpan.FromSeconds(60));
        Assert.True(result.Exit == 2, result.All);
        Assert.Contains("Usage: dotnet FhirSortie.Server.dll", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
        Assert.False(Directory.Exists(storage.Environment["FhirSortie__DataDirectory"]), "the data directory was created: a server started");
    }

    [Fact]
    public async Task AspNet_core_arguments_still_configure_the_server()
    {
        using var storage = new SqliteStorage();
        // --key=value, key=value, --key value and the --seed-demo flag (ignored outside demo mode, with a warning).
        await using var server = await ServerProcess.StartAsync(storage, arguments:
            ["--FhirSortie:PublicBaseUrl=http://gateway.test/fhir", "FhirSortie:DefaultPageSize=7", "--FhirSortie:MaxPageSize", "9", "--seed-demo"]);
        using var http = new HttpClient(server.Authenticated()) { BaseAddress = server.BaseUrl };
        using var bundle = JsonDocument.Parse(await http.GetStringAsync("Patient?_count=100"));
        var self = bundle.RootElement.GetProperty("link").EnumerateArray().Single(l => l.GetProperty("relation").GetString() == "self").GetProperty("url").GetString()!;
        Assert.StartsWith("http://gateway.test/fhir/Patient", self, StringComparison.Ordinal);
        Assert.Contains("_count=9", self, StringComparison.Ordinal);
        await server.WaitForOutputAsync(o => o.Any(l => l.Contains("FhirSortie:Demo:Seed is ignored", StringComparison.Ordinal)), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_second_gateway_on_one_sqlite_data_directory_is_refused_and_a_killed_one_leaves_no_lock_behind()
    {
        using var storage = new SqliteStorage();
        await using (var first = await ServerProcess.StartAsync(storage))
        {
            var second = await OperatorCommand.RunAsync(storage, ["--urls", "http://127.0.0.1:0"], timeout: TimeSpan.FromSeconds(60));
            Assert.True(second.Exit == 2, second.All);
            var refusal = Assert.Single(second.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains("is in use by another FhirSortie process", refusal, StringComparison.Ordinal);
            // The commands that change the database take the same lock; the backup reads beside the gateway.
            var rotate = await OperatorCommand.RunAsync(storage, ["rotate-signing-key"]);
            Assert.True(rotate.Exit == 2, rotate.All);
            Assert.Contains("in use", rotate.Error, StringComparison.Ordinal);
            var target = Path.Combine(Path.GetTempPath(), "fhirsortie-it", "backup-" + Guid.NewGuid().ToString("N"));
            var backup = await OperatorCommand.RunAsync(storage, ["backup", target]);
            Directory.Delete(target, recursive: true);
            Assert.True(backup.Exit == 0, backup.All);

            await first.CrashAsync(); // kill -9: nothing released the lock but the operating system
        }
        await using var restarted = await ServerProcess.StartAsync(storage);
        using var http = new HttpClient();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(restarted.BaseUrl, "/health"))).StatusCode);
    }

    [Fact]
    public async Task Several_gateways_share_one_postgresql_database()
    {
        using var storage = new PostgresStorage();
        await using var first = await ServerProcess.StartAsync(storage);
        await using var second = await ServerProcess.StartAsync(storage);
        var (token, _) = await TestClient.TokenAsync(first.BaseUrl);
        Assert.False(string.IsNullOrEmpty(token));
        var (other, _) = await TestClient.TokenAsync(second.BaseUrl);
        Assert.False(string.IsNullOrEmpty(other));
    }

    [Fact]
    public async Task Dotnet_run_keeps_the_data_and_the_backup_in_the_callers_directory()
    {
        var caller = Path.Combine(Path.GetTempPath(), "fhirsortie-it", "caller-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(caller);
        try
        {
            await using (await ServerProcess.RunProjectAsync(caller))
            {
                Assert.True(File.Exists(Path.Combine(caller, "data", "fhirsortie.db")), "README: 'SQLite in ./data' of the directory dotnet run is started from");
                Assert.False(Directory.Exists(Path.Combine(ServerProcess.ServerProject, "data")), "the data landed in the project folder");
            }
            // A relative folder given to a command is the caller's too (the dll run from the caller's directory).
            var backup = await OperatorCommand.RunAsync(null, ["--FhirSortie:DataDirectory=data", "backup", "copy"], workingDirectory: caller);
            Assert.True(backup.Exit == 0, backup.All);
            Assert.True(File.Exists(Path.Combine(caller, "copy", "fhirsortie.db")), backup.All);
        }
        finally
        {
            Directory.Delete(caller, recursive: true);
        }
    }

    [Fact]
    public async Task Hash_password_reads_the_password_on_standard_input_never_as_an_argument()
    {
        var hashed = await OperatorCommand.RunAsync(null, ["hash-password"], input: "correct horse battery staple\n");
        Assert.True(hashed.Exit == 0, hashed.All);
        var hash = hashed.Output.Trim();
        Assert.DoesNotContain("correct horse", hashed.All, StringComparison.Ordinal);
        // ASP.NET Core Identity's format, version 3 (PBKDF2): what the login page verifies (see the unit test beside Practitioners).
        Assert.Equal(0x01, Convert.FromBase64String(hash)[0]);
        var again = await OperatorCommand.RunAsync(null, ["hash-password"], input: "correct horse battery staple\n");
        Assert.NotEqual(hash, again.Output.Trim()); // salted

        var asArgument = await OperatorCommand.RunAsync(null, ["hash-password", "correct horse battery staple"]);
        Assert.Equal(2, asArgument.Exit);
        Assert.Equal("", asArgument.Output);
        var empty = await OperatorCommand.RunAsync(null, ["hash-password"], input: "");
        Assert.Equal(2, empty.Exit);
        Assert.Contains("No password on standard input", empty.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task Retire_signing_key_stops_the_old_key_and_refuses_the_newest(string dialect)
    {
        using var storage = Storage.Create(dialect);
        var settings = new Dictionary<string, string> { ["FhirSortie__PublicBaseUrl"] = "http://fhirsortie.test/fhir" };
        string oldToken;
        await using (var first = await ServerProcess.StartAsync(storage, settings))
        {
            (oldToken, _) = await TestClient.TokenAsync(first.BaseUrl);
        }
        var oldKid = KeyRotationTests.KidOf(oldToken)!;
        var rotated = await OperatorCommand.RunAsync(storage, ["rotate-signing-key"]);
        Assert.True(rotated.Exit == 0, rotated.All);
        var newKid = rotated.Output.Split('\n').Single(l => l.StartsWith("New signing key: ", StringComparison.Ordinal))["New signing key: ".Length..].Trim();

        var newest = await OperatorCommand.RunAsync(storage, ["retire-signing-key", newKid]);
        Assert.Equal(2, newest.Exit);
        Assert.Contains("newest", newest.Error, StringComparison.Ordinal);
        var unknown = await OperatorCommand.RunAsync(storage, ["retire-signing-key", "no-such-kid"]);
        Assert.Equal(2, unknown.Exit);
        var retired = await OperatorCommand.RunAsync(storage, ["retire-signing-key", oldKid]);
        Assert.True(retired.Exit == 0, retired.All);
        Assert.Contains($"Retired signing key: {oldKid}", retired.Output, StringComparison.Ordinal);

        await using var second = await ServerProcess.StartAsync(storage, settings);
        using var anonymous = new HttpClient();
        using var jwks = JsonDocument.Parse(await anonymous.GetStringAsync(new Uri(second.BaseUrl, "/auth/jwks")));
        var kids = jwks.RootElement.GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("kid").GetString()).ToList();
        Assert.DoesNotContain(oldKid, kids);
        Assert.Contains(newKid, kids);
        var (newToken, _) = await TestClient.TokenAsync(second.BaseUrl);
        Assert.Equal(HttpStatusCode.Unauthorized, await ReadPatientsAsync(anonymous, second, oldToken));
        Assert.Equal(HttpStatusCode.OK, await ReadPatientsAsync(anonymous, second, newToken));
    }

    [Fact]
    public async Task Clients_check_accepts_a_good_file_and_names_every_bad_entry_of_another()
    {
        var folder = Path.Combine(Path.GetTempPath(), "fhirsortie-it", "clients-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            var good = Path.Combine(folder, "good.json");
            await File.WriteAllTextAsync(good, """
                [
                  // the gateway's own reader: comments and trailing commas are accepted
                  { "ClientId": "csapa-lyon", "ActorKind": "Csapa", "OrganizationFiness": "690000013", "AllowedScopes": "system/*.rs",
                    "JwksUri": "https://csapa-lyon.example.fr/.well-known/jwks.json" },
                  { "ClientId": "usmp-lyon", "ActorKind": "Usmp", "OrganizationFiness": "750000010", "AllowedScopes": "system/*.cruds",
                    "Secret": "a-long-enough-secret" },
                ]
                """);
            var accepted = await OperatorCommand.RunAsync(null, ["clients", "check", good]);
            Assert.True(accepted.Exit == 0, accepted.All);
            Assert.Contains("2 client(s), all accepted", accepted.Output, StringComparison.Ordinal);

            var bad = Path.Combine(folder, "bad.json");
            await File.WriteAllTextAsync(bad, """
                [
                  { "ClientId": "csapa-lyon", "ActorKind": "Csapa", "OrganizationFiness": "690000011", "AllowedScopes": "system/*.rs", "Secret": "a-long-enough-secret" },
                  { "ClientId": "spip", "ActorKind": "Prison", "AllowedScopes": "system/Appointment.rs", "Secret": "a-long-enough-secret" },
                  { "ClientId": "act", "ActorKind": "Act", "AllowedScopes": null, "Secret": "a-long-enough-secret" },
                  { "ClientId": "usmp", "ActorKind": "Usmp", "AllowedScopes": "system/*.cruds", "Secret": "a-long-enough-secret" },
                  { "ClientId": "usmp", "ActorKind": "Usmp", "AllowedScopes": "system/*.cruds", "Secret": "a-long-enough-secret" }
                ]
                """);
            var refused = await OperatorCommand.RunAsync(null, ["clients", "check", bad]);
            Assert.Equal(2, refused.Exit);
            Assert.Contains("client 'csapa-lyon'", refused.Error, StringComparison.Ordinal);
            Assert.Contains("Luhn", refused.Error, StringComparison.Ordinal);
            Assert.Contains("ActorKind 'Prison'", refused.Error, StringComparison.Ordinal);
            Assert.Contains("client 'act'", refused.Error, StringComparison.Ordinal);
            Assert.Contains("'usmp' is configured twice", refused.Error, StringComparison.Ordinal);
            Assert.Contains("4 problem(s)", refused.Error, StringComparison.Ordinal);

            var notJson = Path.Combine(folder, "not.json");
            await File.WriteAllTextAsync(notJson, "{ \"ClientId\": \"x\" }");
            Assert.Equal(2, (await OperatorCommand.RunAsync(null, ["clients", "check", notJson])).Exit);
            Assert.Equal(2, (await OperatorCommand.RunAsync(null, ["clients", "check", Path.Combine(folder, "missing.json")])).Exit);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<HttpStatusCode> ReadPatientsAsync(HttpClient http, ServerProcess server, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server.BaseUrl, "Patient"));
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }
}
