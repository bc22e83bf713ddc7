using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Mapping;

/// <summary>
/// Plain R4 from USMP software is brought to the national shapes on write, and the writer is told what changed:
/// with Prefer: return=OperationOutcome on a single write, in entry.response.outcome in a transaction.
/// </summary>
public abstract class NormalisationTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private async Task<(HttpResponseMessage Response, OperationOutcome Outcome)> CreateForOutcomeAsync(Resource resource)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, resource.TypeName) { Content = FhirHttp.Json(resource) };
        request.Headers.Add("Prefer", "return=OperationOutcome");
        var response = await _fhir.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (response, await response.ReadAs<OperationOutcome>());
    }

    private async Task<T> ReadCreatedAsync<T>(HttpResponseMessage created) where T : Resource =>
        await (await _fhir.GetAsync(created.Headers.Location!.AbsolutePath.Replace("/fhir/", "", StringComparison.Ordinal).Split("/_history")[0])).ReadAs<T>();

    [Fact]
    public async Task Organization_with_its_FINESS_under_a_bare_idNatSt_OID_gets_the_national_identifiers_beside_what_was_sent()
    {
        var organization = new Organization { Name = "CSAPA (exemple)", Identifier = [new Identifier("1.2.250.1.71.4.2.2", "750012346")] };
        var (response, outcome) = await CreateForOutcomeAsync(organization);

        Assert.All(outcome.Issue, i => Assert.Equal(OperationOutcome.IssueSeverity.Information, i.Severity));
        Assert.Equal(["Organization.identifier[1]", "Organization.identifier[2]"], outcome.Issue.SelectMany(i => i.Expression));
        Assert.DoesNotContain(outcome.Issue, i => i.Diagnostics!.Contains("750012346")); // values are never echoed
        var stored = await ReadCreatedAsync<Organization>(response);
        Assert.Equal([("1.2.250.1.71.4.2.2", "750012346"), ("urn:oid:1.2.250.1.71.4.2.2", "750012346"), ("https://finess.esante.gouv.fr", "750012346")],
            stored.Identifier.Select(i => (i.System, i.Value)));
    }

    [Fact]
    public async Task Organization_with_a_FINESS_gets_its_idNatSt()
    {
        var organization = new Organization { Name = "CSAPA (exemple)", Identifier = [new Identifier("https://finess.esante.gouv.fr", "750012346")] };
        var (response, outcome) = await CreateForOutcomeAsync(organization);
        Assert.Equal("Organization.identifier[1]", Assert.Single(Assert.Single(outcome.Issue).Expression));
        var stored = await ReadCreatedAsync<Organization>(response);
        Assert.Equal(("urn:oid:1.2.250.1.71.4.2.2", "1750012346"), (stored.Identifier[1].System, stored.Identifier[1].Value));
    }

    [Fact]
    public async Task FINESS_with_a_wrong_key_is_not_spread_to_an_idNatSt()
    {
        var organization = new Organization { Name = "CSAPA (exemple)", Identifier = [new Identifier("https://finess.esante.gouv.fr", "750012347")] };
        var (response, outcome) = await CreateForOutcomeAsync(organization);
        Assert.Contains("succeeded", Assert.Single(outcome.Issue).Diagnostics);
        Assert.Single((await ReadCreatedAsync<Organization>(response)).Identifier);
    }

    [Fact]
    public async Task Practitioner_with_an_http_RPPS_url_gets_the_national_url_and_the_idNatPs()
    {
        var practitioner = new Practitioner { Identifier = [new Identifier("http://rpps.esante.gouv.fr/", "10001234565")] };
        var (response, outcome) = await CreateForOutcomeAsync(practitioner);
        Assert.Equal(2, outcome.Issue.Count);
        var stored = await ReadCreatedAsync<Practitioner>(response);
        Assert.Equal([("http://rpps.esante.gouv.fr/", "10001234565"), ("https://rpps.esante.gouv.fr", "10001234565"), ("urn:oid:1.2.250.1.71.4.2.1", "810001234565")],
            stored.Identifier.Select(i => (i.System, i.Value)));
    }

    [Fact]
    public async Task Locally_configured_identifier_system_is_mapped_to_the_national_one()
    {
        var practitioner = new Practitioner { Identifier = [new Identifier(MappingSettings.LocalRppsSystem, "10001234565")] };
        var (response, outcome) = await CreateForOutcomeAsync(practitioner);
        Assert.Contains(outcome.Issue, i => i.Expression.Contains("Practitioner.identifier[1]") && i.Diagnostics!.Contains(MappingSettings.LocalRppsSystem));
        var stored = await ReadCreatedAsync<Practitioner>(response);
        Assert.Equal("https://rpps.esante.gouv.fr", stored.Identifier[1].System);
    }

    [Fact]
    public async Task Patient_INS_given_as_a_bare_OID_is_findable_under_urn_oid_and_under_what_was_sent()
    {
        var patient = new Patient { Identifier = [new Identifier("1.2.250.1.213.1.4.8", "180027512345676")] };
        var (response, outcome) = await CreateForOutcomeAsync(patient);
        Assert.Equal("Patient.identifier[1]", Assert.Single(Assert.Single(outcome.Issue).Expression));
        var id = (await ReadCreatedAsync<Patient>(response)).Id;
        foreach (var system in new[] { "urn:oid:1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.8" })
        {
            var found = await (await _fhir.GetAsync($"Patient?_id={id}&identifier={system}|180027512345676")).ReadAs<Bundle>();
            Assert.Single(found.Entry);
        }
    }

    [Fact]
    public async Task Conditional_create_with_the_senders_own_identifier_still_matches_after_normalisation()
    {
        // A bare idNatSt OID as system, and a value of its own so that other tests cannot match it.
        var value = "1" + Random.Shared.Next(10_000_000, 99_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var organization = new Organization { Name = "USMP (exemple)", Identifier = [new Identifier("1.2.250.1.71.4.2.2", value)] };
        async Task<HttpResponseMessage> PostAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "Organization") { Content = FhirHttp.Json(organization) };
            request.Headers.Add("If-None-Exist", $"identifier=1.2.250.1.71.4.2.2|{value}");
            return await _fhir.SendAsync(request);
        }
        var first = await PostAsync();
        var second = await PostAsync();
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal((await first.ReadAs<Organization>()).Id, (await second.ReadAs<Organization>()).Id);
    }

    [Fact]
    public async Task Exit_prescription_with_a_local_medicine_code_gets_its_ATC_code_through_the_ConceptMap_and_then_conforms()
    {
        var prescription = ExitPrescription(new Coding("https://logiciel-usmp.example.fr/CodeSystem/livret-therapeutique", "BUP-SL-8", "Buprénorphine 8 mg"));
        var (response, outcome) = await CreateForOutcomeAsync(prescription);
        var issue = Assert.Single(outcome.Issue);
        Assert.Contains("usmp-local-medications-atc", issue.Diagnostics);
        var stored = await ReadCreatedAsync<MedicationRequest>(response);
        var codings = ((CodeableConcept)stored.Medication).Coding;
        Assert.Equal(["BUP-SL-8", "N07BC01"], codings.Select(c => c.Code));
        Assert.Equal("http://www.whocc.no/atc", codings[1].System);
    }

    [Fact]
    public async Task Exit_prescription_with_an_unmapped_local_code_is_still_refused()
    {
        var prescription = ExitPrescription(new Coding("https://logiciel-usmp.example.fr/CodeSystem/livret-therapeutique", "PREP-MAG"));
        var response = await _fhir.PostAsync("MedicationRequest", FhirHttp.Json(prescription));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains((await response.ReadAs<OperationOutcome>()).Issue, i => i.Diagnostics!.StartsWith("fs-exit-1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ATC_given_as_an_OID_system_gets_the_ATC_uri()
    {
        var prescription = ExitPrescription(new Coding("urn:oid:2.16.840.1.113883.6.73", "N07BC02"));
        var (response, outcome) = await CreateForOutcomeAsync(prescription);
        Assert.Equal("MedicationRequest.medicationCodeableConcept.coding[0].system", Assert.Single(Assert.Single(outcome.Issue).Expression));
        Assert.Equal("http://www.whocc.no/atc", ((CodeableConcept)(await ReadCreatedAsync<MedicationRequest>(response)).Medication).Coding[0].System);
    }

    [Fact]
    public async Task Resource_already_in_the_national_shape_is_stored_as_sent()
    {
        var organization = new Organization { Name = "USMP (exemple)", Identifier = [new Identifier("https://finess.esante.gouv.fr", "750012346"), new Identifier("urn:oid:1.2.250.1.71.4.2.2", "1750012346")] };
        var (_, outcome) = await CreateForOutcomeAsync(organization);
        var issue = Assert.Single(outcome.Issue);
        Assert.Equal(OperationOutcome.IssueType.Informational, issue.Code);
        Assert.Contains("succeeded", issue.Diagnostics);
    }

    [Fact]
    public async Task Transaction_entries_carry_what_was_normalised_in_their_outcome()
    {
        var bundle = new Bundle
        {
            Type = Bundle.BundleType.Transaction,
            Entry =
            [
                new Bundle.EntryComponent
                {
                    Resource = new Patient { Identifier = [new Identifier("URN:OID:1.2.250.1.213.1.4.8", "180027512345676")] },
                    Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Patient" },
                },
                new Bundle.EntryComponent
                {
                    Resource = new Organization { Name = "USMP (exemple)", Identifier = [new Identifier("https://finess.esante.gouv.fr", "750012346"), new Identifier("urn:oid:1.2.250.1.71.4.2.2", "1750012346")] },
                    Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Organization" },
                },
            ],
        };
        var response = await (await _fhir.PostAsync("", FhirHttp.Json(bundle))).ReadAs<Bundle>();
        var patientOutcome = (OperationOutcome)response.Entry[0].Response!.Outcome!;
        Assert.Equal("Patient.identifier[1]", Assert.Single(Assert.Single(patientOutcome.Issue).Expression));
        Assert.Equal("urn:oid:1.2.250.1.213.1.4.8", ((Patient)response.Entry[0].Resource!).Identifier[1].System);
        Assert.Null(response.Entry[1].Response!.Outcome); // nothing to say
    }

    private static MedicationRequest ExitPrescription(Coding medicine) => new()
    {
        Meta = new Meta { Profile = ["https://fhirsortie.fr/fhir/StructureDefinition/ExitPrescription"] },
        Status = MedicationRequest.MedicationrequestStatus.Active,
        Intent = MedicationRequest.MedicationRequestIntent.Order,
        Medication = new CodeableConcept { Coding = [medicine] },
        Subject = new ResourceReference("Patient/example"),
        AuthoredOn = "2026-11-20",
        Requester = new ResourceReference("Practitioner/example"),
        DosageInstruction = [new Dosage { Text = "8 mg par jour" }],
        DispenseRequest = new MedicationRequest.DispenseRequestComponent { ValidityPeriod = new Period { Start = "2026-11-20" } },
    };
}

public sealed class SqliteNormalisationTests(SqliteMappingGateway gateway) : NormalisationTests(gateway), IClassFixture<SqliteMappingGateway>;

public sealed class PostgresNormalisationTests(PostgresMappingGateway gateway) : NormalisationTests(gateway), IClassFixture<PostgresMappingGateway>;
