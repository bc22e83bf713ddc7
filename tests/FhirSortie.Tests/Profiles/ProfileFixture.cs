using FhirSortie.Server.Profiles;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Tests.Profiles;

/// <summary>The profiles/ folder as shipped beside the server binary, compiled once for the validator tests.</summary>
public static class ProfileFixture
{
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "profiles");

    private static readonly Lazy<ProfileValidator> Shared = new(() => new ProfileValidator(ProfileRegistry.Load(Folder)));

    public static ProfileValidator Validator => Shared.Value;

    private static readonly FhirJsonDeserializer Strict = new(new DeserializerSettings());

    public static Resource Read(string file) => Strict.DeserializeResource(File.ReadAllText(file));

    public static IEnumerable<string> Examples(string kind) =>
        Directory.EnumerateFiles(Path.Combine(Folder, "examples", kind), "*.json")
            .Where(f => !f.EndsWith(".expected.json", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    public static ValidationRun Validate(Resource resource) =>
        Validator.Validate(resource, resource.Meta?.Profile.OfType<string>() ?? []);

    public static string Describe(ValidationRun run) =>
        string.Join("\n", run.Issues.Select(i => $"{i.Severity} {string.Join(",", i.Expression)}: {i.Diagnostics}"));
}
