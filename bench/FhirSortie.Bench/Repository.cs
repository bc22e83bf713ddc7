namespace FhirSortie.Bench;

/// <summary>The repository the bench runs from: the in-process harnesses load profiles/ and conformance/ from it.</summary>
internal static class Repository
{
    public static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FhirSortie.sln"))) return dir.FullName;
        throw new InvalidOperationException("Run from inside the FhirSortie repository.");
    }
}
