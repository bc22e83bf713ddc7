#nullable disable warnings
using System.Net;
using System.Text;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Rest;

/// <summary>
/// Operations as real clients invoke them (R4 operations.html): POST with a Parameters body or none (Firely's FhirClient
/// and fhir-kit-client do by default), GET only where the operation does not affect state, an OperationDefinition for
/// each custom one, and "not supported" for an operation the server lacks.
/// </summary>
public abstract class OperationsTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private async Task<string> PatientAsync()
    {
        var run = NewRun();
        var patient = await _fhir.CreateAsync(Patient(run, "1" + Random.Shared.NextInt64(10_000_000_000_000, 99_999_999_999_999), "Operation"));
        await _fhir.CreateAsync(Buprenorphine(run, patient.Id));
        return patient.Id;
    }

    private static StringContent Parameters(params (string Name, DataType Value)[] parameters)
    {
        var body = new Parameters();
        foreach (var (name, value) in parameters) body.Add(name, value);
        return FhirHttp.Json(body);
    }

    private async Task<Bundle> PostAsync(string url, HttpContent content)
    {
        var response = await _fhir.PostAsync(url, content);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"POST {url} returned {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.ReadAs<Bundle>();
    }

    [Fact]
    public async Task Everything_is_served_by_POST_with_no_body_an_empty_Parameters_or_a_form()
    {
        var patient = await PatientAsync();
        var byGet = (await _fhir.SearchAsync($"Patient/{patient}/$everything")).Matches().Order().ToList();
        Assert.Contains(patient, byGet);

        Assert.Equal(byGet, (await PostAsync($"Patient/{patient}/$everything", new ByteArrayContent([]))).Matches().Order());
        Assert.Equal(byGet, (await PostAsync($"Patient/{patient}/$everything", Parameters())).Matches().Order());
        Assert.Equal(byGet, (await PostAsync($"Patient/{patient}/$everything", new FormUrlEncodedContent([]))).Matches().Order());
    }

    [Fact]
    public async Task Everything_by_POST_takes_parameters_from_the_body_and_the_query_together()
    {
        var patient = await PatientAsync();

        var onlyPatient = await PostAsync($"Patient/{patient}/$everything", Parameters(("_type", new FhirString("Patient"))));
        Assert.Equal([patient], onlyPatient.Matches());

        // _type in the query, _since in the body: both apply (nothing changed since tomorrow).
        var tomorrow = DateTimeOffset.UtcNow.AddDays(1);
        var none = await PostAsync($"Patient/{patient}/$everything?_type=Patient", Parameters(("_since", new Instant(tomorrow))));
        Assert.Empty(none.Matches());
        var both = await PostAsync($"Patient/{patient}/$everything?_type=MedicationRequest",
            Parameters(("_since", new Instant(DateTimeOffset.UtcNow.AddDays(-1)))));
        Assert.Single(both.Matches());
        Assert.All(both.Entry, e => Assert.IsType<MedicationRequest>(e.Resource));
        Assert.Contains("_since=", both.Link("self"), StringComparison.Ordinal); // the self link says what was asked, body included
    }

    [Fact]
    public async Task A_POSTed_operation_refuses_a_body_that_is_not_Parameters_or_a_resource_parameter()
    {
        var patient = await PatientAsync();
        var notParameters = await _fhir.PostAsync($"Patient/{patient}/$everything", FhirHttp.Json(new Basic { Code = new CodeableConcept("http://example.org", "x") }));
        Assert.Equal(HttpStatusCode.BadRequest, notParameters.StatusCode);
        Assert.IsType<OperationOutcome>(await notParameters.ReadAs<OperationOutcome>());

        var body = new Parameters();
        body.Parameter.Add(new Parameters.ParameterComponent { Name = "_type", Resource = new Basic { Code = new CodeableConcept("http://example.org", "x") } });
        var resource = await _fhir.PostAsync($"Patient/{patient}/$everything", FhirHttp.Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, resource.StatusCode);
        Assert.Contains("_type", (await resource.ReadAs<OperationOutcome>()).Issue[0].Diagnostics, StringComparison.Ordinal);

        var unknown = await _fhir.PostAsync($"Patient/{patient}/$everything", Parameters(("colour", new FhirString("blue"))));
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
    }

    [Fact]
    public async Task Patient_context_is_served_by_POST()
    {
        var patient = await PatientAsync();
        var context = await PostAsync($"Patient/{patient}/$patient-context", Parameters());
        Assert.Contains(patient, context.Matches());
        Assert.Contains(context.Entry, e => e.Resource is MedicationRequest);
        var none = await PostAsync($"Patient/{patient}/$patient-context", Parameters(("_since", new Instant(DateTimeOffset.UtcNow.AddDays(1)))));
        Assert.Empty(none.Matches());
    }

    [Fact]
    public async Task Access_report_is_served_by_POST_with_the_same_rules()
    {
        var patient = await PatientAsync();
        var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        var response = await auditor.PostAsync($"Patient/{patient}/$access-report", Parameters(("_since", new Instant(DateTimeOffset.UtcNow.AddHours(-1)))));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var report = await response.ReadAs<Parameters>();
        Assert.Equal($"Patient/{patient}", ((ResourceReference)report.Parameter.First(p => p.Name == "patient").Value).Reference);
        Assert.Contains(report.Parameter, p => p.Name == "access");
        // Still only auditors and the patient themself.
        Assert.Equal(HttpStatusCode.Forbidden, (await _fhir.PostAsync($"Patient/{patient}/$access-report", new ByteArrayContent([]))).StatusCode);
    }

    [Fact]
    public async Task An_operation_that_affects_state_is_not_served_by_GET()
    {
        var response = await _fhir.GetAsync("DocumentReference/$import-cda");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal(["POST"], response.Content.Headers.Allow);
        Assert.Equal(OperationOutcome.IssueType.NotSupported, (await response.ReadAs<OperationOutcome>()).Issue[0].Code);
    }

    [Theory]
    [InlineData("GET", "$foo")]
    [InlineData("POST", "$foo")]
    [InlineData("GET", "Patient/$foo")]
    [InlineData("POST", "Patient/$foo")]
    [InlineData("GET", "Patient/abc/$foo")]
    [InlineData("POST", "Patient/abc/$foo")]
    [InlineData("DELETE", "Observation/abc/$foo")]
    public async Task An_unknown_operation_is_not_supported_rather_than_an_unknown_type_or_id(string method, string url)
    {
        var response = await _fhir.SendAsync(new HttpRequestMessage(new HttpMethod(method), url) { Content = method == "POST" ? FhirHttp.Json(new Parameters()) : null });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var issue = (await response.ReadAs<OperationOutcome>()).Issue.Single();
        Assert.Equal(OperationOutcome.IssueType.NotSupported, issue.Code);
        Assert.Contains("operation $foo is not supported", issue.Diagnostics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_operation_on_an_unknown_type_still_says_the_type_is_unknown()
    {
        var response = await _fhir.GetAsync("Sandwich/$everything");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("Sandwich", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_custom_operation_of_the_CapabilityStatement_resolves_to_its_shipped_OperationDefinition()
    {
        var statement = await (await _fhir.GetAsync("metadata")).ReadAs<CapabilityStatement>();
        var rest = statement.Rest.Single();
        var operations = rest.Resource.SelectMany(r => r.Operation.Select(o => (Type: r.Type, o.Name, o.Definition)))
            .Concat(rest.Operation.Select(o => (Type: (string)null, o.Name, o.Definition)))
            .Where(o => !o.Definition.StartsWith("http://hl7.org/fhir/", StringComparison.Ordinal)).ToList();
        Assert.Contains(operations, o => o.Name == "import-cda");
        Assert.Contains(operations, o => o.Name == "patient-context");
        Assert.Contains(operations, o => o.Name == "access-report");
        Assert.Contains(operations, o => o.Name == "set-release-date");
        foreach (var (type, name, definition) in operations.Where(o => o.Definition.StartsWith("https://fhirsortie.fr/", StringComparison.Ordinal)))
        {
            var found = await _fhir.SearchAsync($"OperationDefinition?url={Uri.EscapeDataString(definition)}");
            var operation = Assert.IsType<OperationDefinition>(Assert.Single(found.Entry).Resource);
            Assert.Equal(name, operation.Code);
            Assert.Equal(PublicationStatus.Active, operation.Status);
            Assert.Contains(type, operation.Resource.Select(r => r.ToString()));
            // GET only where the definition says the operation does not affect state (R4 operations.html).
            var path = operation.Instance == true ? $"{type}/unknown-id/${name}" : $"{type}/${name}";
            var get = await _fhir.GetAsync(path);
            if (operation.AffectsState == true) Assert.Equal(HttpStatusCode.MethodNotAllowed, get.StatusCode);
            else Assert.NotEqual(HttpStatusCode.MethodNotAllowed, get.StatusCode);
        }
    }

    [Fact]
    public async Task A_shipped_OperationDefinition_is_read_only()
    {
        var definition = await _fhir.GetAsync("OperationDefinition/Patient-patient-context");
        Assert.Equal(HttpStatusCode.OK, definition.StatusCode);
        var changed = await definition.ReadAs<OperationDefinition>();
        changed.Title = "changed";
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await _fhir.PutAsync("OperationDefinition/Patient-patient-context", FhirHttp.Json(changed))).StatusCode);
    }
}

public sealed class SqliteOperationsTests(SqliteGateway gateway) : OperationsTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresOperationsTests(PostgresGateway gateway) : OperationsTests(gateway), IClassFixture<PostgresGateway>;
