using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Xml;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Xunit.Abstractions;
using FhirFormat = FhirSortie.Server.Rest.FhirFormat;

namespace FhirSortie.Tests.Rest;

/// <summary>
/// The official R4 examples (HL7 fhir-test-cases, r4/examples) read from the shared folder, never copied into the repo:
/// FHIRSORTIE_SHARED (set by test.sh), else ../shared beside the repository. Absent: the tests are skipped.
/// </summary>
public static class OfficialExamples
{
    public static string? Folder { get; } = Find();

    public static string SkipReason =>
        "Official R4 examples not found: set FHIRSORTIE_SHARED to the folder holding testdata/fhir-test-cases (test.sh does), "
        + "or put it at ../shared beside the repository.";

    public static TheoryData<string> Files(string extension)
    {
        var data = new TheoryData<string>();
        if (Folder is null) return data;
        foreach (var file in Directory.EnumerateFiles(Folder, "*." + extension).Select(Path.GetFileName).Order(StringComparer.Ordinal))
            data.Add(file!);
        return data;
    }

    private static string? Find()
    {
        var shared = Environment.GetEnvironmentVariable("FHIRSORTIE_SHARED");
        if (string.IsNullOrEmpty(shared))
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FhirSortie.sln"))) dir = dir.Parent;
            if (dir?.Parent is null) return null;
            shared = Path.Combine(dir.Parent.FullName, "shared");
        }
        var folder = Path.Combine(shared, "testdata", "fhir-test-cases", "r4", "examples");
        return Directory.Exists(folder) ? folder : null;
    }
}

/// <summary>A theory over the official examples that is skipped, with the reason, when they are not there.</summary>
public sealed class OfficialExamplesTheoryAttribute : TheoryAttribute
{
    public OfficialExamplesTheoryAttribute()
    {
        if (OfficialExamples.Folder is null) Skip = OfficialExamples.SkipReason;
    }
}

/// <summary>
/// Every official example is stored with its own id (PUT) and read back unchanged, apart from meta.versionId and
/// meta.lastUpdated, which are the server's. An example the SDK's strict parser refuses must be refused the same way
/// (400 with an OperationOutcome, never a 500, never stored half-understood).
/// </summary>
public abstract class ExamplesRoundTripTests(Gateway gateway, ITestOutputHelper output)
{
    private static readonly FhirJsonDeserializer StrictJson = new(new DeserializerSettings());
    private static readonly FhirXmlDeserializer StrictXml = new(new DeserializerSettings());

    private readonly HttpClient _fhir = gateway.Fhir();

    /// <summary>
    /// Official examples the SDK's strict parser refuses (Hl7.Fhir.R4 6.8.0), and why. Examples with real errors:
    /// apgar (display attributes with trailing spaces), bundle-questionnaire (items without the required linkId).
    /// SDK stricter than the spec's regexes: decimals beyond System.Decimal's range (1E+245 is a valid FHIR decimal),
    /// an upper-case urn:uuid in a uri, "http:////" in a canonical (uri and canonical are just \S* in R4).
    /// </summary>
    private static readonly HashSet<string> RefusedByStrictSdk =
    [
        "observation-example-20minute-apgar-score.xml",
        "bundle-questionnaire.json",
        "observation-decimal.json",
        "observation-decimal.xml",
        "capabilitystatement-example.json",
        "messageheader-example.json",
    ];

    /// <summary>
    /// Official examples the gateway refuses by its own rules, with the status it answers: the Subscription example
    /// delivers to an endpoint no client registered (Notifications/: 403); AuditEvents are the gateway's own append-only
    /// records, which no client writes (Audit/: 405).
    /// </summary>
    private static readonly Dictionary<string, HttpStatusCode> RefusedByGatewayRules = new()
    {
        ["auditevent-example.json"] = HttpStatusCode.MethodNotAllowed,
        ["subscription-example.json"] = HttpStatusCode.Forbidden,
        ["subscription-example.xml"] = HttpStatusCode.Forbidden,
    };

    /// <summary>
    /// Official examples that break R4's own reference target types (checked against the R4 definitions in
    /// profiles-resources of Hl7.Fhir.Specification.Data.R4 6.8.0: each element allows only the types listed), which the
    /// gateway refuses on every write with a 422 naming the element: DeviceMetric.parent is Reference(Device), not
    /// DeviceDefinition; MedicationRequest.dispenseRequest.performer is Reference(Organization), not Practitioner;
    /// DeviceUseStatement.reasonReference is Reference(Condition | Observation | DiagnosticReport | DocumentReference |
    /// Media), not Procedure. Known errors of the R4 examples, not of our check: they stay refused.
    /// </summary>
    private static readonly Dictionary<string, (string Element, string Target)> BreakBaseReferenceTargets = new()
    {
        ["devicemetric-example.json"] = ("DeviceMetric.parent.reference", "DeviceDefinition"),
        ["medicationrequest0301.json"] = ("MedicationRequest.dispenseRequest.performer.reference", "Practitioner"),
        ["deviceusestatement-example.json"] = ("DeviceUseStatement.reasonReference[0].reference", "Procedure"),
    };

    public static TheoryData<string> JsonExamples => OfficialExamples.Files("json");

    public static TheoryData<string> XmlExamples => OfficialExamples.Files("xml");

    [OfficialExamplesTheory]
    [MemberData(nameof(JsonExamples), MemberType = typeof(ExamplesRoundTripTests))]
    public async Task Official_json_example_round_trips(string file)
    {
        var text = await File.ReadAllTextAsync(Path.Combine(OfficialExamples.Folder!, file));
        await RoundTripAsync(file, text, FhirFormat.JsonContentType, () => StrictJson.DeserializeResource(text), body => StrictJson.DeserializeResource(body));
    }

    [OfficialExamplesTheory]
    [MemberData(nameof(XmlExamples), MemberType = typeof(ExamplesRoundTripTests))]
    public async Task Official_xml_example_round_trips(string file)
    {
        var text = await File.ReadAllTextAsync(Path.Combine(OfficialExamples.Folder!, file));
        await RoundTripAsync(file, text, FhirFormat.XmlContentType, () => ParseXml(text), ParseXml);
    }

    private async Task RoundTripAsync(string file, string text, string mediaType, Func<Resource> parseOriginal, Func<string, Resource> parseResponse)
    {
        Resource original;
        try
        {
            original = parseOriginal();
        }
        catch (DeserializationFailedException e)
        {
            // The SDK (strict) refuses the official example: the gateway must refuse it the same way.
            var type = FirstTypeName(text, mediaType);
            using var refused = await _fhir.PostAsync(type, new StringContent(text, Encoding.UTF8, mediaType));
            output.WriteLine($"{file}: refused by the SDK's strict parser, and by the gateway with {(int)refused.StatusCode}: {e.Message}");
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains(file, RefusedByStrictSdk);
            Assert.IsType<OperationOutcome>(await refused.ReadAs<OperationOutcome>());
            return;
        }
        // With its own id: PUT (update as create). Without one (parameters-example): POST, and the server's id.
        var withId = !string.IsNullOrEmpty(original.Id);
        using var write = new HttpRequestMessage(withId ? HttpMethod.Put : HttpMethod.Post, withId ? $"{original.TypeName}/{original.Id}" : original.TypeName)
        {
            Content = new StringContent(text, Encoding.UTF8, mediaType),
        };
        using var stored = await _fhir.SendAsync(write);
        Assert.DoesNotContain(file, RefusedByStrictSdk);
        if (BreakBaseReferenceTargets.TryGetValue(file, out var broken))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, stored.StatusCode);
            var issue = Assert.Single((await stored.ReadAs<OperationOutcome>()).Issue);
            Assert.Equal([broken.Element], issue.Expression);
            Assert.Contains($"R4 does not allow a reference to {broken.Target} here (allowed: ", issue.Diagnostics, StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.NotFound, (await _fhir.GetAsync($"{original.TypeName}/{original.Id}")).StatusCode);
            return;
        }
        if (RefusedByGatewayRules.TryGetValue(file, out var refusal))
        {
            Assert.Equal(refusal, stored.StatusCode);
            Assert.IsType<OperationOutcome>(await stored.ReadAs<OperationOutcome>());
            return;
        }
        Assert.True(stored.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK,
            $"{file}: {write.Method} answered {(int)stored.StatusCode}: {await stored.Content.ReadAsStringAsync()}");
        var id = withId ? original.Id : stored.Headers.Location!.AbsolutePath.Split('/')[^3];

        using var get = new HttpRequestMessage(HttpMethod.Get, $"{original.TypeName}/{id}");
        get.Headers.Accept.Clear();
        get.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(mediaType));
        // Only auditors read audit records (issue 5).
        using var read = await (original.TypeName == "AuditEvent"
            ? gateway.Fhir(TestAuthenticationHandler.Describe("dpo", Server.Security.ActorKind.Auditor, null, "system/AuditEvent.rs"))
            : _fhir).SendAsync(get);
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal(mediaType, read.Content.Headers.ContentType?.MediaType);
        var back = parseResponse(await read.Content.ReadAsStringAsync());

        Assert.NotNull(back.Meta?.VersionId);
        Assert.NotNull(back.Meta?.LastUpdated);
        Assert.Equal(id, back.Id);
        if (!withId) back.Id = null;
        WithoutServerMeta(original);
        WithoutServerMeta(back);
        Assert.True(back.IsExactly(original), $"{file} came back different:\n{FhirFormat.JsonSerializer.SerializeToString(back)}");
    }

    private static Resource ParseXml(string text)
    {
        using var reader = XmlReader.Create(new StringReader(text), FhirFormat.SafeXmlSettings);
        return StrictXml.DeserializeResource(reader);
    }

    private static void WithoutServerMeta(Resource resource)
    {
        if (resource.Meta is null) return;
        resource.Meta.VersionId = null;
        resource.Meta.LastUpdated = null;
        if (resource.Meta.IsExactly(new Meta())) resource.Meta = null;
    }

    private static string FirstTypeName(string text, string mediaType)
    {
        if (mediaType == FhirFormat.XmlContentType)
        {
            using var reader = XmlReader.Create(new StringReader(text), FhirFormat.SafeXmlSettings);
            reader.MoveToContent();
            return reader.LocalName;
        }
        using var json = System.Text.Json.JsonDocument.Parse(text);
        return json.RootElement.GetProperty("resourceType").GetString()!;
    }
}

public sealed class SqliteExamplesRoundTripTests(SqliteGateway gateway, ITestOutputHelper output)
    : ExamplesRoundTripTests(gateway, output), IClassFixture<SqliteGateway>;

public sealed class PostgresExamplesRoundTripTests(PostgresGateway gateway, ITestOutputHelper output)
    : ExamplesRoundTripTests(gateway, output), IClassFixture<PostgresGateway>;
