#nullable disable warnings
using System.Net;
using System.Text;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// Consent on the write side (issue 5): a write to an existing resource is decided like a read of its current version
/// (hidden: 404, nothing changed, nothing shown); conditional matches never leak a hidden resource; history and vread
/// decide per version; failed batch/transaction entries and deletes are audited.
/// </summary>
public abstract class ConsentWriteTests(Gateway gateway)
{
    private const string CsapaFiness = "750000028";
    private const string Identifiers = "urn:test:consent-write";
    private readonly HttpClient _usmp = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-write", ActorKind.Auditor, null, "system/AuditEvent.rs"));

    private HttpClient Csapa() => gateway.Fhir(TestAuthenticationHandler.Describe("csapa-write", ActorKind.Csapa, CsapaFiness, "system/*.cruds"));

    private HttpClient Justice() => gateway.Fhir(TestAuthenticationHandler.Describe("spip-write", ActorKind.Justice, "750000077", "system/*.cruds"));

    private async Task<string> PatientAsync() => (await _usmp.CreateAsync(Patient(NewRun(), "180029900000003", "Ecriture"))).Id;

    private static MedicationRequest Request(string patient, string identifier = null, bool eth = false, string text = "paracetamol") => new()
    {
        Status = MedicationRequest.MedicationrequestStatus.Active,
        Intent = MedicationRequest.MedicationRequestIntent.Order,
        Medication = new CodeableConcept { Text = text },
        Subject = new ResourceReference("Patient/" + patient),
        Identifier = identifier is null ? [] : [new Identifier(Identifiers, identifier)],
        Meta = eth ? new Meta { Security = [new Coding(SecurityLabels.ActCode, "ETH")] } : null,
    };

    private static HttpRequestMessage JsonPatch(string url, string patch, string prefer = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Patch, url) { Content = new StringContent(patch, Encoding.UTF8, "application/json-patch+json") };
        if (prefer is not null) request.Headers.TryAddWithoutValidation("Prefer", prefer);
        return request;
    }

    private async Task<List<AuditEvent>> AuditsOf(string patientId)
    {
        return (await _auditor.SearchAsync($"AuditEvent?patient={patientId}&_count=200")).Entry.Select(e => (AuditEvent)e.Resource).ToList();
    }

    private static string Subtype(AuditEvent a) => a.Subtype.Single().Code;

    [Fact]
    public async Task A_care_organisation_without_consent_cannot_update_patch_or_delete_what_it_may_not_see()
    {
        var patient = await PatientAsync();
        var request = await _usmp.CreateAsync(Request(patient));
        var csapa = Csapa();

        var changed = Request(patient);
        changed.Id = request.Id;
        var put = await csapa.PutAsync($"MedicationRequest/{request.Id}", FhirHttp.Json(changed));
        Assert.Equal(HttpStatusCode.NotFound, put.StatusCode);
        // Even with a stale If-Match the answer is the read's 404, not a 412 confirming the version.
        var stale = new HttpRequestMessage(HttpMethod.Put, $"MedicationRequest/{request.Id}") { Content = FhirHttp.Json(changed) };
        stale.Headers.TryAddWithoutValidation("If-Match", "W/\"7\"");
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.SendAsync(stale)).StatusCode);

        var patch = await csapa.SendAsync(JsonPatch($"MedicationRequest/{request.Id}",
            """[{"op":"replace","path":"/status","value":"stopped"}]""", prefer: "return=representation"));
        Assert.Equal(HttpStatusCode.NotFound, patch.StatusCode);
        var body = await patch.Content.ReadAsStringAsync();
        Assert.DoesNotContain("paracetamol", body, StringComparison.Ordinal);
        Assert.IsType<OperationOutcome>(await patch.ReadAs<OperationOutcome>());

        // A delete is refused (403, not an unknown id's 204: it still exists for the others), with an outcome that says
        // neither why nor anything of the content; the audit record keeps the reason and names the patient.
        var delete = await csapa.DeleteAsync($"MedicationRequest/{request.Id}");
        Assert.Equal(HttpStatusCode.Forbidden, delete.StatusCode);
        var refusal = await delete.Content.ReadAsStringAsync();
        Assert.Contains($"MedicationRequest/{request.Id} cannot be deleted by this client; nothing was deleted.", refusal, StringComparison.Ordinal);
        Assert.DoesNotContain("paracetamol", refusal, StringComparison.Ordinal);
        Assert.DoesNotContain("consent", refusal, StringComparison.OrdinalIgnoreCase);
        var refused = Assert.Single(await AuditsOf(patient), a => Subtype(a) == "delete" && a.Agent.Any(g => g.Who.Identifier?.Value == "csapa-write"));
        Assert.Equal(AuditEvent.AuditEventOutcome.N4, refused.Outcome);
        Assert.StartsWith("denied: ", refused.OutcomeDesc, StringComparison.Ordinal);
        Assert.Contains(refused.Entity, e => e.What?.Reference == $"MedicationRequest/{request.Id}");

        // Nothing was written: the USMP still reads version 1, active.
        var current = await (await _usmp.GetAsync($"MedicationRequest/{request.Id}")).ReadAs<MedicationRequest>();
        Assert.Equal("1", current.Meta.VersionId);
        Assert.Equal(MedicationRequest.MedicationrequestStatus.Active, current.Status);

        // With a consent covering MedicationRequest, the same CSAPA may update it.
        await _usmp.CreateAsync(TestConsents.Permit(patient, CsapaFiness, "MedicationRequest"));
        Assert.Equal(HttpStatusCode.OK, (await csapa.PutAsync($"MedicationRequest/{request.Id}", FhirHttp.Json(changed))).StatusCode);
    }

    [Fact]
    public async Task A_deleted_resource_is_410_only_for_a_caller_who_could_see_it_and_deleting_it_again_is_the_204_of_an_unknown_id_for_all()
    {
        var patient = await PatientAsync();
        var request = await _usmp.CreateAsync(Request(patient));
        Assert.Equal(HttpStatusCode.NoContent, (await _usmp.DeleteAsync($"MedicationRequest/{request.Id}")).StatusCode);

        Assert.Equal(HttpStatusCode.Gone, (await _usmp.GetAsync($"MedicationRequest/{request.Id}")).StatusCode);
        // The CSAPA never could see it: a 410 would tell it that the patient had this prescription.
        Assert.Equal(HttpStatusCode.NotFound, (await Csapa().GetAsync($"MedicationRequest/{request.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Csapa().SendAsync(JsonPatch($"MedicationRequest/{request.Id}", "[]"))).StatusCode);
        // Deleting it again deletes nothing (R4 http.html): the answer of an unknown id, to the CSAPA and to the author alike.
        var unknown = await Csapa().DeleteAsync($"MedicationRequest/never-{NewRun()}");
        var again = await Csapa().DeleteAsync($"MedicationRequest/{request.Id}");
        var byAuthor = await _usmp.DeleteAsync($"MedicationRequest/{request.Id}");
        foreach (var answer in new[] { unknown, again, byAuthor })
        {
            Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
            Assert.Null(answer.Headers.ETag);
            Assert.Null(answer.Content.Headers.LastModified);
        }
        Assert.Equal(HttpStatusCode.Gone, (await _usmp.GetAsync($"MedicationRequest/{request.Id}")).StatusCode);
        // No version was written by the repeated deletes: the creation and the one deletion.
        Assert.Equal(2, (await _usmp.SearchAsync($"MedicationRequest/{request.Id}/_history")).Entry.Count);
        await _usmp.CreateAsync(TestConsents.Permit(patient, CsapaFiness, "MedicationRequest"));
        Assert.Equal(HttpStatusCode.Gone, (await Csapa().GetAsync($"MedicationRequest/{request.Id}")).StatusCode);
    }

    [Fact]
    public async Task Justice_actors_never_write_clinical_types()
    {
        var patient = await PatientAsync();
        var justice = Justice();
        Assert.Equal(HttpStatusCode.Forbidden, (await justice.PostAsync("MedicationRequest", FhirHttp.Json(Request(patient)))).StatusCode);
        var condition = new Condition { Id = "jc" + NewRun(), Code = new CodeableConcept { Text = "x" }, Subject = new ResourceReference("Patient/" + patient) };
        Assert.Equal(HttpStatusCode.Forbidden, (await justice.PutAsync($"Condition/{condition.Id}", FhirHttp.Json(condition))).StatusCode);
        var existing = await _usmp.CreateAsync(Request(patient));
        Assert.Equal(HttpStatusCode.Forbidden, (await justice.DeleteAsync($"MedicationRequest/{existing.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _usmp.GetAsync($"MedicationRequest/{existing.Id}")).StatusCode);
    }

    [Fact]
    public async Task A_care_organisation_creates_and_then_updates_what_it_wrote_without_consent_and_the_create_is_audited_with_the_patient()
    {
        var patient = await PatientAsync();
        var csapa = Csapa();
        var created = await csapa.CreateAsync(Request(patient));
        created.Status = MedicationRequest.MedicationrequestStatus.Completed;
        var update = await csapa.PutAsync($"MedicationRequest/{created.Id}", FhirHttp.Json(created));
        Assert.Equal(HttpStatusCode.OK, update.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await csapa.SendAsync(JsonPatch($"MedicationRequest/{created.Id}",
            """[{"op":"replace","path":"/status","value":"stopped"}]"""))).StatusCode);
        var audits = await AuditsOf(patient);
        var create = Assert.Single(audits, a => Subtype(a) == "create" && a.Entity.Any(e => e.What?.Reference == $"MedicationRequest/{created.Id}/_history/1"));
        Assert.Contains(create.Agent, a => a.Who.Identifier?.Value == CsapaFiness);
        Assert.Contains(create.Entity, e => e.What?.Reference == $"Patient/{patient}");
        Assert.Single(audits, a => Subtype(a) == "update" && a.Entity.Any(e => e.What?.Reference == $"MedicationRequest/{created.Id}/_history/2"));
    }

    [Fact]
    public async Task If_None_Exist_matching_a_hidden_resource_is_412_without_its_id_and_creates_nothing()
    {
        var patient = await PatientAsync();
        var identifier = NewRun();
        var hidden = await _usmp.CreateAsync(Request(patient, identifier));
        var csapa = Csapa();

        var post = new HttpRequestMessage(HttpMethod.Post, "MedicationRequest") { Content = FhirHttp.Json(Request(patient, identifier)) };
        post.Headers.TryAddWithoutValidation("If-None-Exist", $"identifier={Identifiers}|{identifier}");
        var answer = await csapa.SendAsync(post);
        Assert.Equal(HttpStatusCode.PreconditionFailed, answer.StatusCode);
        Assert.Null(answer.Headers.Location);
        var text = await answer.Content.ReadAsStringAsync();
        Assert.DoesNotContain(hidden.Id, text, StringComparison.Ordinal);
        Assert.Equal(OperationOutcome.IssueType.Forbidden, (await answer.ReadAs<OperationOutcome>()).Issue.Single().Code);

        // Conditional update, patch and delete on the same condition: the same neutral 412, nothing written.
        var put = await csapa.PutAsync($"MedicationRequest?identifier={Identifiers}|{identifier}", FhirHttp.Json(Request(patient, identifier)));
        Assert.Equal(HttpStatusCode.PreconditionFailed, put.StatusCode);
        Assert.DoesNotContain(hidden.Id, await put.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var patch = await csapa.SendAsync(JsonPatch($"MedicationRequest?identifier={Identifiers}|{identifier}",
            """[{"op":"replace","path":"/status","value":"stopped"}]""", prefer: "return=representation"));
        Assert.Equal(HttpStatusCode.PreconditionFailed, patch.StatusCode);
        Assert.Equal(HttpStatusCode.PreconditionFailed, (await csapa.DeleteAsync($"MedicationRequest?identifier={Identifiers}|{identifier}")).StatusCode);

        // The same in a transaction and a batch: refused, and never a duplicate.
        var batch = new Bundle
        {
            Type = Bundle.BundleType.Batch,
            Entry = [new Bundle.EntryComponent
            {
                Resource = Request(patient, identifier),
                Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "MedicationRequest", IfNoneExist = $"identifier={Identifiers}|{identifier}" },
            }],
        };
        var batchAnswer = await (await csapa.PostAsync("", FhirHttp.Json(batch))).ReadAs<Bundle>();
        Assert.StartsWith("412", batchAnswer.Entry[0].Response.Status, StringComparison.Ordinal);
        Assert.Null(batchAnswer.Entry[0].Resource);

        var all = await _usmp.SearchAsync($"MedicationRequest?identifier={Identifiers}|{identifier}&_total=accurate");
        Assert.Equal(1, all.Total);
        var stored = await (await _usmp.GetAsync($"MedicationRequest/{hidden.Id}")).ReadAs<MedicationRequest>();
        Assert.Equal("1", stored.Meta.VersionId);

        // A CSAPA the patient consented to sees the match: If-None-Exist answers it (200), still no duplicate.
        await _usmp.CreateAsync(TestConsents.Permit(patient, CsapaFiness, "MedicationRequest"));
        var again = new HttpRequestMessage(HttpMethod.Post, "MedicationRequest") { Content = FhirHttp.Json(Request(patient, identifier)) };
        again.Headers.TryAddWithoutValidation("If-None-Exist", $"identifier={Identifiers}|{identifier}");
        var found = await csapa.SendAsync(again);
        Assert.Equal(HttpStatusCode.OK, found.StatusCode);
        Assert.Equal(hidden.Id, (await found.ReadAs<MedicationRequest>()).Id);
    }

    [Fact]
    public async Task History_and_vread_decide_per_version_on_that_versions_labels()
    {
        var patient = await PatientAsync();
        await _usmp.CreateAsync(TestConsents.PermitMasking(patient, CsapaFiness, "MedicationRequest"));
        var csapa = Csapa();

        // Unlabelled at v1, ETH at v2: the CSAPA (consent masking the categories) sees v1 only.
        var growing = await _usmp.CreateAsync(Request(patient, text: "plain v1"));
        var labelled = Request(patient, eth: true, text: "eth v2");
        labelled.Id = growing.Id;
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"MedicationRequest/{growing.Id}", FhirHttp.Json(labelled))).StatusCode);

        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"MedicationRequest/{growing.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await csapa.GetAsync($"MedicationRequest/{growing.Id}/_history/1")).StatusCode);
        var v2 = await csapa.GetAsync($"MedicationRequest/{growing.Id}/_history/2");
        Assert.Equal(HttpStatusCode.NotFound, v2.StatusCode);
        Assert.DoesNotContain("eth v2", await v2.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var history = await csapa.SearchAsync($"MedicationRequest/{growing.Id}/_history");
        Assert.Equal(["1"], history.Entry.Select(e => e.Resource.Meta.VersionId));

        // ETH at v1, unlabelled at v2: the reverse.
        var shrinking = await _usmp.CreateAsync(Request(patient, eth: true, text: "eth v1"));
        var plain = Request(patient, text: "plain v2");
        plain.Id = shrinking.Id;
        Assert.Equal(HttpStatusCode.OK, (await _usmp.PutAsync($"MedicationRequest/{shrinking.Id}", FhirHttp.Json(plain))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await csapa.GetAsync($"MedicationRequest/{shrinking.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.GetAsync($"MedicationRequest/{shrinking.Id}/_history/1")).StatusCode);
        var reverse = await csapa.SearchAsync($"MedicationRequest/{shrinking.Id}/_history");
        Assert.Equal(["2"], reverse.Entry.Select(e => e.Resource.Meta.VersionId));

        // Type history: one page of 1 entry at a time never shows nor counts the hidden versions.
        var seen = new List<string>();
        var since = DateTimeOffset.UtcNow.AddMinutes(-5).ToString("yyyy-MM-dd'T'HH':'mm':'ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        var page = await csapa.SearchAsync($"MedicationRequest/_history?_count=1&_since={since}");
        while (true)
        {
            seen.AddRange(page.Entry.Where(e => e.Resource is MedicationRequest m && (m.Id == growing.Id || m.Id == shrinking.Id))
                .Select(e => $"{e.Resource.Id}/{e.Resource.Meta.VersionId}"));
            Assert.True(page.Entry.Count <= 1);
            Assert.All(page.Entry, e => Assert.False(e.Resource is MedicationRequest { Medication: CodeableConcept { Text: { } text } } && text.StartsWith("eth", StringComparison.Ordinal)));
            if (page.Link("next") is not { } next) break;
            page = await csapa.SearchAsync(SearchHttp.Relative(next));
        }
        Assert.Equal(new[] { $"{growing.Id}/1", $"{shrinking.Id}/2" }.Order(), seen.Order());

        // The author sees every version.
        Assert.Equal(2, (await _usmp.SearchAsync($"MedicationRequest/{growing.Id}/_history")).Entry.Count);
    }

    [Fact]
    public async Task Failed_batch_entries_and_a_failed_transaction_are_audited_with_interaction_target_status_and_reason()
    {
        var patient = await PatientAsync();
        var hidden = await _usmp.CreateAsync(Request(patient));
        var csapa = Csapa();
        var changed = Request(patient);
        changed.Id = hidden.Id;

        var batch = new Bundle
        {
            Type = Bundle.BundleType.Batch,
            Entry =
            [
                new Bundle.EntryComponent { Resource = changed, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PUT, Url = $"MedicationRequest/{hidden.Id}" } },
                new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.DELETE, Url = $"MedicationRequest/{hidden.Id}" } },
                new Bundle.EntryComponent { Resource = Request(patient), Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "MedicationRequest" } },
            ],
        };
        var answer = await (await csapa.PostAsync("", FhirHttp.Json(batch))).ReadAs<Bundle>();
        Assert.StartsWith("404", answer.Entry[0].Response.Status, StringComparison.Ordinal);
        Assert.StartsWith("403", answer.Entry[1].Response.Status, StringComparison.Ordinal); // a hidden delete, as a single DELETE
        Assert.Contains("cannot be deleted by this client", answer.Entry[1].Response.Outcome is OperationOutcome o ? o.Issue[0].Diagnostics : "", StringComparison.Ordinal);
        Assert.StartsWith("201", answer.Entry[2].Response.Status, StringComparison.Ordinal);

        var transaction = new Bundle
        {
            Type = Bundle.BundleType.Transaction,
            Entry =
            [
                new Bundle.EntryComponent { FullUrl = "urn:uuid:" + Guid.NewGuid(), Resource = Request(patient), Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "MedicationRequest" } },
                new Bundle.EntryComponent { Resource = changed, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PUT, Url = $"MedicationRequest/{hidden.Id}" } },
            ],
        };
        Assert.Equal(HttpStatusCode.NotFound, (await csapa.PostAsync("", FhirHttp.Json(transaction))).StatusCode);

        var audits = (await AuditsOf(patient)).Where(a => a.Agent.Any(g => g.Who.Identifier?.Value == "csapa-write")).ToList();
        var target = $"MedicationRequest/{hidden.Id}";
        var updates = audits.Where(a => Subtype(a) == "update" && a.Entity.Any(e => e.What?.Reference == target)).ToList();
        Assert.Equal(2, updates.Count); // the batch entry and the transaction's failing entry
        Assert.All(updates, a =>
        {
            Assert.Equal(AuditEvent.AuditEventOutcome.N4, a.Outcome);
            Assert.StartsWith("denied: ", a.OutcomeDesc, StringComparison.Ordinal);
        });
        var delete = Assert.Single(audits, a => Subtype(a) == "delete" && a.Entity.Any(e => e.What?.Reference == target));
        Assert.Equal(AuditEvent.AuditEventOutcome.N4, delete.Outcome);
        // The successful batch create is audited once, as a create, in its own transaction.
        Assert.Single(audits, a => Subtype(a) == "create" && a.Outcome == AuditEvent.AuditEventOutcome.N0);
        // The failed transaction itself is audited too.
        Assert.Contains(audits, a => Subtype(a) == "transaction" && a.Outcome == AuditEvent.AuditEventOutcome.N4);
    }

    [Fact]
    public async Task A_delete_is_audited_once_with_its_patient_and_gets_a_Provenance()
    {
        var patient = await PatientAsync();
        var request = await _usmp.CreateAsync(Request(patient));
        Assert.Equal(HttpStatusCode.NoContent, (await _usmp.DeleteAsync($"MedicationRequest/{request.Id}")).StatusCode);

        var audits = await AuditsOf(patient);
        var delete = Assert.Single(audits, a => Subtype(a) == "delete");
        Assert.Equal(AuditEvent.AuditEventAction.D, delete.Action);
        Assert.Equal(AuditEvent.AuditEventOutcome.N0, delete.Outcome);
        Assert.Contains(delete.Entity, e => e.What?.Reference == $"MedicationRequest/{request.Id}/_history/2");
        var provenances = (await _usmp.SearchAsync($"Provenance?target=MedicationRequest/{request.Id}")).Entry.Select(e => (Provenance)e.Resource).ToList();
        var provenance = Assert.Single(provenances, p => p.Activity?.Coding.Single().Code == "DELETE");
        Assert.Equal($"MedicationRequest/{request.Id}/_history/2", provenance.Target.Single().Reference);
    }
}

public sealed class SqliteConsentWriteTests(SqliteGateway gateway) : ConsentWriteTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresConsentWriteTests(PostgresGateway gateway) : ConsentWriteTests(gateway), IClassFixture<PostgresGateway>;
