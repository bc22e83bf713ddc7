using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Xml;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Tests.Rest;

/// <summary>Content negotiation and response shaping: Accept, Content-Type, _format, _pretty, _summary, _elements.</summary>
public abstract class FormatTests(Gateway gateway)
{
    private static readonly FhirXmlDeserializer StrictXml = new(new DeserializerSettings());
    private static readonly BaseFhirXmlSerializer XmlSerializer = new(ModelInfo.ModelInspector);

    private readonly HttpClient _fhir = gateway.Fhir();

    private static Patient NewPatient() => new()
    {
        Text = new Narrative { Status = Narrative.NarrativeStatus.Generated, Div = "<div xmlns=\"http://www.w3.org/1999/xhtml\">Patient de test</div>" },
        Identifier = [new Identifier("urn:oid:1.2.250.1.213.1.4.8", "1" + Random.Shared.NextInt64(10_000_000_000_000, 99_999_999_999_999))],
        Name = [new HumanName { Family = "Hélène", Given = ["Zoé"] }],
        BirthDate = "1980-02-14",
        MaritalStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "S"),
    };

    private async Task<string> CreateAsync()
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(NewPatient()));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.ReadAs<Patient>()).Id!;
    }

    private async Task<HttpResponseMessage> GetAsync(string url, string? accept = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (accept is not null)
        {
            request.Headers.Accept.Clear();
            request.Headers.TryAddWithoutValidation("Accept", accept);
        }
        return await _fhir.SendAsync(request);
    }

    private static readonly FhirJsonDeserializer StrictJson = new(new DeserializerSettings());

    private static Patient ParseJson(string body) => (Patient)StrictJson.DeserializeResource(body);

    private static Patient ParseXml(string body)
    {
        using var reader = XmlReader.Create(new StringReader(body));
        return (Patient)StrictXml.DeserializeResource(reader);
    }

    [Theory]
    [InlineData("application/fhir+xml", "application/fhir+xml")]
    [InlineData("application/xml", "application/fhir+xml")]
    [InlineData("text/xml", "application/fhir+xml")]
    [InlineData("application/fhir+json", "application/fhir+json")]
    [InlineData("application/json", "application/fhir+json")]
    [InlineData("*/*", "application/fhir+json")]
    [InlineData("text/html;q=0.9, application/fhir+xml;q=0.8", "application/fhir+xml")]
    [InlineData("application/fhir+json; fhirVersion=4.0", "application/fhir+json")]
    [InlineData("application/fhir+xml;fhirVersion=4.0.1", "application/fhir+xml")]
    [InlineData("application/fhir+json; fhirVersion=3.0, application/fhir+xml", "application/fhir+xml")]
    public async Task Accept_header_chooses_the_response_format(string accept, string expected)
    {
        var id = await CreateAsync();
        var response = await GetAsync($"Patient/{id}", accept);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("utf-8", response.Content.Headers.ContentType?.CharSet);
        var body = await response.Content.ReadAsStringAsync();
        var patient = expected.EndsWith("xml", StringComparison.Ordinal) ? ParseXml(body) : ParseJson(body);
        Assert.Equal(id, patient.Id);
        Assert.Equal("Hélène", patient.Name[0].Family);
    }

    [Theory]
    [InlineData("json", "application/fhir+json")]
    [InlineData("xml", "application/fhir+xml")]
    [InlineData("application/fhir+xml", "application/fhir+xml")]
    [InlineData("application/fhir+json", "application/fhir+json")]
    [InlineData("application/xml", "application/fhir+xml")]
    [InlineData("text/xml", "application/fhir+xml")]
    public async Task Format_parameter_overrides_Accept(string format, string expected)
    {
        var id = await CreateAsync();
        var opposite = expected.EndsWith("xml", StringComparison.Ordinal) ? "application/fhir+json" : "application/fhir+xml";
        var response = await GetAsync($"Patient/{id}?_format={Uri.EscapeDataString(format)}", opposite);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Unsupported_Accept_is_406_with_an_OperationOutcome()
    {
        var id = await CreateAsync();
        var response = await GetAsync($"Patient/{id}", "text/html");
        Assert.Equal(HttpStatusCode.NotAcceptable, response.StatusCode);
        Assert.Equal("application/fhir+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(OperationOutcome.IssueType.NotSupported, (await response.ReadAs<OperationOutcome>()).Issue[0].Code);
    }

    [Theory]
    [InlineData("application/fhir+json; fhirVersion=3.0")]
    [InlineData("application/fhir+xml; fhirVersion=5.0")]
    public async Task Accept_naming_another_FHIR_version_is_406(string accept)
    {
        var id = await CreateAsync();
        var response = await GetAsync($"Patient/{id}", accept);
        Assert.Equal(HttpStatusCode.NotAcceptable, response.StatusCode);
        Assert.Contains("fhirVersion=4.0", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
    }

    [Fact]
    public async Task Content_Type_naming_another_FHIR_version_is_415_and_R4_is_read()
    {
        var body = "{\"resourceType\":\"Patient\",\"active\":true}";
        var other = new StringContent(body, Encoding.UTF8);
        other.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("application/fhir+json; fhirVersion=5.0");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await _fhir.PostAsync("Patient", other)).StatusCode);
        var r4 = new StringContent(body, Encoding.UTF8);
        r4.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("application/fhir+json; fhirVersion=4.0");
        Assert.Equal(HttpStatusCode.Created, (await _fhir.PostAsync("Patient", r4)).StatusCode);
    }

    [Fact]
    public async Task Unsupported_format_parameter_is_406()
    {
        var id = await CreateAsync();
        var response = await GetAsync($"Patient/{id}?_format=text/turtle");
        Assert.Equal(HttpStatusCode.NotAcceptable, response.StatusCode);
        Assert.IsType<OperationOutcome>(await response.ReadAs<OperationOutcome>());
    }

    [Fact]
    public async Task Unsupported_Content_Type_is_415()
    {
        var response = await _fhir.PostAsync("Patient", new StringContent("{\"resourceType\":\"Patient\"}", Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.IsType<OperationOutcome>(await response.ReadAs<OperationOutcome>());
    }

    [Fact]
    public async Task Xml_body_in_json_out()
    {
        var xml = XmlSerializer.SerializeToString(NewPatient());
        var response = await _fhir.PostAsync("Patient", new StringContent(xml, Encoding.UTF8, "application/fhir+xml"));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("application/fhir+json", response.Content.Headers.ContentType?.MediaType);
        var created = await response.ReadAs<Patient>();
        Assert.Equal("Zoé", created.Name[0].Given.Single());
        Assert.Equal("S", created.MaritalStatus!.Coding[0].Code);
    }

    [Theory]
    [InlineData("application/fhir+json; charset=utf-8")]
    [InlineData("application/fhir+json;charset=UTF-8")]
    [InlineData("application/json")]
    [InlineData("application/fhir+xml; charset=utf-8")]
    public async Task Body_with_charset_is_read_as_utf8(string contentType)
    {
        var patient = NewPatient();
        var text = contentType.Contains("xml", StringComparison.Ordinal)
            ? XmlSerializer.SerializeToString(patient)
            : new BaseFhirJsonSerializer(ModelInfo.ModelInspector).SerializeToString(patient);
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(text));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        var response = await _fhir.PostAsync("Patient", content);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var read = await GetAsync(response.Headers.Location!.ToString());
        var bytes = await read.Content.ReadAsByteArrayAsync();
        // UTF-8 on the wire, not \u escapes: "Hélène" is the bytes 48 C3 A9 6C C3 A8 6E 65.
        Assert.Contains("Hélène", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("json")]
    [InlineData("xml")]
    public async Task Pretty_true_indents_and_default_is_compact(string format)
    {
        var id = await CreateAsync();
        var compact = await (await GetAsync($"Patient/{id}?_format={format}")).Content.ReadAsStringAsync();
        var pretty = await (await GetAsync($"Patient/{id}?_format={format}&_pretty=true")).Content.ReadAsStringAsync();
        Assert.DoesNotContain('\n', compact.Trim());
        Assert.Contains("\n  ", pretty, StringComparison.Ordinal);
        // Same resource either way.
        var a = format == "xml" ? ParseXml(compact) : ParseJson(compact);
        var b = format == "xml" ? ParseXml(pretty) : ParseJson(pretty);
        Assert.True(a.IsExactly(b));
    }

    [Fact]
    public async Task Summary_true_keeps_summary_elements_and_tags_SUBSETTED()
    {
        var id = await CreateAsync();
        var patient = ParseJson(await (await GetAsync($"Patient/{id}?_summary=true")).Content.ReadAsStringAsync());
        Assert.Equal("Hélène", patient.Name[0].Family);
        Assert.Equal("1980-02-14", patient.BirthDate);
        Assert.Null(patient.MaritalStatus); // not a summary element
        Assert.Null(patient.Text);
        AssertSubsetted(patient);
    }

    [Fact]
    public async Task Summary_text_keeps_the_narrative_only()
    {
        var id = await CreateAsync();
        var patient = ParseJson(await (await GetAsync($"Patient/{id}?_summary=text")).Content.ReadAsStringAsync());
        Assert.Contains("Patient de test", patient.Text!.Div, StringComparison.Ordinal);
        Assert.Equal(id, patient.Id);
        Assert.Empty(patient.Name);
        Assert.Null(patient.BirthDate);
        AssertSubsetted(patient);
    }

    [Fact]
    public async Task Summary_data_drops_the_narrative()
    {
        var id = await CreateAsync();
        var patient = ParseJson(await (await GetAsync($"Patient/{id}?_summary=data")).Content.ReadAsStringAsync());
        Assert.Null(patient.Text);
        Assert.Equal("S", patient.MaritalStatus!.Coding[0].Code);
        AssertSubsetted(patient);
    }

    [Fact]
    public async Task Summary_count_on_read_returns_no_content_elements()
    {
        var id = await CreateAsync();
        var response = await GetAsync($"Patient/{id}?_summary=count");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var patient = ParseJson(await response.Content.ReadAsStringAsync());
        Assert.Empty(patient.Name);
        Assert.Null(patient.Text);
        Assert.Null(patient.BirthDate);
    }

    [Fact]
    public async Task Summary_with_a_bad_value_is_400()
    {
        var id = await CreateAsync();
        var response = await GetAsync($"Patient/{id}?_summary=maybe");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.IsType<OperationOutcome>(await response.ReadAs<OperationOutcome>());
    }

    [Theory]
    [InlineData("json")]
    [InlineData("xml")]
    public async Task Elements_keeps_the_named_elements_and_tags_SUBSETTED(string format)
    {
        var id = await CreateAsync();
        var body = await (await GetAsync($"Patient/{id}?_elements=identifier,birthDate&_format={format}")).Content.ReadAsStringAsync();
        var patient = format == "xml" ? ParseXml(body) : ParseJson(body);
        Assert.Equal(id, patient.Id);
        Assert.Single(patient.Identifier);
        Assert.Equal("1980-02-14", patient.BirthDate);
        Assert.Empty(patient.Name);
        Assert.Null(patient.MaritalStatus);
        AssertSubsetted(patient);
    }

    [Fact]
    public async Task Full_read_is_not_tagged_SUBSETTED()
    {
        var id = await CreateAsync();
        var patient = ParseJson(await (await GetAsync($"Patient/{id}")).Content.ReadAsStringAsync());
        Assert.DoesNotContain(patient.Meta?.Tag ?? [], t => t.Code == "SUBSETTED");
        Assert.Equal("S", patient.MaritalStatus!.Coding[0].Code);
    }

    private static void AssertSubsetted(Patient patient) =>
        Assert.Contains(patient.Meta!.Tag, t => t.System == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" && t.Code == "SUBSETTED");
}

public sealed class SqliteFormatTests(SqliteGateway gateway) : FormatTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresFormatTests(PostgresGateway gateway) : FormatTests(gateway), IClassFixture<PostgresGateway>;
