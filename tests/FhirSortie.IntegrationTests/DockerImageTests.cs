using System.Text.RegularExpressions;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// What `docker build .` sends and builds from (no Docker engine here: the files are read as Docker reads them).
/// A development data directory anywhere in the tree (src/FhirSortie.Server/data after a `dotnet run` of older builds)
/// holds demo patients and the authorization server's private keys: it must never enter the build context.
/// </summary>
public sealed partial class DockerImageTests
{
    private static readonly string Root = DemoWalkthroughTests.RepositoryRoot();

    [Theory]
    [InlineData("data/fhirsortie.db")]
    [InlineData("src/FhirSortie.Server/data/fhirsortie.db")]
    [InlineData("src/FhirSortie.Server/data/audit-journal-0/00000001.seg")]
    [InlineData("src/FhirSortie.Server/data/fhirsortie.lock")]
    [InlineData("bench/results/copy.db")]
    [InlineData("src/FhirSortie.Server/old.db-wal")]
    [InlineData("src/FhirSortie.Server/old.db-shm")]
    [InlineData("src/FhirSortie.Server/bin/Release/net10.0/FhirSortie.Server.dll")]
    public void The_build_context_leaves_out_databases_and_data_directories(string path)
    {
        Assert.True(Excluded(path), $"{path} would be sent to the Docker build");
    }

    [Theory]
    [InlineData("src/FhirSortie.Server/Program.cs")]
    [InlineData("src/FhirSortie.Server/Storage/Sqlite/DataDirectoryLock.cs")]
    [InlineData("profiles/examples/patient.json")]
    [InlineData("conformance/compartment-patient.json")]
    public void The_build_context_keeps_the_sources(string path)
    {
        Assert.False(Excluded(path), $"{path} is needed by the build");
    }

    [Fact]
    public void Base_images_are_pinned_to_a_patch_version_or_a_digest()
    {
        var images = File.ReadAllLines(Path.Combine(Root, "Dockerfile"))
            .Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).Select(l => l.Split(' ')[1]).ToList();
        Assert.Equal(2, images.Count);
        foreach (var image in images) Assert.Matches(PinnedImage(), image);
    }

    /// <summary>
    /// Docker's rule (moby/patternmatcher): each line is a path pattern from the context root, <c>**</c> any number of
    /// folders, <c>*</c> any name part; a pattern that matches a folder excludes what it holds; <c>!</c> re-includes;
    /// the last matching line decides.
    /// </summary>
    private static bool Excluded(string path)
    {
        var excluded = false;
        foreach (var raw in File.ReadAllLines(Path.Combine(Root, ".dockerignore")))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var include = line.StartsWith('!');
            var pattern = (include ? line[1..] : line).Trim('/');
            var regex = new Regex("^" + ToRegex(pattern) + "(/.*)?$");
            if (regex.IsMatch(path)) excluded = !include;
        }
        return excluded;
    }

    private static string ToRegex(string pattern)
    {
        var regex = new System.Text.StringBuilder();
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                i++;
                if (i + 1 < pattern.Length && pattern[i + 1] == '/') { i++; regex.Append("(.*/)?"); }
                else regex.Append(".*");
            }
            else if (pattern[i] == '*') regex.Append("[^/]*");
            else if (pattern[i] == '?') regex.Append("[^/]");
            else regex.Append(Regex.Escape(pattern[i].ToString()));
        }
        return regex.ToString();
    }

    [GeneratedRegex(@"(:\d+\.\d+\.\d+|@sha256:[0-9a-f]{64})")]
    private static partial Regex PinnedImage();
}
