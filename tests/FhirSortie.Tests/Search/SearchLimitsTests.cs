using System.Net;
using FhirSortie.Server.Consents;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Search;

/// <summary>
/// Input that made the databases fail (500s found by reviewing the input paths): year 9999 dates, comma lists past
/// SQLite's 500 compound terms, chains that multiply sub-queries through every type, a Consent whose provisions multiply
/// into 10^8 grants. Each is now stored as it should be, or refused with a 4xx saying what to change.
/// </summary>
public abstract class SearchLimitsTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    [Fact]
    public async Task Year_9999_dates_are_stored_and_found()
    {
        // "9999-12-31" is a common "no end" date: its day has no next day in .NET.
        var family = $"Far{Guid.NewGuid():N}";
        var created = await _fhir.PostAsync("Patient", FhirHttp.Json($"{{\"resourceType\":\"Patient\",\"name\":[{{\"family\":\"{family}\"}}],\"birthDate\":\"9999-12-31\"}}"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        foreach (var date in new[] { "9999", "9999-12", "9999-12-31", "ge9999-12-31", "gt9999-12-30" })
        {
            var found = await (await _fhir.GetAsync($"Patient?family={family}&birthdate={date}")).ReadAs<Bundle>();
            Assert.True(found.Total == 1, date);
        }
        var later = await _fhir.GetAsync("Patient?birthdate=gt9999-12-31T23:59:59Z");
        Assert.Equal(HttpStatusCode.OK, later.StatusCode);
        var period = await _fhir.PostAsync("Encounter", FhirHttp.Json("{\"resourceType\":\"Encounter\",\"status\":\"planned\",\"class\":{\"code\":\"AMB\"},\"period\":{\"start\":\"2026-11-23\",\"end\":\"9999-12-31T23:59:59+01:00\"}}"));
        Assert.Equal(HttpStatusCode.Created, period.StatusCode);
    }

    [Fact]
    public async Task Long_values_are_stored_and_long_strings_found_by_their_start()
    {
        // PostgreSQL refuses a b-tree row past about 2,700 bytes once compressed: random text was a 500 there.
        static string Random(int guids) => string.Concat(Enumerable.Range(0, guids).Select(_ => Guid.NewGuid().ToString("N")));
        var description = $"Lettre{Random(1)} " + Random(120);
        var created = await _fhir.PostAsync("DocumentReference", FhirHttp.Json(new DocumentReference
        {
            Status = DocumentReferenceStatus.Current,
            Description = description,
            Identifier = [new Identifier("urn:test", Random(100))],
            Content = [new DocumentReference.ContentComponent { Attachment = new Attachment { ContentType = "text/plain", Url = "http://example.org/" + Random(100) } }],
        }));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var id = (await created.ReadAs<DocumentReference>()).Id;
        foreach (var search in new[] { description[..40], description[..1000], description })
        {
            var found = await (await _fhir.PostAsync("DocumentReference/_search", new FormUrlEncodedContent([new("description", search)]))).ReadAs<Bundle>();
            Assert.Equal(id, Assert.Single(found.Entry).Resource!.Id);
        }
    }

    [Fact]
    public async Task A_parameter_takes_up_to_100_values()
    {
        string Ids(int n) => string.Join(',', Enumerable.Range(0, n).Select(i => $"urn:test|{i}"));
        Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient?identifier={Ids(100)}")).StatusCode);
        foreach (var search in new[] { $"Patient?identifier={Ids(501)}", $"Patient?_id={string.Join(',', Enumerable.Range(0, 101))}" })
        {
            var response = await _fhir.GetAsync(search);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal(OperationOutcome.IssueType.TooCostly, (await response.ReadAs<OperationOutcome>()).Issue[0].Code);
        }
        // A Subscription's criteria are checked by the same search before it is stored.
        var subscription = new Subscription
        {
            Status = Subscription.SubscriptionStatus.Requested, Reason = "limits", Criteria = $"Observation?code={Ids(101)}",
            Channel = new Subscription.ChannelComponent { Type = Subscription.SubscriptionChannelType.RestHook, Endpoint = "http://127.0.0.1:9/notify", Payload = "application/fhir+json" },
        };
        Assert.Equal(HttpStatusCode.BadRequest, (await _fhir.PostAsync("Subscription", FhirHttp.Json(subscription))).StatusCode);
    }

    [Fact]
    public async Task A_chain_that_multiplies_through_every_type_is_400()
    {
        // target may be any type: each _has step below it runs once per type, so two steps are 140^2 sub-queries.
        var response = await _fhir.GetAsync("Provenance?target._has:Provenance:target:target._has:Provenance:target:_id=x");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(OperationOutcome.IssueType.TooCostly, (await response.ReadAs<OperationOutcome>()).Issue[0].Code);
        Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync("Provenance?target._has:Provenance:target:_id=x")).StatusCode);
    }

    [Fact]
    public async Task A_consent_multiplying_into_too_many_grants_is_422()
    {
        var patient = await (await _fhir.PostAsync("Patient", FhirHttp.Json("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Grants\"}]}"))).ReadAs<Patient>();
        IEnumerable<int> Hundred() => Enumerable.Range(0, 100);
        var consent = new Hl7.Fhir.Model.Consent
        {
            Status = Hl7.Fhir.Model.Consent.ConsentState.Active,
            Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            Category = [new CodeableConcept("http://loinc.org", "59284-0")],
            Patient = new ResourceReference($"Patient/{patient.Id}"),
            Provision = new Hl7.Fhir.Model.Consent.provisionComponent
            {
                Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit,
                Actor = [.. Hundred().Select(i => new Hl7.Fhir.Model.Consent.provisionActorComponent
                {
                    Role = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
                    Reference = new ResourceReference { Identifier = new Identifier(ConsentGrants.Finess, $"7500{i:D5}") },
                })],
                Class = [.. Hl7.Fhir.Model.ModelInfo.SupportedResources.Take(100).Select(type => new Coding("http://hl7.org/fhir/resource-types", type))],
                Purpose = [.. Hundred().Select(i => new Coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", $"P{i}"))],
                SecurityLabel = [.. Hundred().Select(i => new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", $"L{i}"))],
            },
        };
        var response = await _fhir.PostAsync("Consent", FhirHttp.Json(consent));
        Assert.True(response.StatusCode == HttpStatusCode.UnprocessableEntity, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        Assert.Contains("grants", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
    }
}

public sealed class SqliteSearchLimitsTests(SqliteGateway gateway) : SearchLimitsTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresSearchLimitsTests(PostgresGateway gateway) : SearchLimitsTests(gateway), IClassFixture<PostgresGateway>;
