using System.Text.Json;
using FhirSortie.Server.Profiles;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Profiles;

/// <summary>
/// profiles/examples: every valid example validates without error against the profiles it claims, and every
/// invalid example produces the issues recorded in its sibling *.expected.json.
/// </summary>
public sealed class ProfileExamplesTests
{
    public static TheoryData<string> Valid() => new(ProfileFixture.Examples("valid").Select(Path.GetFileName)!);

    public static TheoryData<string> Invalid() => new(ProfileFixture.Examples("invalid").Select(Path.GetFileName)!);

    [Theory]
    [MemberData(nameof(Valid))]
    public void Valid_example_has_no_errors(string file)
    {
        var resource = ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", "valid", file));
        Assert.NotEmpty(resource.Meta?.Profile ?? []);
        var run = ProfileFixture.Validate(resource);
        Assert.False(run.HasErrors, ProfileFixture.Describe(run));
    }

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Invalid_example_produces_its_expected_issues(string file)
    {
        var path = Path.Combine(ProfileFixture.Folder, "examples", "invalid", file);
        var expectedFile = Path.ChangeExtension(path, ".expected.json");
        Assert.True(File.Exists(expectedFile), $"{file} has no {Path.GetFileName(expectedFile)}");
        using var expected = JsonDocument.Parse(File.ReadAllText(expectedFile));
        var run = ProfileFixture.Validate(ProfileFixture.Read(path));
        Assert.True(run.HasErrors, $"{file} validated without errors");
        foreach (var issue in expected.RootElement.GetProperty("issues").EnumerateArray())
        {
            var severity = issue.GetProperty("severity").GetString();
            var expression = issue.GetProperty("expression").GetString();
            var diagnostics = issue.GetProperty("diagnostics").GetString()!;
            Assert.True(run.Issues.Any(i =>
                    string.Equals(i.Severity?.ToString(), severity, StringComparison.OrdinalIgnoreCase)
                    && i.Expression.Contains(expression)
                    && i.Diagnostics?.Contains(diagnostics, StringComparison.Ordinal) == true),
                $"expected {severity} at {expression} containing '{diagnostics}', got:\n{ProfileFixture.Describe(run)}");
        }
    }

    [Fact]
    public void Every_profile_has_a_valid_example()
    {
        var claimed = ProfileFixture.Examples("valid").Select(ProfileFixture.Read)
            .SelectMany(r => r.Meta?.Profile ?? []).ToHashSet();
        var profiles = ProfileFixture.Validator.Registry.Profiles.Where(p => p.Type != "Extension").Select(p => p.Url).ToList();
        Assert.Equal(18, profiles.Count);
        foreach (var profile in profiles) Assert.Contains(profile, claimed);
    }

    [Fact]
    public void Valid_examples_also_conform_to_the_profiles_they_derive_from()
    {
        var patient = (Patient)ProfileFixture.Read(Path.Combine(ProfileFixture.Folder, "examples", "valid", "Patient-ins-qualified.json"));
        var run = ProfileFixture.Validator.Validate(patient, ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"]);
        Assert.False(run.HasErrors, ProfileFixture.Describe(run));
    }
}
