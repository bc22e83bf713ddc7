using System.Net;
using System.Net.Http.Headers;
using System.Xml;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Hl7.Fhir.Validation;
using Endpoint = Microsoft.AspNetCore.Http.Endpoint;
using Interaction = Hl7.Fhir.Model.CapabilityStatement.TypeRestfulInteraction;
using SystemInteraction = Hl7.Fhir.Model.CapabilityStatement.SystemRestfulInteraction;

namespace FhirSortie.Tests.Rest;

/// <summary>GET [base]/metadata, on the running gateway, and how routes become capabilities.</summary>
public abstract class CapabilitiesTests(Gateway gateway)
{
    private static readonly FhirJsonDeserializer StrictJson = new(new DeserializerSettings());
    private static readonly FhirXmlDeserializer StrictXml = new(new DeserializerSettings());

    private async Task<(HttpResponseMessage Response, CapabilityStatement Statement)> MetadataAsync(string mediaType)
    {
        // A plain client with no Authorization header: metadata needs no authentication.
        var client = gateway.CreateClient();
        var request = new HttpRequestMessage(HttpMethod.Get, "/fhir/metadata");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(mediaType));
        var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Resource parsed;
        if (mediaType.EndsWith("xml", StringComparison.Ordinal))
        {
            using var reader = XmlReader.Create(new StringReader(body));
            parsed = StrictXml.DeserializeResource(reader);
        }
        else
        {
            parsed = StrictJson.DeserializeResource(body);
        }
        return (response, Assert.IsType<CapabilityStatement>(parsed));
    }

    [Theory]
    [InlineData("application/fhir+json")]
    [InlineData("application/fhir+xml")]
    public async Task Metadata_is_a_valid_R4_CapabilityStatement_without_authentication(string mediaType)
    {
        var (response, statement) = await MetadataAsync(mediaType);
        Assert.Equal(mediaType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(FHIRVersion.N4_0_1, statement.FhirVersion);
        Assert.Equal(CapabilityStatementKind.Instance, statement.Kind);
        Assert.Equal(PublicationStatus.Active, statement.Status);
        Assert.NotNull(statement.Date);
        Assert.Contains(FhirFormat.JsonContentType, statement.Format);
        Assert.Contains(FhirFormat.XmlContentType, statement.Format);
        Assert.Equal("http://localhost/fhir", statement.Implementation!.Url);
        Assert.Empty(statement.Validate()); // cardinality and value checks of the SDK's POCO validation
        var rest = Assert.Single(statement.Rest);
        Assert.Equal(CapabilityStatement.RestfulCapabilityMode.Server, rest.Mode);
    }

    [Fact]
    public async Task Patient_lists_the_implemented_interactions_and_conditional_support()
    {
        var (_, statement) = await MetadataAsync("application/fhir+json");
        var patient = statement.Rest[0].Resource.Single(r => r.Type == "Patient");
        var codes = patient.Interaction.Select(i => i.Code!.Value).ToHashSet();
        Assert.Superset(new HashSet<Interaction> { Interaction.Read, Interaction.Vread, Interaction.Create, Interaction.Update, Interaction.Delete, Interaction.SearchType }, codes);
        Assert.Equal(CapabilityStatement.ResourceVersionPolicy.VersionedUpdate, patient.Versioning);
        Assert.True(patient.ReadHistory);
        Assert.True(patient.UpdateCreate);
        Assert.True(patient.ConditionalCreate);
        Assert.True(patient.ConditionalUpdate);
        Assert.Equal(CapabilityStatement.ConditionalDeleteStatus.Single, patient.ConditionalDelete);
    }

    [Fact]
    public async Task Each_operation_is_listed_once_per_type_with_its_definition()
    {
        var (_, statement) = await MetadataAsync("application/fhir+json");
        foreach (var resource in statement.Rest[0].Resource)
            Assert.Equal(resource.Operation.Select(o => o.Name).Distinct().Count(), resource.Operation.Count);
        var patient = statement.Rest[0].Resource.Single(r => r.Type == "Patient");
        Assert.Equal("http://hl7.org/fhir/OperationDefinition/Resource-validate", patient.Operation.Single(o => o.Name == "validate").Definition);
        Assert.Contains(patient.Operation, o => o.Name == "everything");
    }

    [Fact]
    public async Task Every_searchable_type_lists_all_its_search_parameters_with_definition_and_type()
    {
        var (_, statement) = await MetadataAsync("application/fhir+json");
        var parameters = gateway.Services.GetRequiredService<SearchParameters>();
        Assert.Equal(ModelInfo.SupportedResources.Count, statement.Rest[0].Resource.Count);
        foreach (var resource in statement.Rest[0].Resource.Where(r => r.Interaction.Any(i => i.Code == Interaction.SearchType)))
        {
            // AuditEvent: what the audit store serves of them (Audit/AuditSearch.cs; AuditStoreTests checks the list).
            var expected = parameters.For(resource.Type!).Select(p => p.Code ?? p.Name)
                .Where(code => resource.Type != "AuditEvent" || Server.Audit.AuditSearch.Served.ContainsKey(code ?? "")).Order(StringComparer.Ordinal).ToList();
            Assert.NotEmpty(expected);
            Assert.Equal(expected, resource.SearchParam.Select(p => p.Name).ToList());
            Assert.All(resource.SearchParam, p =>
            {
                Assert.NotNull(p.Type);
                Assert.StartsWith("http", p.Definition, StringComparison.Ordinal);
            });
        }
        var patient = statement.Rest[0].Resource.Single(r => r.Type == "Patient");
        var identifier = patient.SearchParam.Single(p => p.Name == "identifier");
        Assert.Equal(SearchParamType.Token, identifier.Type);
        Assert.Equal("http://hl7.org/fhir/SearchParameter/Patient-identifier", identifier.Definition);
    }

    private async Task<HttpResponseMessage> GetMetadataAsync(string query = "", Action<HttpRequestMessage>? headers = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/fhir/metadata" + query);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        headers?.Invoke(request);
        return await gateway.CreateClient().SendAsync(request);
    }

    [Fact]
    public async Task Metadata_is_built_once_and_answers_304_to_its_ETag_and_Last_Modified()
    {
        var first = await GetMetadataAsync();
        var second = await GetMetadataAsync();
        Assert.NotNull(first.Headers.ETag);
        Assert.Equal(first.Headers.ETag, second.Headers.ETag);
        Assert.Equal(await first.Content.ReadAsByteArrayAsync(), await second.Content.ReadAsByteArrayAsync());
        Assert.NotNull(first.Content.Headers.LastModified);

        var byTag = await GetMetadataAsync(headers: r => r.Headers.IfNoneMatch.Add(first.Headers.ETag!));
        Assert.Equal(HttpStatusCode.NotModified, byTag.StatusCode);
        Assert.Empty(await byTag.Content.ReadAsByteArrayAsync());
        var otherTag = await GetMetadataAsync(headers: r => r.Headers.TryAddWithoutValidation("If-None-Match", "W/\"other\""));
        Assert.Equal(HttpStatusCode.OK, otherTag.StatusCode);
        var byDate = await GetMetadataAsync(headers: r => r.Headers.IfModifiedSince = first.Content.Headers.LastModified);
        Assert.Equal(HttpStatusCode.NotModified, byDate.StatusCode);
        var before = await GetMetadataAsync(headers: r => r.Headers.IfModifiedSince = first.Content.Headers.LastModified!.Value.AddDays(-1));
        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
    }

    [Theory]
    [InlineData("true")]
    [InlineData("text")]
    [InlineData("data")]
    public async Task Metadata_honours_summary_and_says_it_is_subsetted(string summary)
    {
        var full = await (await GetMetadataAsync()).Content.ReadAsByteArrayAsync();
        var response = await GetMetadataAsync("?_summary=" + summary);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsByteArrayAsync();
        var statement = Assert.IsType<CapabilityStatement>(StrictJson.DeserializeResource(System.Text.Encoding.UTF8.GetString(body)));
        // data only drops the narrative, which the statement has none of: it is the whole statement plus the tag.
        if (summary == "data") Assert.Null(statement.Text);
        else Assert.True(body.Length < full.Length, $"_summary={summary}: {body.Length} bytes, the whole statement {full.Length}");
        var tag = Assert.Single(statement.Meta!.Tag);
        Assert.Equal(("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED"), (tag.System, tag.Code));
    }

    [Fact]
    public async Task Metadata_summary_count_is_a_clear_400()
    {
        // R4 search.html: _summary=count returns the count of a search's matches; the statement is not a search.
        var response = await GetMetadataAsync("?_summary=count");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var issue = (await response.ReadAs<OperationOutcome>()).Issue.Single();
        Assert.Equal(OperationOutcome.IssueType.NotSupported, issue.Code);
        Assert.Contains("_summary=count", issue.Diagnostics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metadata_mode_terminology_is_a_clear_400_and_full_and_normative_are_the_statement()
    {
        var terminology = await GetMetadataAsync("?mode=terminology");
        Assert.Equal(HttpStatusCode.BadRequest, terminology.StatusCode);
        var issue = (await terminology.ReadAs<OperationOutcome>()).Issue.Single();
        Assert.Equal(OperationOutcome.IssueType.NotSupported, issue.Code);
        Assert.Contains("TerminologyCapabilities", issue.Diagnostics, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await GetMetadataAsync("?mode=everything")).StatusCode);
        var full = await (await GetMetadataAsync()).Content.ReadAsByteArrayAsync();
        Assert.Equal(full, await (await GetMetadataAsync("?mode=full")).Content.ReadAsByteArrayAsync());
        Assert.Equal(full, await (await GetMetadataAsync("?mode=normative")).Content.ReadAsByteArrayAsync());
    }

    [Theory]
    [InlineData("gzip", "gzip")]
    [InlineData("gzip, deflate, br", "br")]
    [InlineData("br;q=0, gzip", "gzip")]
    public async Task Metadata_is_sent_compressed_when_the_client_accepts_it(string acceptEncoding, string expected)
    {
        var plain = await (await GetMetadataAsync()).Content.ReadAsByteArrayAsync();
        var response = await GetMetadataAsync(headers: r => r.Headers.TryAddWithoutValidation("Accept-Encoding", acceptEncoding));
        Assert.Equal([expected], response.Content.Headers.ContentEncoding);
        using var compressed = new MemoryStream(await response.Content.ReadAsByteArrayAsync());
        using Stream decoder = expected == "br"
            ? new System.IO.Compression.BrotliStream(compressed, System.IO.Compression.CompressionMode.Decompress)
            : new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionMode.Decompress);
        using var decoded = new MemoryStream();
        await decoder.CopyToAsync(decoded);
        Assert.Equal(plain, decoded.ToArray());
    }

    [Fact]
    public void Routes_become_interactions_operations_and_patch_formats()
    {
        Endpoint Route(string method, string pattern, params object[] metadata) =>
            new RouteEndpoint(_ => Task.CompletedTask, RoutePatternFactory.Parse(pattern), 0,
                new EndpointMetadataCollection([new HttpMethodMetadata([method]), .. metadata]), pattern);

        var endpoints = new[]
        {
            Route("GET", "/fhir/metadata"),
            Route("POST", "/fhir", new Capabilities.BundleInteractions(Batch: true, Transaction: false)),
            Route("GET", "/fhir/_history"),
            Route("GET", "/fhir/{type}"),
            Route("GET", "/fhir/{type}/{id}"),
            Route("PATCH", "/fhir/{type}/{id}", new Capabilities.PatchFormats("application/json-patch+json", "application/fhir+json")),
            Route("GET", "/fhir/{type}/{id}/_history"),
            Route("GET", "/fhir/Patient/{id}/$everything"),
            Route("POST", "/fhir/{type}/$validate"),
            Route("POST", "/fhir/$export", new Capabilities.OperationDefinition("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export")),
            Route("GET", "/health"),
        };
        var statement = Capabilities.Build("https://gw.example.fr/fhir", new SearchParameters([]), endpoints);
        var rest = statement.Rest.Single();

        Assert.Equal([SystemInteraction.Batch, SystemInteraction.HistorySystem], rest.Interaction.Select(i => i.Code!.Value).Order().ToArray());
        Assert.Equal(["application/fhir+json", "application/json-patch+json"], statement.PatchFormat);
        var system = Assert.Single(rest.Operation);
        Assert.Equal(("export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"), (system.Name, system.Definition));

        var patient = rest.Resource.Single(r => r.Type == "Patient");
        Assert.Equal(
            [Interaction.Read, Interaction.Patch, Interaction.HistoryInstance, Interaction.SearchType],
            patient.Interaction.Select(i => i.Code!.Value).Order().ToArray());
        Assert.False(patient.ReadHistory); // no vread route
        Assert.False(patient.UpdateCreate); // no update route
        Assert.False(patient.ConditionalCreate);
        Assert.Equal(
            [("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"), ("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate")],
            patient.Operation.Select(o => (o.Name, o.Definition)).ToArray());
        var observation = rest.Resource.Single(r => r.Type == "Observation");
        Assert.Equal("validate", Assert.Single(observation.Operation).Name);
        Assert.Equal("https://gw.example.fr/fhir", statement.Implementation!.Url);
    }
}

public sealed class SqliteCapabilitiesTests(SqliteGateway gateway) : CapabilitiesTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresCapabilitiesTests(PostgresGateway gateway) : CapabilitiesTests(gateway), IClassFixture<PostgresGateway>;
