using System.Diagnostics;
using System.Text.Json;

namespace FhirSortie.IntegrationTests;

/// <summary>The operator command that rotates the token signing key, run as an operator would between two starts.</summary>
public sealed class KeyRotationTests
{
    [Fact]
    public async Task Rotate_signing_key_command_adds_a_key_that_signs_new_tokens_while_the_old_one_still_validates()
    {
        using var storage = Storage.Create("Sqlite");
        // Both starts get a port of their own: one public base URL, so that issuer and audience stay the same.
        var settings = new Dictionary<string, string> { ["FhirSortie__PublicBaseUrl"] = "http://fhirsortie.test/fhir" };
        string oldToken;
        await using (var first = await ServerProcess.StartAsync(storage, settings))
        {
            (oldToken, _) = await TestClient.TokenAsync(first.BaseUrl);
        }

        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(ServerProcess.ServerDll)! };
        info.ArgumentList.Add(ServerProcess.ServerDll);
        info.ArgumentList.Add("rotate-signing-key");
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in storage.Environment) info.Environment[key] = value;
        foreach (var (key, value) in TestClient.Settings) info.Environment[key] = value;
        using var command = Process.Start(info)!;
        var output = await command.StandardOutput.ReadToEndAsync();
        await command.WaitForExitAsync();
        Assert.True(command.ExitCode == 0, output + await command.StandardError.ReadToEndAsync());
        var newKid = output.Split('\n').Single(l => l.StartsWith("New signing key: ", StringComparison.Ordinal))["New signing key: ".Length..].Trim();

        await using var second = await ServerProcess.StartAsync(storage, settings);
        using var anonymous = new HttpClient();
        using var jwks = JsonDocument.Parse(await anonymous.GetStringAsync(new Uri(second.BaseUrl, "/auth/jwks")));
        var kids = jwks.RootElement.GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("kid").GetString()).ToList();
        var oldKid = KidOf(oldToken);
        Assert.Contains(newKid, kids);
        Assert.Contains(oldKid, kids);
        Assert.NotEqual(oldKid, newKid);

        var (newToken, _) = await TestClient.TokenAsync(second.BaseUrl);
        Assert.Equal(newKid, KidOf(newToken));
        foreach (var token in new[] { oldToken, newToken })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(second.BaseUrl, "Patient"));
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            using var response = await anonymous.SendAsync(request);
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        }
    }

    internal static string? KidOf(string jwt)
    {
        var header = jwt.Split('.')[0].Replace('-', '+').Replace('_', '/');
        header = header.PadRight(header.Length + (4 - header.Length % 4) % 4, '=');
        using var json = JsonDocument.Parse(Convert.FromBase64String(header));
        return json.RootElement.GetProperty("kid").GetString();
    }
}
