using Microsoft.Extensions.DependencyInjection;
using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// Consent applied inside queries over HTTP: totals and pages count only what the caller may see, includes do not
/// leak, withdrawal is effective on the next request, break-the-glass widens reads and searches, justice actors never
/// get clinical content, batch GET entries and histories hide like reads.
/// </summary>
public abstract class ConsentSearchTests(Gateway gateway)
{
    private const string CsapaFiness = "750000028";
    private readonly HttpClient _usmp = gateway.Fhir();

    private HttpClient Csapa(string client = "csapa-search") => gateway.Fhir(TestAuthenticationHandler.Describe(client, ActorKind.Csapa, CsapaFiness, "system/*.rs"));

    private HttpClient Justice() => gateway.Fhir(TestAuthenticationHandler.Describe("spip-search", ActorKind.Justice, "750000077", "system/*.rs"));

    /// <summary>A patient with 2 plain and 3 ETH-labelled MedicationRequests, a Condition and two DocumentReferences (an attestation and a letter), all by the USMP.</summary>
    private async Task<(string Patient, List<string> Plain, List<string> Eth, string Condition, string Attestation, string Letter)> SetUpAsync()
    {
        var patient = (await _usmp.CreateAsync(Patient(NewRun(), "180029900000003", "Filtre"))).Id!;
        var plain = new List<string>();
        var eth = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var request = new MedicationRequest
            {
                Status = MedicationRequest.MedicationrequestStatus.Active, Intent = MedicationRequest.MedicationRequestIntent.Order,
                Medication = new CodeableConcept { Text = "medication " + i }, Subject = new ResourceReference("Patient/" + patient),
            };
            if (i >= 2) request.Meta = new Meta { Security = [new Coding(SecurityLabels.ActCode, "ETH")] };
            (i >= 2 ? eth : plain).Add((await _usmp.CreateAsync(request)).Id!);
        }
        var condition = (await _usmp.CreateAsync(new Condition { Code = new CodeableConcept { Text = "condition" }, Subject = new ResourceReference("Patient/" + patient) })).Id!;
        var attestation = (await _usmp.CreateAsync(Document(patient, new CodeableConcept(AccessRules.DocumentTypes, AccessRules.AttendanceAttestationCode)))).Id!;
        var letter = (await _usmp.CreateAsync(Document(patient, new CodeableConcept("http://loinc.org", "34133-9")))).Id!;
        return (patient, plain, eth, condition, attestation, letter);
    }

    private static DocumentReference Document(string patient, CodeableConcept type) => new()
    {
        Status = DocumentReferenceStatus.Current,
        Type = type,
        // The access rules recognise an attestation by its category (profile AttendanceAttestation).
        Category = type.Coding[0].Code == AccessRules.AttendanceAttestationCode ? [new CodeableConcept(AccessRules.DocumentCategories, AccessRules.AttendanceAttestationCategory)] : [],
        Subject = new ResourceReference("Patient/" + patient),
        Content = [new DocumentReference.ContentComponent { Attachment = new Attachment { ContentType = "text/plain", Url = "urn:uuid:" + Guid.NewGuid() } }],
    };

    /// <summary>An active Consent permitting the CSAPA to see MedicationRequests, masking the sensitivity labels.</summary>
    private static Hl7.Fhir.Model.Consent PermitCsapa(string patient, params string[] classes) =>
        TestConsents.PermitMasking(patient, CsapaFiness, classes.Length == 0 ? ["MedicationRequest"] : classes);

    [Fact]
    public async Task Totals_and_pages_count_only_the_permitted_resources()
    {
        var set = await SetUpAsync();
        await _usmp.CreateAsync(PermitCsapa(set.Patient));
        var csapa = Csapa();

        var first = await csapa.SearchAsync($"MedicationRequest?subject=Patient/{set.Patient}&_count=1&_total=accurate");
        Assert.Equal(2, first.Total);
        var seen = first.Matches();
        var next = first.Link("next");
        Assert.NotNull(next);
        var second = await csapa.SearchAsync(SearchHttp.Relative(next!));
        seen.AddRange(second.Matches());
        Assert.Null(second.Link("next"));
        Assert.Equal(set.Plain.Order(), seen.Order());

        // The USMP wrote them all: it sees all five.
        Assert.Equal(5, (await _usmp.SearchAsync($"MedicationRequest?subject=Patient/{set.Patient}&_total=accurate")).Total);
    }

    [Fact]
    public async Task Includes_and_revincludes_never_show_hidden_resources()
    {
        var set = await SetUpAsync();
        await _usmp.CreateAsync(PermitCsapa(set.Patient));
        var csapa = Csapa();

        // The consent does not cover the Patient resource itself: the include is omitted.
        var included = await csapa.SearchAsync($"MedicationRequest?subject=Patient/{set.Patient}&_include=MedicationRequest:subject");
        Assert.Empty(included.Included());
        Assert.Equal(set.Plain.Order(), included.Matches().Order());

        // Reverse includes from a Patient the CSAPA may see: only the unlabelled requests.
        await _usmp.CreateAsync(PermitCsapa(set.Patient, "Patient"));
        var reverse = await csapa.SearchAsync($"Patient?_id={set.Patient}&_revinclude=MedicationRequest:subject");
        Assert.Equal([set.Patient], reverse.Matches());
        Assert.Equal(set.Plain.Select(id => "MedicationRequest/" + id).Order(), reverse.Included().Order());
    }

    [Fact]
    public async Task Withdrawal_takes_effect_on_the_next_request()
    {
        var set = await SetUpAsync();
        var consent = await _usmp.CreateAsync(PermitCsapa(set.Patient));
        var csapa = Csapa();
        Assert.Equal(HttpStatusCode.OK, (await csapa.GetAsync($"MedicationRequest/{set.Plain[0]}")).StatusCode);

        consent.Status = Hl7.Fhir.Model.Consent.ConsentState.Inactive;
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"Consent/{consent.Id}", FhirHttp.Json(consent))).StatusCode);

        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"MedicationRequest/{set.Plain[0]}")).StatusCode);
        Assert.Equal(0, (await csapa.SearchAsync($"MedicationRequest?subject=Patient/{set.Patient}&_total=accurate")).Total);
    }

    [Fact]
    public async Task Hidden_resources_are_404_in_instance_history_and_batch_and_absent_from_type_history()
    {
        var set = await SetUpAsync();
        var csapa = Csapa();
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"MedicationRequest/{set.Plain[0]}/_history")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"MedicationRequest/{set.Plain[0]}/_history/1")).StatusCode);
        var history = await csapa.SearchAsync("MedicationRequest/_history?_count=1000");
        Assert.DoesNotContain(history.Entry, e => e.Resource?.Id is { } id && (set.Plain.Contains(id) || set.Eth.Contains(id)));

        var batch = new Bundle
        {
            Type = Bundle.BundleType.Batch,
            Entry =
            [
                new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.GET, Url = $"MedicationRequest/{set.Plain[0]}" } },
                new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.GET, Url = $"MedicationRequest?subject=Patient/{set.Patient}&_total=accurate" } },
            ],
        };
        var response = await (await csapa.PostAsync("", FhirHttp.Json(batch))).ReadAs<Bundle>();
        Assert.StartsWith("404", response.Entry[0].Response!.Status, StringComparison.Ordinal);
        Assert.Equal(0, Assert.IsType<Bundle>(response.Entry[1].Resource).Total);
    }

    [Fact]
    public async Task Break_the_glass_opens_reads_and_searches_for_that_client_only_and_is_flagged()
    {
        var set = await SetUpAsync();
        var csapa = Csapa("csapa-emergency");
        var request = new HttpRequestMessage(HttpMethod.Get, $"MedicationRequest/{set.Eth[0]}");
        request.Headers.Add(PurposeOfUse.Header, "ETREAT");
        request.Headers.Add(PurposeOfUse.ReasonHeader, "overdose on arrival");
        var read = await csapa.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.True(read.Headers.Contains(PurposeOfUse.BreakGlassResponseHeader));

        var emergency = await csapa.SearchAsync($"MedicationRequest?subject=Patient/{set.Patient}&_total=accurate", (PurposeOfUse.Header, "ETREAT"));
        Assert.Equal(5, emergency.Total);
        // Without stating the emergency purpose, or as another client of the same organisation: nothing.
        Assert.Equal(0, (await csapa.SearchAsync($"MedicationRequest?subject=Patient/{set.Patient}&_total=accurate")).Total);
        Assert.Equal(0, (await Csapa("csapa-other").SearchAsync($"MedicationRequest?subject=Patient/{set.Patient}&_total=accurate", (PurposeOfUse.Header, "ETREAT"))).Total);
    }

    [Fact]
    public async Task Everything_gives_the_patients_shareable_record_only()
    {
        var set = await SetUpAsync();
        var csapa = Csapa("csapa-everything");
        // The Patient is not shared yet: as for a read, 404.
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"Patient/{set.Patient}/$everything")).StatusCode);
        await _usmp.CreateAsync(PermitCsapa(set.Patient, "Patient", "MedicationRequest"));

        var all = await csapa.SearchAsync($"Patient/{set.Patient}/$everything");
        // The Provenance of what it may see comes too (issue 21 §3), never one naming a hidden resource.
        var provenances = all.Entry.Select(e => e.Resource).OfType<Provenance>().ToList();
        Assert.All(provenances, p => Assert.All(p.Target, t => Assert.Contains(t.Reference!.Split('/')[1], set.Plain.Append(set.Patient))));
        Assert.Equal(new[] { set.Patient }.Concat(set.Plain).Order(), all.Entry.Where(e => e.Resource is not Provenance).Select(e => e.Resource!.Id).Order());
        Assert.Equal(3 + provenances.Count, all.Total);

        var typed = await csapa.SearchAsync($"Patient/{set.Patient}/$everything?_type=MedicationRequest&_count=1");
        Assert.Equal(2, typed.Total);
        var seen = typed.Matches();
        seen.AddRange((await csapa.SearchAsync(SearchHttp.Relative(typed.Link("next")!))).Matches());
        Assert.Equal(set.Plain.Order(), seen.Order());

        var since = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(5).ToString("o", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0, (await csapa.SearchAsync($"Patient/{set.Patient}/$everything?_since={since}")).Total);
        Assert.Equal(HttpStatusCode.BadRequest, (await csapa.GetAsync($"Patient/{set.Patient}/$everything?code=x")).StatusCode);

        // The USMP wrote everything; the justice actor gets the Patient and the attendance attestation, nothing clinical.
        var usmp = (await _usmp.SearchAsync($"Patient/{set.Patient}/$everything?_count=100")).Matches();
        Assert.Superset(new[] { set.Patient, set.Condition, set.Attestation, set.Letter }.Concat(set.Plain).Concat(set.Eth).ToHashSet(), usmp.ToHashSet());
        var justice = await Justice().SearchAsync($"Patient/{set.Patient}/$everything");
        Assert.Equal(new[] { set.Patient, set.Attestation }.Order(), justice.Matches().Order());
    }

    [Fact]
    public async Task Audit_rows_name_the_decision_the_consent_and_the_patient_of_reads_permitted_or_hidden()
    {
        var set = await SetUpAsync();
        var consent = await _usmp.CreateAsync(PermitCsapa(set.Patient));
        var csapa = Csapa("csapa-audited");
        Assert.Equal(HttpStatusCode.OK, (await csapa.GetAsync($"MedicationRequest/{set.Plain[0]}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"MedicationRequest/{set.Eth[0]}")).StatusCode);

        var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-consent", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        var audits = (await auditor.SearchAsync($"AuditEvent?patient={set.Patient}&_count=200")).Entry.Select(e => Assert.IsType<AuditEvent>(e.Resource))
            .Where(a => a.Agent.Any(g => g.Who?.Identifier?.Value == "csapa-audited")).ToList();
        var permitted = Assert.Single(audits, a => a.Entity.Any(e => e.What?.Reference == $"MedicationRequest/{set.Plain[0]}"));
        Assert.StartsWith("permitted: consent", permitted.OutcomeDesc, StringComparison.Ordinal);
        Assert.Contains(permitted.Entity, e => e.What?.Reference == $"Consent/{consent.Id}");
        var denied = Assert.Single(audits, a => a.Entity.Any(e => e.What?.Reference == $"MedicationRequest/{set.Eth[0]}"));
        Assert.StartsWith("denied: ", denied.OutcomeDesc, StringComparison.Ordinal);
        Assert.Equal(AuditEvent.AuditEventOutcome.N4, denied.Outcome);
    }

    [Fact]
    public async Task Unknown_purpose_of_use_is_400()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "Patient?_count=1");
        request.Headers.Add(PurposeOfUse.Header, "CURIOSITY");
        Assert.Equal(HttpStatusCode.BadRequest, (await Csapa().SendAsync(request)).StatusCode);
    }

    [Fact]
    public async Task Justice_actor_never_gets_clinical_content_by_read_or_search()
    {
        var set = await SetUpAsync();
        // Even a consent naming the justice organisation for everything changes nothing.
        var justice = Justice();
        Assert.Equal(HttpStatusCode.Forbidden, (await justice.GetAsync($"MedicationRequest/{set.Plain[0]}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await justice.GetAsync($"Condition/{set.Condition}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await justice.GetAsync($"Condition?subject=Patient/{set.Patient}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await justice.GetAsync($"DocumentReference/{set.Letter}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await justice.GetAsync($"DocumentReference/{set.Attestation}")).StatusCode);

        var documents = await justice.SearchAsync($"DocumentReference?subject=Patient/{set.Patient}&_total=accurate");
        Assert.Equal([set.Attestation], documents.Matches());
        Assert.Equal(1, documents.Total);
        // Includes reaching clinical types are refused outright for justice actors (tests/FhirSortie.Tests/Justice/).
        Assert.Equal(HttpStatusCode.Forbidden, (await justice.GetAsync($"Patient?_id={set.Patient}&_revinclude=MedicationRequest:subject")).StatusCode);
        var patient = await justice.SearchAsync($"Patient?_id={set.Patient}&_revinclude=DocumentReference:subject");
        Assert.Equal([set.Patient], patient.Matches());
        Assert.Equal([$"DocumentReference/{set.Attestation}"], patient.Included());
        // No system search across types for justice actors (tests/FhirSortie.Tests/Justice/).
        Assert.Equal(HttpStatusCode.Forbidden, (await justice.GetAsync($"?_type=Patient,DocumentReference&_id={set.Patient},{set.Letter},{set.Attestation}")).StatusCode);
    }
}

public sealed class SqliteConsentSearchTests(SqliteGateway gateway) : ConsentSearchTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresConsentSearchTests(PostgresGateway gateway) : ConsentSearchTests(gateway), IClassFixture<PostgresGateway>;
