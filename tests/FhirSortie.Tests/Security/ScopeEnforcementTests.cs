using System.Collections.Concurrent;
using System.Net;
using System.Text;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Security;

/// <summary>
/// SMART scopes enforced on every interaction, as a client sees it: one table of (scopes, launch patient, request,
/// expected status), then the behaviours a status alone does not show (filtered searches, omitted includes,
/// transactions). Seeded data: patients pa (the launch patient) and pb, a laboratory and a vital-signs Observation
/// of pa, a laboratory Observation of pb, a Practitioner. Both dialects.
/// </summary>
public abstract class ScopeEnforcementTests(Gateway gateway)
{
    private const string Category = "http://terminology.hl7.org/CodeSystem/observation-category";
    private const string Lab = Category + "|laboratory";
    private const string Vital = Category + "|vital-signs";
    private const string Id = "urn:test:obs";

    private static readonly ConcurrentDictionary<Gateway, Lazy<Task>> Seeded = new();

    private Task SeedAsync() => Seeded.GetOrAdd(gateway, g => new Lazy<Task>(() => SeedOnceAsync(g.Fhir()))).Value;

    private static async Task SeedOnceAsync(HttpClient admin)
    {
        async Task Put(Resource r)
        {
            var response = await admin.PutAsync($"{r.TypeName}/{r.Id}", FhirHttp.Json(r));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }
        await Put(new Patient { Id = "pa", Active = true, Name = [new HumanName { Family = "A" }] });
        await Put(new Patient { Id = "pb", Active = true, Name = [new HumanName { Family = "B" }] });
        await Put(new Practitioner { Id = "pr1", Active = true });
        await Put(Obs("pa", "laboratory", "oa-lab"));
        await Put(Obs("pa", "vital-signs", "oa-vital"));
        await Put(Obs("pb", "laboratory", "ob-lab"));
        await Put(Obs("pa", "laboratory", "doomed-1"));
        await Put(Obs("pa", "laboratory", "doomed-2"));
    }

    private static Observation Obs(string patient, string category, string? id = null, string? identifier = null) => new()
    {
        Id = id,
        Identifier = identifier is null ? [] : [new Identifier(Id, identifier)],
        Status = ObservationStatus.Final,
        Category = [new CodeableConcept(Category, category)],
        Code = new CodeableConcept("http://loinc.org", "718-7"),
        Subject = new ResourceReference($"Patient/{patient}"),
    };

    private HttpClient As(string scopes, string? patient = null) =>
        // The USMP's own organisation, so that consent (issue 5) lets everything the test writes through: these tests are about scopes.
        gateway.Fhir(TestAuthenticationHandler.Describe("scoped-client", ActorKind.Usmp, "750000010", scopes, patient));

    private static HttpContent? Body(string? key, string url) => key switch
    {
        null => null,
        "form" => new FormUrlEncodedContent([new("name", "A")]),
        "patch" => new StringContent("""[{"op":"replace","path":"/status","value":"amended"}]""", Encoding.UTF8, "application/json-patch+json"),
        "patient" => FhirHttp.Json(new Patient { Active = true }),
        // Bodies of PUT [type]/[id] carry the URL's id; bodies of POST and conditional PUT carry none.
        _ => FhirHttp.Json(Obs(key.Split('-', 2)[0], key.Split('-', 2)[1], url.Contains('?') || url.Contains('$') || !url.Contains('/') ? null : url.Split('/')[^1])),
    };

    /// <summary>Each row: the caller's scopes (and launch patient), a request, and the status the client gets.</summary>
    [Theory]
    // read: r; other letters or types do not give it; v1 .read does; non-resource and malformed scopes grant nothing
    [InlineData("system/Patient.r", null, "GET", "Patient/pa", null, null, 200)]
    [InlineData("system/*.r", null, "GET", "Patient/pa", null, null, 200)]
    [InlineData("user/Patient.read", null, "GET", "Patient/pa", null, null, 200)]
    [InlineData("system/Patient.cuds", null, "GET", "Patient/pa", null, null, 403)]
    [InlineData("system/Observation.r", null, "GET", "Patient/pa", null, null, 403)]
    [InlineData("system/Patient.write", null, "GET", "Patient/pa", null, null, 403)]
    [InlineData("openid fhirUser launch/patient offline_access", null, "GET", "Patient/pa", null, null, 403)]
    [InlineData("system/Patient.sr system/Patient.x system/patient.r", null, "GET", "Patient/pa", null, null, 403)]
    // vread and instance history: r
    [InlineData("system/Patient.r", null, "GET", "Patient/pa/_history/1", null, null, 200)]
    [InlineData("system/Patient.s", null, "GET", "Patient/pa/_history/1", null, null, 403)]
    [InlineData("system/Patient.r", null, "GET", "Patient/pa/_history", null, null, 200)]
    [InlineData("system/Patient.s", null, "GET", "Patient/pa/_history", null, null, 403)]
    // type and system history: s
    [InlineData("system/Patient.s", null, "GET", "Patient/_history", null, null, 200)]
    [InlineData("system/Patient.r", null, "GET", "Patient/_history", null, null, 403)]
    [InlineData("system/Patient.s", null, "GET", "_history", null, null, 200)]
    [InlineData("system/*.r", null, "GET", "_history", null, null, 403)]
    // search GET and POST: s; chained parameters and _has need s on the types they go through
    [InlineData("system/Patient.s", null, "GET", "Patient?name=A", null, null, 200)]
    [InlineData("system/Patient.read", null, "GET", "Patient?name=A", null, null, 200)]
    [InlineData("system/Patient.r", null, "GET", "Patient?name=A", null, null, 403)]
    [InlineData("system/Patient.s", null, "POST", "Patient/_search", "form", null, 200)]
    [InlineData("system/Patient.r", null, "POST", "Patient/_search", "form", null, 403)]
    [InlineData("system/Observation.s", null, "GET", "Observation?subject:Patient.name=A", null, null, 403)]
    [InlineData("system/Observation.s system/Patient.s", null, "GET", "Observation?subject:Patient.name=A", null, null, 200)]
    [InlineData("system/Patient.s", null, "GET", "Patient?_has:Observation:subject:code=718-7", null, null, 403)]
    [InlineData("system/Patient.s system/Observation.s", null, "GET", "Patient?_has:Observation:subject:code=718-7", null, null, 200)]
    // system search: s on the listed types
    [InlineData("system/Patient.s", null, "GET", "?_type=Patient", null, null, 200)]
    [InlineData("system/Patient.s", null, "GET", "?_type=Patient,Observation", null, null, 403)]
    [InlineData("system/Patient.r", null, "GET", "?_type=Patient", null, null, 403)]
    // compartment search: s on the type; patient/ scopes only on the launch patient's compartment
    [InlineData("system/Observation.s", null, "GET", "Patient/pa/Observation", null, null, 200)]
    [InlineData("system/Observation.r", null, "GET", "Patient/pa/Observation", null, null, 403)]
    [InlineData("patient/Observation.rs", "pa", "GET", "Patient/pa/Observation", null, null, 200)]
    [InlineData("patient/Observation.rs", "pa", "GET", "Patient/pb/Observation", null, null, 403)]
    // create: c (v1 .write too); conditional create also needs s
    [InlineData("system/Observation.c", null, "POST", "Observation", "pa-laboratory", null, 201)]
    [InlineData("system/Observation.write", null, "POST", "Observation", "pa-laboratory", null, 201)]
    [InlineData("system/Observation.rs", null, "POST", "Observation", "pa-laboratory", null, 403)]
    [InlineData("system/Observation.c", null, "POST", "Observation", "pa-laboratory", "If-None-Exist: identifier=urn:test:obs|cc1", 403)]
    [InlineData("system/Observation.cs", null, "POST", "Observation", "pa-laboratory", "If-None-Exist: identifier=urn:test:obs|cc2", 201)]
    // update: u on an existing resource, c when the PUT creates; conditional update also needs s
    [InlineData("system/Observation.u", null, "PUT", "Observation/oa-lab", "pa-laboratory", null, 200)]
    [InlineData("system/Observation.c", null, "PUT", "Observation/oa-lab", "pa-laboratory", null, 403)]
    [InlineData("system/Observation.c", null, "PUT", "Observation/created-by-put", "pa-laboratory", null, 201)]
    [InlineData("system/Observation.u", null, "PUT", "Observation/not-created-by-put", "pa-laboratory", null, 403)]
    [InlineData("system/Observation.cu", null, "PUT", "Observation?identifier=urn:test:obs|cu1", "pa-laboratory", null, 403)]
    [InlineData("system/Observation.cus", null, "PUT", "Observation?identifier=urn:test:obs|cu2", "pa-laboratory", null, 201)]
    // patch: u; conditional patch also needs s
    [InlineData("system/Observation.u", null, "PATCH", "Observation/oa-lab", "patch", null, 200)]
    [InlineData("system/Observation.c", null, "PATCH", "Observation/oa-lab", "patch", null, 403)]
    [InlineData("system/Observation.u", null, "PATCH", "Observation?_id=oa-lab", "patch", null, 403)]
    [InlineData("system/Observation.us", null, "PATCH", "Observation?_id=oa-lab", "patch", null, 200)]
    // delete: d; conditional delete also needs s
    [InlineData("system/Observation.d", null, "DELETE", "Observation/doomed-1", null, null, 204)]
    [InlineData("system/Observation.rs", null, "DELETE", "Observation/oa-lab", null, null, 403)]
    [InlineData("system/Observation.d", null, "DELETE", "Observation?_id=doomed-2", null, null, 403)]
    [InlineData("system/Observation.ds", null, "DELETE", "Observation?_id=doomed-2", null, null, 204)]
    // $validate: c or u on the type
    [InlineData("system/Observation.c", null, "POST", "Observation/$validate", "pa-laboratory", null, 200)]
    [InlineData("system/Observation.u", null, "POST", "Observation/$validate", "pa-laboratory", null, 200)]
    [InlineData("system/Observation.rs", null, "POST", "Observation/$validate", "pa-laboratory", null, 403)]
    // metadata: anyone
    [InlineData("", null, "GET", "metadata", null, null, 200)]
    // patient/ scopes: the launch patient's compartment only, and nothing without a launch patient
    [InlineData("patient/*.rs", "pa", "GET", "Patient/pa", null, null, 200)]
    [InlineData("patient/*.rs", "pa", "GET", "Patient/pb", null, null, 403)]
    [InlineData("patient/*.rs", "pa", "GET", "Observation/oa-lab", null, null, 200)]
    [InlineData("patient/*.rs", "pa", "GET", "Observation/ob-lab", null, null, 403)]
    [InlineData("patient/*.rs", "pa", "GET", "Observation/oa-lab/_history/1", null, null, 200)]
    [InlineData("patient/*.rs", "pa", "GET", "Observation/ob-lab/_history", null, null, 403)]
    [InlineData("patient/*.rs", "pa", "GET", "Practitioner/pr1", null, null, 403)]
    [InlineData("patient/*.rs", null, "GET", "Patient/pa", null, null, 403)]
    [InlineData("patient/*.rs", null, "GET", "Patient?name=A", null, null, 403)]
    [InlineData("patient/Observation.c", "pa", "POST", "Observation", "pa-laboratory", null, 201)]
    [InlineData("patient/Observation.c", "pa", "POST", "Observation", "pb-laboratory", null, 403)]
    [InlineData("patient/Observation.cu", "pa", "PUT", "Observation/oa-vital", "pa-vital-signs", null, 200)]
    [InlineData("patient/Observation.cu", "pa", "PUT", "Observation/ob-lab", "pa-laboratory", null, 403)] // another patient's resource
    [InlineData("patient/Observation.cu", "pa", "PUT", "Observation/oa-vital", "pb-vital-signs", null, 403)] // moved to another patient
    [InlineData("patient/Observation.d", "pa", "DELETE", "Observation/ob-lab", null, null, 403)]
    [InlineData("patient/Patient.c", "pa", "POST", "Patient", "patient", null, 403)] // a new patient is not the launch patient
    // granular restriction: reads match the restriction; searches must carry it
    [InlineData("patient/Observation.rs?category=" + Lab, "pa", "GET", "Observation/oa-lab", null, null, 200)]
    [InlineData("patient/Observation.rs?category=" + Lab, "pa", "GET", "Observation/oa-vital", null, null, 403)]
    [InlineData("patient/Observation.rs?category=" + Lab, "pa", "GET", "Observation?category=" + Lab, null, null, 200)]
    [InlineData("patient/Observation.rs?category=" + Lab, "pa", "GET", "Observation", null, null, 403)]
    [InlineData("patient/Observation.rs?category=" + Lab, "pa", "GET", "Observation?category=" + Vital, null, null, 403)]
    [InlineData("system/Observation.rs?category=laboratory", null, "GET", "Observation/oa-lab", null, null, 200)]
    [InlineData("system/Observation.rs?category=laboratory", null, "GET", "Observation/oa-vital", null, null, 403)]
    [InlineData("system/Observation.cs?category=" + Lab, null, "POST", "Observation", "pa-vital-signs", null, 403)]
    public async Task Scope_table(string scopes, string? patient, string method, string url, string? body, string? header, int expected)
    {
        await SeedAsync();
        var request = new HttpRequestMessage(new HttpMethod(method), url) { Content = Body(body, url) };
        if (header is not null)
        {
            var colon = header.IndexOf(':');
            request.Headers.TryAddWithoutValidation(header[..colon], header[(colon + 1)..].Trim());
        }
        var response = await As(scopes, patient).SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == (int)response.StatusCode, $"{method} {url} with '{scopes}': {(int)response.StatusCode} {text}");
        if (expected == 403)
        {
            var outcome = await response.ReadAs<OperationOutcome>();
            Assert.Equal(OperationOutcome.IssueType.Forbidden, outcome.Issue[0].Code);
            Assert.False(string.IsNullOrEmpty(outcome.Issue[0].Diagnostics));
        }
    }

    [Fact]
    public async Task Request_without_a_caller_gets_401_with_WWW_Authenticate_Bearer_and_an_OperationOutcome()
    {
        // Authenticated by the test scheme, but without the client_id claim the Caller contract requires.
        var anonymous = gateway.Fhir($"{Caller.Claims.ActorKind}=Usmp;{Caller.Claims.Scope}=system/*.cruds");
        var response = await anonymous.GetAsync("Patient");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Equal(OperationOutcome.IssueType.Login, outcome.Issue[0].Code);

        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("metadata")).StatusCode);
    }

    [Fact]
    public async Task Forbidden_answer_names_the_missing_scope_without_patient_data()
    {
        await SeedAsync();
        var response = await As("system/Patient.r").GetAsync("Observation/oa-lab");
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains("Observation", outcome.Issue[0].Diagnostics);
        Assert.Contains("'r'", outcome.Issue[0].Diagnostics);
    }

    [Fact]
    public async Task Patient_scope_search_returns_only_the_launch_patients_resources()
    {
        await SeedAsync();
        var client = As("patient/Observation.rs", "pa");
        var bundle = await (await client.GetAsync("Observation?_count=100")).ReadAs<Bundle>();
        var subjects = bundle.Entry.Select(e => ((Observation)e.Resource!).Subject!.Reference).Distinct().ToList();
        Assert.Equal(["Patient/pa"], subjects);
        Assert.Contains(bundle.Entry, e => e.Resource!.Id == "oa-lab");

        var other = await (await client.GetAsync("Observation?subject=Patient/pb")).ReadAs<Bundle>();
        Assert.Empty(other.Entry);
        Assert.Equal(0, other.Total);
    }

    [Fact]
    public async Task Restricted_scope_search_carrying_the_restriction_returns_only_matching_resources()
    {
        await SeedAsync();
        var bundle = await (await As($"patient/Observation.rs?category={Lab}", "pa").GetAsync($"Observation?category={Lab}")).ReadAs<Bundle>();
        Assert.NotEmpty(bundle.Entry);
        Assert.All(bundle.Entry, e =>
        {
            var obs = (Observation)e.Resource!;
            Assert.Equal("Patient/pa", obs.Subject!.Reference);
            Assert.Equal("laboratory", obs.Category[0].Coding[0].Code);
        });
    }

    [Fact]
    public async Task Included_resources_of_a_type_without_search_scope_are_omitted_with_a_warning()
    {
        await SeedAsync();
        var url = "Observation?_id=oa-lab&_include=Observation:subject:Patient";
        var without = await (await As("system/Observation.s").GetAsync(url)).ReadAs<Bundle>();
        Assert.Equal(["oa-lab"], without.Entry.Where(e => e.Search?.Mode == Bundle.SearchEntryMode.Match).Select(e => e.Resource!.Id));
        Assert.DoesNotContain(without.Entry, e => e.Resource is Patient);
        var warning = Assert.Single(without.Entry, e => e.Search?.Mode == Bundle.SearchEntryMode.Outcome);
        var outcome = Assert.IsType<OperationOutcome>(warning.Resource);
        Assert.Equal(OperationOutcome.IssueSeverity.Warning, outcome.Issue[0].Severity);
        Assert.Contains("Patient", outcome.Issue[0].Diagnostics);

        var with = await (await As("system/Observation.s system/Patient.s").GetAsync(url)).ReadAs<Bundle>();
        Assert.Contains(with.Entry, e => e.Resource is Patient { Id: "pa" } && e.Search?.Mode == Bundle.SearchEntryMode.Include);
        Assert.DoesNotContain(with.Entry, e => e.Search?.Mode == Bundle.SearchEntryMode.Outcome);
    }

    [Fact]
    public async Task System_search_shows_only_types_the_caller_may_search()
    {
        await SeedAsync();
        var bundle = await (await As("system/Patient.s").GetAsync("?_count=100")).ReadAs<Bundle>();
        Assert.NotEmpty(bundle.Entry);
        Assert.All(bundle.Entry, e => Assert.IsType<Patient>(e.Resource));

        var history = await (await As("system/Patient.s").GetAsync("_history?_count=100")).ReadAs<Bundle>();
        Assert.NotEmpty(history.Entry);
        Assert.All(history.Entry, e => Assert.StartsWith("Patient", e.Request!.Url));
    }

    [Fact]
    public async Task Transaction_with_one_denied_entry_is_403_naming_it_and_writes_nothing()
    {
        await SeedAsync();
        var marker = Guid.NewGuid().ToString("N");
        var bundle = new Bundle
        {
            Type = Bundle.BundleType.Transaction,
            Entry =
            [
                new() { FullUrl = "urn:uuid:" + Guid.NewGuid(), Resource = new Patient { Identifier = [new Identifier(Id, marker)] }, Request = new() { Method = Bundle.HTTPVerb.POST, Url = "Patient" } },
                new() { Resource = Obs("pa", "laboratory", identifier: marker), Request = new() { Method = Bundle.HTTPVerb.POST, Url = "Observation" } },
            ],
        };
        var response = await As("system/Patient.cr").PostAsync("", FhirHttp.Json(bundle));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        Assert.Contains("Bundle.entry[1]", outcome.Issue[0].Expression);

        var found = await (await gateway.Fhir().GetAsync($"Patient?identifier={Id}|{marker}")).ReadAs<Bundle>();
        Assert.Empty(found.Entry);
    }

    [Fact]
    public async Task Transaction_writing_into_another_patients_compartment_is_403_and_writes_nothing()
    {
        await SeedAsync();
        var marker = Guid.NewGuid().ToString("N");
        var bundle = new Bundle
        {
            Type = Bundle.BundleType.Transaction,
            Entry =
            [
                new() { Resource = Obs("pa", "laboratory", identifier: marker), Request = new() { Method = Bundle.HTTPVerb.POST, Url = "Observation" } },
                new() { Resource = Obs("pb", "laboratory", identifier: marker), Request = new() { Method = Bundle.HTTPVerb.POST, Url = "Observation" } },
            ],
        };
        var response = await As("patient/Observation.crs", "pa").PostAsync("", FhirHttp.Json(bundle));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("Bundle.entry[1]", (await response.ReadAs<OperationOutcome>()).Issue[0].Expression);

        var found = await (await gateway.Fhir().GetAsync($"Observation?identifier={Id}|{marker}")).ReadAs<Bundle>();
        Assert.Empty(found.Entry);
    }

    [Fact]
    public async Task Batch_with_one_denied_entry_answers_403_for_it_and_runs_the_others()
    {
        await SeedAsync();
        var bundle = new Bundle
        {
            Type = Bundle.BundleType.Batch,
            Entry =
            [
                new() { Resource = new Patient { Active = true }, Request = new() { Method = Bundle.HTTPVerb.POST, Url = "Patient" } },
                new() { Resource = Obs("pa", "laboratory"), Request = new() { Method = Bundle.HTTPVerb.POST, Url = "Observation" } },
                new() { Request = new() { Method = Bundle.HTTPVerb.GET, Url = "Patient/pa" } },
                new() { Request = new() { Method = Bundle.HTTPVerb.GET, Url = "Observation/oa-lab" } },
                new() { Request = new() { Method = Bundle.HTTPVerb.GET, Url = "Observation?_id=oa-lab" } },
            ],
        };
        var response = await As("system/Patient.cr").PostAsync("", FhirHttp.Json(bundle));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await response.ReadAs<Bundle>();
        Assert.Equal(["201 Created", "403 Forbidden", "200 OK", "403 Forbidden", "403 Forbidden"], answer.Entry.Select(e => e.Response!.Status));
        Assert.Equal(OperationOutcome.IssueType.Forbidden, ((OperationOutcome)answer.Entry[1].Response!.Outcome!).Issue[0].Code);
    }

    [Fact]
    public async Task Conditional_reference_in_a_transaction_needs_search_on_the_referenced_type()
    {
        await SeedAsync();
        Bundle Transaction() => new()
        {
            Type = Bundle.BundleType.Transaction,
            Entry =
            [
                new()
                {
                    Resource = new Observation
                    {
                        Status = ObservationStatus.Final,
                        Code = new CodeableConcept("http://loinc.org", "718-7"),
                        Subject = new ResourceReference("Patient?_id=pa"),
                    },
                    Request = new() { Method = Bundle.HTTPVerb.POST, Url = "Observation" },
                },
            ],
        };
        var denied = await As("system/Observation.cs").PostAsync("", FhirHttp.Json(Transaction()));
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("Patient", (await denied.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);

        var permitted = await As("system/Observation.c system/Patient.s").PostAsync("", FhirHttp.Json(Transaction()));
        Assert.Equal(HttpStatusCode.OK, permitted.StatusCode);
    }

    [Fact]
    public async Task Conditional_create_does_not_hand_back_another_patients_match()
    {
        await SeedAsync();
        var marker = Guid.NewGuid().ToString("N");
        var created = await gateway.Fhir().PostAsync("Observation", FhirHttp.Json(Obs("pb", "laboratory", identifier: marker)));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        var request = new HttpRequestMessage(HttpMethod.Post, "Observation") { Content = FhirHttp.Json(Obs("pa", "laboratory", identifier: marker)) };
        request.Headers.TryAddWithoutValidation("If-None-Exist", $"identifier={Id}|{marker}");
        var response = await As("patient/Observation.crs", "pa").SendAsync(request);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }
}

public sealed class SqliteScopeEnforcementTests(SqliteGateway gateway) : ScopeEnforcementTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresScopeEnforcementTests(PostgresGateway gateway) : ScopeEnforcementTests(gateway), IClassFixture<PostgresGateway>;
