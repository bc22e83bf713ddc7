using System.Net;
using System.Text;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Rest;

/// <summary>Bad input gets a precise OperationOutcome and a 4xx, never a 500, and nothing is written.</summary>
public sealed class BadInputTests(SqliteGateway gateway) : IClassFixture<SqliteGateway>
{
    private readonly HttpClient _fhir = gateway.Fhir();

    [Theory]
    [InlineData("{\"resourceType\":\"Patient\",\"foo\":1}", OperationOutcome.IssueType.Structure, "Patient.foo")]
    [InlineData("{\"resourceType\":\"Patient\",\"birthDate\":\"14/02/1980\"}", OperationOutcome.IssueType.Invalid, "Patient.birthDate")]
    [InlineData("{\"resourceType\":\"Patient\",\"active\":\"yes\"}", OperationOutcome.IssueType.Invalid, "Patient.active")]
    public async Task Invalid_json_content_is_400_with_expression(string body, OperationOutcome.IssueType code, string expression)
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains(outcome.Issue, i => i.Code == code && i.Expression.Contains(expression));
    }

    [Theory]
    [InlineData("{\"resourceType\":\"Patient\",")]
    [InlineData("not json at all")]
    [InlineData("{\"resourceType\":\"NoSuchType\"}")]
    [InlineData("[]")]
    // The SDK's parser throws outside its collected errors on these (found by fuzzing): they were 500s.
    [InlineData("{\"resourceType\":\"Patient\",\"\":1}")]
    [InlineData("{\"resourceType\":\"Patient\",\"name\":[{\"\":\"x\"}]}")]
    [InlineData("{\"resourceType\":\"Patient\",\"contained\":{\"resourceType\":\"Patient\"}}")]
    [InlineData("{\"resourceType\":\"Patient\",\"contained\":null}")]
    public async Task Malformed_json_is_400(string body)
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotEmpty((await response.ReadAs<OperationOutcome>()).Issue);
    }

    [Fact]
    public async Task Json_patch_writing_an_empty_member_name_is_422_and_changes_nothing()
    {
        var created = await _fhir.PostAsync("Patient", FhirHttp.Json("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Patch\"}]}"));
        var location = created.Headers.Location!.ToString();
        var id = location.Split("/_history")[0].Split('/')[^1];
        foreach (var op in new[] { "{\"op\":\"copy\",\"from\":\"/name/0\",\"path\":\"/\"}", "{\"op\":\"add\",\"path\":\"/\",\"value\":1}", "{\"op\":\"move\",\"from\":\"/name\",\"path\":\"/\"}" })
        {
            var patch = new HttpRequestMessage(HttpMethod.Patch, $"Patient/{id}") { Content = new StringContent($"[{op}]", Encoding.UTF8, "application/json-patch+json") };
            var response = await _fhir.SendAsync(patch);
            // A patch whose result is not a valid resource cannot be applied: 422, as for any other such patch.
            Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
            Assert.Contains("empty name", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
        }
        var read = await _fhir.GetAsync($"Patient/{id}");
        Assert.Equal("W/\"1\"", read.Headers.ETag!.ToString());
    }

    [Theory]
    [InlineData("Observation?value-quantity=0e99999999999")]
    [InlineData("RiskAssessment?probability=1e-99999999999")]
    [InlineData("RiskAssessment?probability=gt0E+3000000000")]
    public async Task Number_with_an_exponent_past_the_int_range_is_400(string search)
    {
        var response = await _fhir.GetAsync(search);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotEmpty((await response.ReadAs<OperationOutcome>()).Issue);
    }

    [Fact]
    public async Task Search_form_with_a_nul_is_400()
    {
        var response = await _fhir.PostAsync("Patient/_search", new StringContent("name=%00", Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotEmpty((await response.ReadAs<OperationOutcome>()).Issue);
    }

    [Fact]
    public async Task Malformed_xml_is_400()
    {
        var response = await _fhir.PostAsync("Patient", new StringContent("<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"></Patient>", Encoding.UTF8, "application/fhir+xml"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Xml_nested_deeper_than_128_levels_is_refused()
    {
        // The SDK's XML reader recurses per level: a few megabytes of nesting would overflow the stack.
        var nested = string.Concat(Enumerable.Repeat("<extension url=\"http://x\">", 200)) + string.Concat(Enumerable.Repeat("</extension>", 200));
        var response = await _fhir.PostAsync("Patient", new StringContent($"<Patient xmlns=\"http://hl7.org/fhir\">{nested}</Patient>", Encoding.UTF8, "application/fhir+xml"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("deeper than 128", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
    }

    [Fact]
    public async Task Xml_with_a_DTD_is_refused()
    {
        const string xxe = "<?xml version=\"1.0\"?><!DOCTYPE p [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><Patient xmlns=\"http://hl7.org/fhir\"><id value=\"&x;\"/></Patient>";
        var response = await _fhir.PostAsync("Patient", new StringContent(xxe, Encoding.UTF8, "application/fhir+xml"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Unsupported_content_type_is_415()
    {
        var response = await _fhir.PostAsync("Patient", new StringContent("{}", Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task Body_over_the_limit_is_413()
    {
        using var small = new SqliteGateway();
        small.Settings["FhirSortie:MaxRequestBodyBytes"] = "1000";
        var client = small.Fhir();
        var big = new Patient { Text = new Narrative { Status = Narrative.NarrativeStatus.Generated, Div = $"<div xmlns=\"http://www.w3.org/1999/xhtml\">{new string('x', 5000)}</div>" } };
        var response = await client.PostAsync("Patient", FhirHttp.Json(big));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(OperationOutcome.IssueType.TooCostly, (await response.ReadAs<OperationOutcome>()).Issue[0].Code);
    }

    [Fact]
    public async Task Unsupported_accept_is_406()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "metadata");
        request.Headers.Accept.Clear();
        request.Headers.TryAddWithoutValidation("Accept", "text/turtle");
        Assert.Equal(HttpStatusCode.NotAcceptable, (await _fhir.SendAsync(request)).StatusCode);
    }

    [Theory]
    [InlineData("GET", "Patient/1/_history/1/extra", HttpStatusCode.NotFound)]
    [InlineData("GET", "Patient/1/a/b/c", HttpStatusCode.NotFound)]
    [InlineData("PUT", "Patient/1/_history/1", HttpStatusCode.MethodNotAllowed)]
    [InlineData("DELETE", "Patient/1/_history", HttpStatusCode.MethodNotAllowed)]
    [InlineData("POST", "Patient/1", HttpStatusCode.MethodNotAllowed)]
    public async Task A_URL_or_method_no_interaction_serves_gets_an_OperationOutcome(string method, string url, HttpStatusCode expected)
    {
        using var response = await _fhir.SendAsync(new HttpRequestMessage(new HttpMethod(method), url) { Content = method == "GET" ? null : FhirHttp.Json("{}") });
        Assert.Equal(expected, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Equal(OperationOutcome.IssueType.NotSupported, Assert.Single(outcome.Issue).Code);
        if (expected == HttpStatusCode.MethodNotAllowed) Assert.Contains("GET", response.Content.Headers.Allow);
    }

    [Fact]
    public async Task Invalid_id_in_url_is_400()
    {
        var response = await _fhir.GetAsync("Patient/" + new string('a', 65));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Failed_write_leaves_nothing_behind()
    {
        var before = await (await _fhir.GetAsync("Patient?_count=0&name=nothingbehind")).ReadAs<Bundle>();
        await _fhir.PostAsync("Patient", FhirHttp.Json("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"nothingbehind\"}],\"foo\":1}"));
        var after = await (await _fhir.GetAsync("Patient?_count=0&name=nothingbehind")).ReadAs<Bundle>();
        Assert.Equal(before.Total, after.Total);
    }
}
