using System.Net;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Rest;

/// <summary>
/// NUL and other control characters, in search values and in resource strings: a 400 on both databases (PostgreSQL
/// refuses a NUL in text, so these were 500s there; found by fuzzing), and nothing written.
/// </summary>
public abstract class ControlCharacterTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-nul", ActorKind.Auditor, null, "system/AuditEvent.rs"));

    [Theory]
    [InlineData("Patient?name=%00")]
    [InlineData("Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|a%00b")]
    [InlineData("Patient?_id=%00")]
    [InlineData("Patient?_tag=x%00")]
    [InlineData("Patient?name:exact=a%00b")]
    [InlineData("MedicationRequest?patient.name=%00")]
    [InlineData("Patient?_has:MedicationRequest:patient:status=%00")]
    [InlineData("Patient?_getpages=%00")]
    [InlineData("AuditEvent?patient=%00")]
    public async Task Search_value_with_a_nul_is_400_naming_the_parameter(string search)
    {
        var response = await (search.StartsWith("AuditEvent", StringComparison.Ordinal) ? _auditor : _fhir).GetAsync(search);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("NUL", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
    }

    [Fact]
    public async Task Condition_with_a_nul_in_any_parameter_or_too_long_is_400()
    {
        // Result parameters (_sort, _count) skip the search clauses, but the condition is stored as a unique key.
        var update = await _fhir.PutAsync("Patient?identifier=urn:test|nul-1&_sort=%00", FhirHttp.Json("{\"resourceType\":\"Patient\"}"));
        var create = new HttpRequestMessage(HttpMethod.Post, "Patient") { Content = FhirHttp.Json("{\"resourceType\":\"Patient\"}") };
        create.Headers.TryAddWithoutValidation("If-None-Exist", "identifier=urn:test|nul-2&_count=%00");
        var longOne = new HttpRequestMessage(HttpMethod.Post, "Patient") { Content = FhirHttp.Json("{\"resourceType\":\"Patient\"}") };
        longOne.Headers.TryAddWithoutValidation("If-None-Exist", "identifier=urn:test|" + new string('x', 3000));
        foreach (var response in new[] { update, await _fhir.SendAsync(create), await _fhir.SendAsync(longOne) })
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Theory]
    [InlineData("\\u0000")]
    [InlineData("\\u0007")]
    [InlineData("\\b")]
    public async Task Resource_string_with_a_control_character_is_400_and_not_stored(string escaped)
    {
        var family = $"Nul{Guid.NewGuid():N}";
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json($"{{\"resourceType\":\"Patient\",\"name\":[{{\"family\":\"{family}\",\"given\":[\"a{escaped}b\"]}}]}}"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("'given'", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
        Assert.Equal(0, (await (await _fhir.GetAsync($"Patient?family={family}")).ReadAs<Bundle>()).Total);
    }

    [Fact]
    public async Task Escaped_tab_line_feed_and_other_characters_are_kept()
    {
        var response = await _fhir.PostAsync("Patient", FhirHttp.Json("{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"a\\tb\\nc\\r\\u00e9\\\"\\\\\"}]}"));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("a\tb\nc\ré\"\\", (await response.ReadAs<Patient>()).Name[0].Text);
    }
}

public sealed class SqliteControlCharacterTests(SqliteGateway gateway) : ControlCharacterTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresControlCharacterTests(PostgresGateway gateway) : ControlCharacterTests(gateway), IClassFixture<PostgresGateway>;
