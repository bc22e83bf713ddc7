using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// Runs one of the portal's browser scripts (tests/browser/portal*.mjs, headless Chromium through playwright-core) against
/// a gateway process and returns what it saw: the JSON of its last "RESULT " line. Shared by the portal's browser tests.
/// </summary>
internal static class PortalBrowserRun
{
    /// <summary>
    /// The tests/browser folder, or null when chromium, node or its node_modules are missing: then the test says why and
    /// returns, except in CI, where ./test.sh installs them and a skip would hide a broken set-up.
    /// </summary>
    public static string? BrowserFolderOrSkip(ITestOutputHelper output)
    {
        var browserFolder = SmartBrowserTests.FindBrowserFolder();
        if (File.Exists("/usr/bin/chromium") && browserFolder is not null && Directory.Exists(Path.Combine(browserFolder, "node_modules", "playwright-core"))
            && SmartBrowserTests.CanRun("node", "--version"))
            return browserFolder;
        var message = "SKIPPED: the portal browser test needs chromium, node and tests/browser/node_modules (./test.sh installs them).";
        Assert.False(Environment.GetEnvironmentVariable("CI") == "true", message);
        output.WriteLine(message);
        return null;
    }

    /// <summary>
    /// <c>node {script} --base {origin} {arguments}</c>. One database's run (SQLite) takes the screenshots: into docs/portal/
    /// (the README's pictures) only when FHIRSORTIE_PORTAL_SHOTS=docs says so, so that a test run leaves the tree clean.
    /// </summary>
    public static async Task<JsonElement> RunAsync(ITestOutputHelper output, string browserFolder, ServerProcess server, string dialect,
        string script, params string[] arguments)
    {
        var run = new ProcessStartInfo("node") { WorkingDirectory = browserFolder, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { script, "--base", new Uri(server.BaseUrl, "/").AbsoluteUri.TrimEnd('/') }.Concat(arguments))
            run.ArgumentList.Add(arg);
        if (dialect == "Sqlite")
        {
            var shots = Environment.GetEnvironmentVariable("FHIRSORTIE_PORTAL_SHOTS") == "docs"
                ? Path.Combine(DemoWalkthroughTests.RepositoryRoot(), "docs", "portal")
                : Directory.CreateTempSubdirectory($"fhirsortie-{Path.GetFileNameWithoutExtension(script)}-shots").FullName;
            run.ArgumentList.Add("--shots");
            run.ArgumentList.Add(shots);
        }
        using var node = Process.Start(run)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        await node.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(4)).Token);
        var text = await stdout;
        output.WriteLine(text.Length > 4000 ? text[..4000] : text);
        output.WriteLine(await stderr);
        var line = text.Split('\n').LastOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
        Assert.True(line is not null, $"the portal run of {script} failed:\n" + text + "\n" + string.Join('\n', server.Output.TakeLast(40)));
        return JsonDocument.Parse(line["RESULT ".Length..]).RootElement.Clone();
    }
}
