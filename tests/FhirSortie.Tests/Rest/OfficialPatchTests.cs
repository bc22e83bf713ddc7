using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Xunit.Abstractions;

namespace FhirSortie.Tests.Rest;

/// <summary>
/// The official FHIR test cases for JSON Patch and FHIRPath Patch (fhir-test-cases/r4/patch), run against our appliers.
/// The folder is read from FHIRSORTIE_SHARED (test.sh sets it) or ../shared beside the repository; when it is absent,
/// each theory yields one "testdata missing" case that passes with a message instead of failing.
/// </summary>
public sealed class OfficialPatchTests(ITestOutputHelper output)
{
    private const string Missing = "testdata missing";

    /// <summary>FHIRPath Patch cases we deliberately do not support (must be refused cleanly, never half applied).</summary>
    public static readonly IReadOnlyDictionary<string, string> UnsupportedFhirPathCases = new Dictionary<string, string>();

    private static string? PatchFolder()
    {
        var shared = Environment.GetEnvironmentVariable("FHIRSORTIE_SHARED");
        if (string.IsNullOrEmpty(shared))
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "FhirSortie.sln")))
                {
                    shared = Path.Combine(dir.FullName, "..", "shared");
                    break;
                }
            }
        }
        var folder = shared is null ? null : Path.Combine(shared, "testdata", "fhir-test-cases", "r4", "patch");
        return folder is not null && Directory.Exists(folder) ? folder : null;
    }

    public static TheoryData<string> JsonPatchCases()
    {
        var data = new TheoryData<string>();
        if (PatchFolder() is not { } folder)
        {
            data.Add(Missing);
            return data;
        }
        var cases = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "json-patch-tests.json")))!.AsArray();
        for (var i = 0; i < cases.Count; i++) data.Add($"{i}: {cases[i]!["comment"]}");
        return data;
    }

    public static TheoryData<string> FhirPathPatchCases()
    {
        var data = new TheoryData<string>();
        if (PatchFolder() is not { } folder)
        {
            data.Add(Missing);
            return data;
        }
        foreach (var c in XDocument.Load(Path.Combine(folder, "fhir-patch-tests.xml")).Root!.Elements("case"))
            data.Add((string)c.Attribute("name")!);
        return data;
    }

    [Theory]
    [MemberData(nameof(JsonPatchCases))]
    public void Official_JSON_Patch_case(string name)
    {
        if (name == Missing)
        {
            output.WriteLine("fhir-test-cases/r4/patch not found (set FHIRSORTIE_SHARED): nothing to run.");
            return;
        }
        var index = int.Parse(name[..name.IndexOf(':')], System.Globalization.CultureInfo.InvariantCulture);
        var testCase = JsonNode.Parse(File.ReadAllText(Path.Combine(PatchFolder()!, "json-patch-tests.json")))!.AsArray()[index]!;
        if (testCase["error"] is { } error)
        {
            var e = Assert.Throws<FhirException>(() => JsonPatch.Parse(testCase["patch"]!.DeepClone()).Apply(testCase["doc"]!.DeepClone()));
            Assert.InRange((int)e.Status, 400, 499);
            output.WriteLine($"refused as expected ({error}): {e.Message}");
            return;
        }
        var patched = JsonPatch.Parse(testCase["patch"]!.DeepClone()).Apply(testCase["doc"]!.DeepClone());
        Assert.True(JsonNode.DeepEquals(testCase["expected"], patched), $"expected {testCase["expected"]!.ToJsonString()} but got {patched?.ToJsonString()}");
    }

    [Theory]
    [MemberData(nameof(FhirPathPatchCases))]
    public void Official_FHIRPath_Patch_case(string name)
    {
        if (name == Missing)
        {
            output.WriteLine("fhir-test-cases/r4/patch not found (set FHIRSORTIE_SHARED): nothing to run.");
            return;
        }
        var testCase = XDocument.Load(Path.Combine(PatchFolder()!, "fhir-patch-tests.xml")).Root!.Elements("case")
            .First(c => (string)c.Attribute("name")! == name);
        // A stored resource always has an id (and the strict re-parse refuses an empty resource): give the cases one.
        var input = WithId(ParseXml(testCase.Element("input")!));
        var diff = (Parameters)ParseXml(testCase.Element("diff")!);
        if (UnsupportedFhirPathCases.TryGetValue(name, out var reason))
        {
            var refused = Assert.Throws<FhirException>(() => FhirPathPatch.Parse(diff).Apply(input));
            output.WriteLine($"not supported ({reason}); refused with {(int)refused.Status}");
            return;
        }
        if (testCase.Element("error") is { } error)
        {
            var e = Assert.Throws<FhirException>(() => FhirPathPatch.Parse(diff).Apply(input));
            Assert.InRange((int)e.Status, 400, 499);
            output.WriteLine($"refused as expected ({error.Attribute("msg")?.Value}): {e.Message}");
            return;
        }
        var patched = FhirPathPatch.Parse(diff).Apply(input);
        var expected = WithId(ParseXml(testCase.Element("output")!));
        Assert.Equal(Json(expected), Json(patched));
    }

    // Recoverable: some cases hold an empty Parameters or Patient, which strict parsing refuses.
    private static Resource ParseXml(XElement holder) =>
        new FhirXmlDeserializer(new DeserializerSettings().UsingMode(DeserializationMode.Recoverable)).DeserializeResource(holder.Elements().Single().ToString());

    private static Resource WithId(Resource resource)
    {
        resource.Id ??= "case";
        return resource;
    }

    // The cases indent narratives differently in input and output; whitespace between tags is not content.
    private static string Json(Resource resource)
    {
        if (resource is DomainResource { Text.Div: { } div } domain) domain.Text.Div = Regex.Replace(div, ">\\s+<", "><");
        return new BaseFhirJsonSerializer(ModelInfo.ModelInspector).SerializeToString(resource);
    }
}
