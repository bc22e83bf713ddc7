using System.Net;
using System.Text;
using FhirSortie.Tests.Profiles;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Mapping;

/// <summary>POST [base]/DocumentReference/$import-cda: CI-SIS LDL-SES liaison letters in, national FHIR shapes out.</summary>
public abstract class CdaImportTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private async Task<HttpResponseMessage> ImportAsync(byte[] document, string mediaType = "application/hl7-cda+xml") =>
        await _fhir.PostAsync("DocumentReference/$import-cda", MappingSettings.CdaContent(document, mediaType));

    private async Task<Bundle> ImportOkAsync(byte[] document)
    {
        var response = await ImportAsync(document);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return await response.ReadAs<Bundle>();
    }

    /// <summary>
    /// The document under a fresh document id and a fresh (valid) INS, so that tests sharing a gateway do not meet
    /// each other's resources; the practitioner and the organisation stay shared, as in real life.
    /// </summary>
    private static (byte[] Document, string Id, string Nir) Fresh(string name)
    {
        var id = "LDL-" + Guid.NewGuid().ToString("N")[..12];
        var first13 = 1_800_275_000_000L + Random.Shared.Next(0, 999_999);
        var nir = $"{first13:D13}{97 - first13 % 97:D2}";
        var document = MappingSettings.Cda(name);
        document = MappingSettings.Replace(document, "LDL-2026-000123", id);
        document = MappingSettings.Replace(document, "LDL-2026-000456", id);
        document = MappingSettings.Replace(document, "LDL-SET-000123", id + "-SET");
        document = MappingSettings.Replace(document, "RX-000123-", id + "-RX-");
        document = MappingSettings.Replace(document, "RDV-000123-", id + "-RDV-");
        document = MappingSettings.Replace(document, "180027512345676", nir);
        document = MappingSettings.Replace(document, "285066912345607", nir);
        return (document, id, nir);
    }

    private static T[] Of<T>(Bundle bundle) where T : Resource => bundle.Entry.Select(e => e.Resource).OfType<T>().ToArray();

    /// <summary>The buprenorphine (ATC N07BC01) exit prescription of an import's answer.</summary>
    private static MedicationRequest Buprenorphine(Bundle bundle) =>
        Of<MedicationRequest>(bundle).Single(p => ((CodeableConcept)p.Medication).Coding.Any(c => c.Code == "N07BC01"));

    private async Task<int> CountAsync(string query)
    {
        var bundle = await (await _fhir.GetAsync(query + (query.Contains('?') ? "&" : "?") + "_summary=count")).ReadAs<Bundle>();
        return bundle.Total ?? -1;
    }

    [Fact]
    public async Task Level3_letter_becomes_a_liaison_letter_with_exit_prescriptions_in_one_transaction()
    {
        var (document, _, nir) = Fresh("ldl-ses-level3.xml");
        var response = await ImportOkAsync(document);

        Assert.Equal(Bundle.BundleType.TransactionResponse, response.Type);
        Assert.All(response.Entry.Where(e => e.Resource is not (Practitioner or Organization)), e => Assert.StartsWith("201", e.Response!.Status));

        var composition = Assert.Single(Of<Composition>(response));
        Assert.Contains("https://fhirsortie.fr/fhir/StructureDefinition/LiaisonLetter", composition.Meta!.Profile);
        Assert.Equal("11490-0", composition.Type.Coding[0].Code);
        Assert.Equal(Composition.V3ConfidentialityClassification.N, composition.Confidentiality);
        Assert.Equal("2026-11-20T10:00:00+01:00", composition.DateElement.Value);
        // Reason for referral (42349-1) maps to 29299-5; the results section has no map and is left out.
        Assert.Equal(["29299-5", "10183-2", "18776-5", "48765-2"], composition.Section.Select(s => s.Code!.Coding[0].Code));
        var treatments = composition.Section[1];
        Assert.Equal(3, treatments.Entry.Count);
        Assert.Contains("Buprénorphine 8 mg", treatments.Text!.Div);
        Assert.Contains("<li>", composition.Section[2].Text!.Div);
        Assert.Equal(Composition.CompositionAttestationMode.Legal, Assert.Single(composition.Attester).Mode);

        // Follow-up: the booked appointment with its instants and place, the requested one with its date only.
        var appointments = Of<Appointment>(response);
        Assert.Equal(2, appointments.Length);
        Assert.Equal(appointments.Select(a => $"Appointment/{a.Id}"), composition.Section[2].Entry.Select(e => e.Reference));
        var booked = appointments.Single(a => a.Status == Appointment.AppointmentStatus.Booked);
        Assert.Equal(new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.FromHours(1)), booked.Start);
        Assert.Equal(new DateTimeOffset(2026, 11, 22, 11, 0, 0, TimeSpan.FromHours(1)), booked.End);
        Assert.Contains("CSAPA (exemple)", booked.Description);
        var requested = appointments.Single(a => a.Status == Appointment.AppointmentStatus.Proposed);
        Assert.Null(requested.Start);
        Assert.Equal("2026-12-18", requested.RequestedPeriod[0].Start);
        Assert.Equal($"Patient/{Of<Patient>(response)[0].Id}", requested.Participant[0].Actor!.Reference);

        var prescriptions = Of<MedicationRequest>(response);
        Assert.Equal(3, prescriptions.Length);
        var buprenorphine = prescriptions.Single(p => ((CodeableConcept)p.Medication).Coding.Any(c => c.Code == "N07BC01"));
        Assert.Equal("http://www.whocc.no/atc", ((CodeableConcept)buprenorphine.Medication).Coding[0].System);
        Assert.Contains("8 mg par jour", buprenorphine.DosageInstruction[0].Text);
        Assert.Equal(8m, ((Quantity)buprenorphine.DosageInstruction[0].DoseAndRate[0].Dose!).Value);
        Assert.Equal("20053000", buprenorphine.DosageInstruction[0].Route!.Coding[0].Code);
        Assert.Equal("2026-12-18", buprenorphine.DispenseRequest!.ValidityPeriod!.End);
        Assert.Equal(28m, buprenorphine.DispenseRequest!.Quantity!.Value);
        Assert.Equal($"Practitioner/{Of<Practitioner>(response).Single().Id}", buprenorphine.Requester!.Reference);
        var hcv = prescriptions.Single(p => ((CodeableConcept)p.Medication).Coding.Any(c => c.Code == "J05AP55"));
        Assert.Equal(24m, hcv.DosageInstruction[0].Timing!.Repeat!.Period);
        Assert.Equal(Timing.UnitsOfTime.H, hcv.DosageInstruction[0].Timing!.Repeat!.PeriodUnit);

        var patient = Assert.Single(Of<Patient>(response));
        Assert.Contains(patient.Identifier, i => i.System == "urn:oid:1.2.250.1.213.1.4.8" && i.Value == nir);
        Assert.Equal("TESTMARTIN", patient.Name[0].Family);
        Assert.Equal("1980-02-14", patient.BirthDate);
        var practitioner = Assert.Single(Of<Practitioner>(response));
        Assert.Contains(practitioner.Identifier, i => i.System == "https://rpps.esante.gouv.fr" && i.Value == "10001234565");
        var organization = Assert.Single(Of<Organization>(response));
        Assert.Contains(organization.Identifier, i => i.System == "https://finess.esante.gouv.fr" && i.Value == "750012346");

        var reference = Assert.Single(Of<DocumentReference>(response));
        Assert.Equal("urn:oid:1.2.250.1.999.1.1", reference.MasterIdentifier!.System);
        Assert.Equal("N", reference.SecurityLabel[0].Coding[0].Code);
        Assert.Equal("2025-03-01", reference.Context!.Period!.Start);
        Assert.Equal($"Composition/{composition.Id}", reference.Context!.Related[0].Reference);
        var content = Assert.Single(reference.Content);
        Assert.Equal("urn:asip:ci-sis:ldl-ses:2017", content.Format!.Code);
        Assert.Equal(document.Length, content.Attachment.SizeUnsignedInt);
        Assert.Equal(System.Security.Cryptography.SHA1.HashData(document), content.Attachment.Hash);
        Assert.StartsWith("Binary/", content.Attachment.Url);

        // What was not carried over is said on the DocumentReference's entry.
        var entry = response.Entry.Single(e => e.Resource is DocumentReference);
        var note = Assert.Single(((OperationOutcome)entry.Response!.Outcome!).Issue);
        Assert.Equal(OperationOutcome.IssueSeverity.Information, note.Severity);
        Assert.Contains("30954-2", note.Diagnostics);

        // The original is kept byte for byte.
        var binary = await (await _fhir.GetAsync(content.Attachment.Url)).ReadAs<Binary>();
        Assert.Equal("text/xml", binary.ContentType);
        Assert.Equal(document, binary.Data);
    }

    [Fact]
    public async Task Imported_resources_conform_to_the_profiles_they_claim()
    {
        var response = await ImportOkAsync(Fresh("ldl-ses-level3.xml").Document);
        var claimed = response.Entry.Select(e => e.Resource).Where(r => r?.Meta?.Profile.Any() == true).ToList();
        Assert.Equal(8, claimed.Count); // patient, practitioner, organisation, 3 prescriptions, composition, PDSm document reference
        foreach (var resource in claimed)
        {
            var run = ProfileFixture.Validate(resource!);
            Assert.False(run.HasErrors, $"{resource!.TypeName}: {ProfileFixture.Describe(run)}");
        }
        Assert.Contains("https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins", Of<Patient>(response)[0].Meta!.Profile);
    }

    [Fact]
    public async Task Importing_the_same_letter_again_creates_nothing()
    {
        var (document, id, nir) = Fresh("ldl-ses-level3.xml");
        var first = await ImportOkAsync(document);
        var second = await ImportOkAsync(document);

        Assert.All(second.Entry, e => Assert.StartsWith("200", e.Response!.Status));
        Assert.Equal(first.Entry.Select(e => e.Response!.Location), second.Entry.Select(e => e.Response!.Location));
        Assert.Equal(1, await CountAsync($"Composition?identifier=urn:oid:1.2.250.1.999.1.1|{id}"));
        Assert.Equal(1, await CountAsync($"DocumentReference?identifier=urn:oid:1.2.250.1.999.1.1|{id}"));
        Assert.Equal(3, await CountAsync("MedicationRequest?subject=Patient/" + Of<Patient>(first)[0].Id));
        Assert.Equal(1, await CountAsync($"Binary?_tag=https://fhirsortie.fr/fhir/CodeSystem/cda-import|1.2.250.1.999.1.1^{id}%23original"));
        Assert.Equal(1, await CountAsync($"Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|{nir}"));
        Assert.Equal(2, await CountAsync("Appointment?patient=Patient/" + Of<Patient>(first)[0].Id));
    }

    /// <summary>The same letter as a new CDA document of its set: new id, <paramref name="version"/>, buprenorphine at <paramref name="dose"/> mg.</summary>
    private static byte[] Version(byte[] document, string id, string newId, int version, int dose)
    {
        document = MappingSettings.Replace(document, $"<id root=\"1.2.250.1.999.1.1\" extension=\"{id}\"/>", $"<id root=\"1.2.250.1.999.1.1\" extension=\"{newId}\"/>");
        document = MappingSettings.Replace(document, "<versionNumber value=\"1\"/>", $"<versionNumber value=\"{version}\"/>");
        return MappingSettings.Replace(document, "<doseQuantity value=\"8\" unit=\"mg\"/>", $"<doseQuantity value=\"{dose}\" unit=\"mg\"/>");
    }

    private async Task<DocumentReference> ReadAsync(string reference) => await (await _fhir.GetAsync(reference)).ReadAs<DocumentReference>();

    private static string SetQuery(string id) =>
        $"DocumentReference?identifier=https://fhirsortie.fr/fhir/NamingSystem/cda-set-id|1.2.250.1.999.1.2^{id}-SET";

    [Fact]
    public async Task Corrected_letter_supersedes_the_version_it_replaces_and_corrects_its_prescriptions()
    {
        var (document, id, _) = Fresh("ldl-ses-level3.xml");
        var first = await ImportOkAsync(document);
        var v1 = Assert.Single(Of<DocumentReference>(first));
        var set = Assert.Single(v1.Identifier, i => i.System == "https://fhirsortie.fr/fhir/NamingSystem/cda-set-id");
        Assert.Equal($"1.2.250.1.999.1.2^{id}-SET", set.Value);
        Assert.Equal(1, set.GetExtensionValue<Integer>("https://fhirsortie.fr/fhir/StructureDefinition/cda-version-number").Value);
        var v1Composition = Assert.Single(Of<Composition>(first));

        var corrected = Version(document, id, id + "-v2", 2, 6);
        var second = await ImportOkAsync(corrected);

        // One transaction: the new version replaces the old one, which is superseded by a PATCH of the version read.
        var v2 = Of<DocumentReference>(second).Single(d => d.MasterIdentifier!.Value == id + "-v2");
        var relation = Assert.Single(v2.RelatesTo);
        Assert.Equal(DocumentRelationshipType.Replaces, relation.Code);
        Assert.Equal($"DocumentReference/{v1.Id}", relation.Target.Reference);
        var patched = second.Entry.Single(e => e.Resource is DocumentReference d && d.Id == v1.Id);
        Assert.StartsWith("200", patched.Response!.Status);
        Assert.Equal(DocumentReferenceStatus.Superseded, ((DocumentReference)patched.Resource!).Status);
        var v2Composition = Assert.Single(Of<Composition>(second), c => c.Identifier!.Value == id + "-v2");
        Assert.Equal($"Composition/{v1Composition.Id}", Assert.Single(v2Composition.RelatesTo).Target is ResourceReference r ? r.Reference : null);
        var notes = ((OperationOutcome)second.Entry.Single(e => e.Resource is DocumentReference d && d.Id == v2.Id).Response!.Outcome!).Issue;
        Assert.Contains(notes, n => n.Diagnostics!.Contains($"replaces DocumentReference/{v1.Id}", StringComparison.Ordinal));

        var old = await ReadAsync($"DocumentReference/{v1.Id}");
        Assert.Equal(DocumentReferenceStatus.Superseded, old.Status);
        Assert.Equal("2", old.Meta!.VersionId);
        Assert.Equal(v1.MasterIdentifier!.Value, old.MasterIdentifier!.Value); // only the status changed
        Assert.Equal(1, await CountAsync(SetQuery(id) + "&status=current"));
        Assert.Equal(2, await CountAsync(SetQuery(id)));

        // The prescription the corrected letter keeps under the same id takes its corrected dose (no duplicate).
        var patient = Of<Patient>(first)[0].Id;
        Assert.Equal(3, await CountAsync($"MedicationRequest?subject=Patient/{patient}&status=active"));
        // The one whose identifier came from the old document's id (no CDA entry id) is not in the new version: cancelled.
        var cancelled = Assert.Single(notes, n => n.Diagnostics!.StartsWith("MedicationRequest/", StringComparison.Ordinal) && n.Diagnostics.EndsWith("cancelled.", StringComparison.Ordinal));
        var oldOnly = Of<MedicationRequest>(first).Single(m => m.Identifier[0].System == "https://fhirsortie.fr/fhir/NamingSystem/cda-entry");
        Assert.Contains($"MedicationRequest/{oldOnly.Id} ", cancelled.Diagnostics);
        var stopped = await (await _fhir.GetAsync($"MedicationRequest/{oldOnly.Id}")).ReadAs<MedicationRequest>();
        Assert.Equal(MedicationRequest.MedicationrequestStatus.Cancelled, stopped.Status);
        Assert.Equal(4, await CountAsync("MedicationRequest?subject=Patient/" + patient));
        Assert.Equal(2, await CountAsync($"Appointment?patient=Patient/{patient}&status=booked,proposed"));
        var buprenorphine = Buprenorphine(second);
        Assert.Equal(6m, ((Quantity)buprenorphine.DosageInstruction[0].DoseAndRate[0].Dose!).Value);
        Assert.Equal(Buprenorphine(first).Id, buprenorphine.Id);

        // The corrected letter again: nothing is replaced or written a second time.
        var again = await ImportOkAsync(corrected);
        Assert.All(again.Entry, e => Assert.StartsWith("200", e.Response!.Status));
        Assert.Equal("2", (await ReadAsync($"DocumentReference/{v1.Id}")).Meta!.VersionId);
        Assert.Equal(2, await CountAsync(SetQuery(id)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Two_versions_sent_together_both_import_and_the_higher_one_is_the_only_current(bool firstStored)
    {
        // Two corrections of a stored version 1 both read it as current: the one that commits second finds it changed
        // (its If-Match PATCH fails) and looks again. Two versions of a letter not stored yet find nothing to PATCH:
        // without the set's check inside the transaction both became current; now the second one looks again too.
        var (low, high) = firstStored ? (2, 3) : (1, 2);
        for (var round = 0; round < 4; round++)
        {
            var (document, id, _) = Fresh("ldl-ses-level3.xml");
            if (firstStored) await ImportOkAsync(document);
            var imports = await Task.WhenAll(
                ImportAsync(Version(document, id, $"{id}-v{low}", low, 6)),
                ImportAsync(Version(document, id, $"{id}-v{high}", high, 4)));
            foreach (var response in imports) Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            var current = (await (await _fhir.GetAsync(SetQuery(id) + "&status=current")).ReadAs<Bundle>()).Entry.Select(e => (DocumentReference)e.Resource!).ToList();
            Assert.Equal($"{id}-v{high}", Assert.Single(current).MasterIdentifier!.Value);
            Assert.Equal(firstStored ? 3 : 2, await CountAsync(SetQuery(id)));
            Assert.Equal(firstStored ? 2 : 1, await CountAsync(SetQuery(id) + "&status=superseded"));
        }
    }

    [Fact]
    public async Task Another_organisation_does_not_supersede_a_letter_it_did_not_write()
    {
        var (document, id, _) = Fresh("ldl-ses-level3.xml");
        var first = await ImportOkAsync(document);
        var v1 = Assert.Single(Of<DocumentReference>(first));
        // The patient lets the other USMP (a transfer) see the letter and what it lists.
        var consent = FhirSortie.Tests.Consents.TestConsents.Permit(Of<Patient>(first)[0].Id!, "130000011",
            "Patient", "DocumentReference", "Composition", "MedicationRequest", "Appointment", "Binary");
        Assert.True((await _fhir.PostAsync("Consent", FhirHttp.Json(consent))).IsSuccessStatusCode);
        var other = gateway.Fhir(TestAuthenticationHandler.Describe("usmp-other", FhirSortie.Server.Security.ActorKind.Usmp, "130000011", "system/*.cruds"));

        // Its software numbers the entries its own way; the setId is the letter's.
        var theirs = MappingSettings.Replace(MappingSettings.Replace(Version(document, id, id + "-v2", 2, 6), id + "-RX-", id + "-B-RX-"), id + "-RDV-", id + "-B-RDV-");
        using var response = await other.PostAsync("DocumentReference/$import-cda", MappingSettings.CdaContent(theirs));

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var v2 = Assert.Single(Of<DocumentReference>(await response.ReadAs<Bundle>()));
        Assert.Empty(v2.RelatesTo);
        var kept = await ReadAsync($"DocumentReference/{v1.Id}");
        Assert.Equal(DocumentReferenceStatus.Current, kept.Status);
        Assert.Equal("1", kept.Meta!.VersionId);
    }

    [Fact]
    public async Task Older_version_arriving_late_is_stored_superseded_and_replaces_nothing()
    {
        var (document, id, _) = Fresh("ldl-ses-level3.xml");
        var v3 = Assert.Single(Of<DocumentReference>(await ImportOkAsync(Version(document, id, id + "-v3", 3, 8))));

        var late = await ImportOkAsync(Version(document, id, id + "-v2", 2, 6));

        var v2 = Assert.Single(Of<DocumentReference>(late));
        Assert.Equal(DocumentReferenceStatus.Superseded, v2.Status);
        Assert.Empty(v2.RelatesTo);
        var note = Assert.Single(((OperationOutcome)late.Entry.Single(e => e.Resource is DocumentReference).Response!.Outcome!).Issue,
            n => n.Diagnostics!.Contains("already current", StringComparison.Ordinal));
        Assert.Contains($"DocumentReference/{v3.Id}", note.Diagnostics);
        var current = await ReadAsync($"DocumentReference/{v3.Id}");
        Assert.Equal(DocumentReferenceStatus.Current, current.Status);
        Assert.Equal("1", current.Meta!.VersionId);
        // The late version's prescriptions were conditional creates: the current version's dose stays.
        var buprenorphine = Buprenorphine(late);
        Assert.Equal(8m, ((Quantity)buprenorphine.DosageInstruction[0].DoseAndRate[0].Dose!).Value);
        // Those the current version does not have are kept as the late version's record, cancelled.
        var patient = Of<Patient>(late)[0].Id;
        Assert.Equal(3, await CountAsync($"MedicationRequest?subject=Patient/{patient}&status=active"));
        Assert.Equal(1, await CountAsync($"MedicationRequest?subject=Patient/{patient}&status=cancelled"));
        Assert.Equal(2, await CountAsync($"Appointment?patient=Patient/{patient}&status=booked,proposed"));
    }

    [Fact]
    public async Task Level1_pdf_letter_gives_a_document_reference_to_the_original_and_the_pdf()
    {
        var response = await ImportOkAsync(Fresh("ldl-ses-level1-pdf.xml").Document);

        Assert.Empty(Of<Composition>(response));
        Assert.Empty(Of<MedicationRequest>(response));
        var reference = Assert.Single(Of<DocumentReference>(response));
        Assert.Equal("R", reference.SecurityLabel[0].Coding[0].Code);
        Assert.Equal(["text/xml", "application/pdf"], reference.Content.Select(c => c.Attachment.ContentType));
        Assert.Equal("urn:ihe:iti:xds-sd:pdf:2008", reference.Content[0].Format!.Code);
        var pdf = await (await _fhir.GetAsync(reference.Content[1].Attachment.Url)).ReadAs<Binary>();
        Assert.Equal("application/pdf", pdf.ContentType);
        Assert.StartsWith("%PDF-", Encoding.ASCII.GetString(pdf.Data!));
        Assert.Equal(pdf.Data!.Length, reference.Content[1].Attachment.SizeUnsignedInt);
        Assert.Equal("R", pdf.Meta!.Security[0].Code);
        Assert.Equal("TESTBERNARD", Assert.Single(Of<Patient>(response)).Name[0].Family);
    }

    [Fact]
    public async Task Letter_that_is_not_a_usable_LDL_SES_gets_422_naming_each_problem()
    {
        var response = await ImportAsync(MappingSettings.Cda("ldl-ses-malformed.xml"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var outcome = await response.ReadAs<OperationOutcome>();
        var paths = outcome.Issue.SelectMany(i => i.Expression).ToList();
        Assert.Contains("ClinicalDocument/code", paths);
        Assert.Contains("ClinicalDocument/effectiveTime", paths);
        Assert.Contains("ClinicalDocument/recordTarget/patientRole/patient/birthTime", paths);
        Assert.Contains("ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization", paths);
        Assert.All(outcome.Issue, i => Assert.Equal(OperationOutcome.IssueSeverity.Error, i.Severity));
        Assert.Equal(0, await CountAsync("Composition?identifier=urn:oid:1.2.250.1.999.1.1|LDL-2026-000789"));
    }

    [Theory]
    [InlineData("202")] // shorter than a year: was a 500 (found by fuzzing)
    [InlineData("20261399")] // no 13th month
    [InlineData("20261131")] // no 31 November
    [InlineData("2026112010000+0100")] // minutes cut short
    [InlineData("20261120250000+0100")] // no 25th hour
    public async Task Letter_with_an_impossible_date_gets_422_naming_it(string effectiveTime)
    {
        var letter = Encoding.UTF8.GetString(MappingSettings.Cda("ldl-ses-level3.xml")).Replace("<effectiveTime value=\"20261120100000+0100\"/>", $"<effectiveTime value=\"{effectiveTime}\"/>");
        var response = await ImportAsync(Encoding.UTF8.GetBytes(letter));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains((await response.ReadAs<OperationOutcome>()).Issue, i => i.Expression.Contains("ClinicalDocument/effectiveTime"));
    }

    [Fact]
    public async Task Letter_nested_deeper_than_128_levels_gets_400()
    {
        // The narrative's conversion recurses per level: a deep enough section text would overflow the stack.
        var nested = string.Concat(Enumerable.Repeat("<content>", 200)) + "x" + string.Concat(Enumerable.Repeat("</content>", 200));
        var letter = Encoding.UTF8.GetString(MappingSettings.Cda("ldl-ses-level3.xml"));
        var at = letter.IndexOf("<text>", StringComparison.Ordinal) + "<text>".Length;
        var response = await ImportAsync(Encoding.UTF8.GetBytes(letter[..at] + nested + letter[at..]));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("deeper than 128", (await response.ReadAs<OperationOutcome>()).Issue[0].Diagnostics);
    }

    [Fact]
    public async Task Document_that_is_not_well_formed_xml_gets_400()
    {
        var truncated = MappingSettings.Cda("ldl-ses-level3.xml")[..2000];
        var response = await ImportAsync(truncated);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var issue = Assert.Single((await response.ReadAs<OperationOutcome>()).Issue);
        Assert.Contains("not well-formed", issue.Diagnostics);
    }

    [Fact]
    public async Task Document_that_is_not_a_cda_gets_422()
    {
        var response = await ImportAsync(Encoding.UTF8.GetBytes("<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"x\"/></Patient>"), "application/xml");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("ClinicalDocument", Assert.Single((await response.ReadAs<OperationOutcome>()).Issue).Diagnostics);
    }

    [Fact]
    public async Task Doctype_with_an_external_entity_is_refused_before_anything_is_read()
    {
        var response = await ImportAsync(MappingSettings.Cda("ldl-ses-xxe.xml"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("root:", body);
        var issue = Assert.Single((await response.ReadAs<OperationOutcome>()).Issue);
        Assert.Equal(OperationOutcome.IssueType.Security, issue.Code);
        Assert.Contains("DOCTYPE", issue.Diagnostics);
    }

    [Fact]
    public async Task Document_above_the_size_limit_gets_413()
    {
        var document = MappingSettings.Cda("ldl-ses-level3.xml");
        var padding = new string('x', (int)MappingSettings.MaxCdaBytes);
        var large = MappingSettings.Replace(document, "Pas d'allergie connue.", "Pas d'allergie connue. " + padding);
        var response = await ImportAsync(large);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(OperationOutcome.IssueType.TooCostly, Assert.Single((await response.ReadAs<OperationOutcome>()).Issue).Code);
    }

    [Fact]
    public async Task Body_sent_as_fhir_json_gets_415()
    {
        var response = await ImportAsync(MappingSettings.Cda("ldl-ses-level3.xml"), "application/fhir+json");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task Medicine_with_a_local_code_and_no_map_gets_422_and_nothing_is_written()
    {
        var (fresh, id, _) = Fresh("ldl-ses-level3.xml");
        var document = MappingSettings.Replace(fresh,
            "<code code=\"V03AB15\" codeSystem=\"2.16.840.1.113883.6.73\" displayName=\"naloxone\"/>",
            "<code code=\"NALOX-LOCAL\" codeSystem=\"1.2.250.1.999.4.1\" displayName=\"naloxone (livret local)\"/>");
        var response = await ImportAsync(document);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var issue = Assert.Single((await response.ReadAs<OperationOutcome>()).Issue);
        Assert.Equal("ClinicalDocument/component/structuredBody/component[3]/section/entry[2]/substanceAdministration/consumable/manufacturedProduct/manufacturedMaterial/code", Assert.Single(issue.Expression));
        Assert.Equal(0, await CountAsync($"Composition?identifier=urn:oid:1.2.250.1.999.1.1|{id}"));
        Assert.Equal(0, await CountAsync($"DocumentReference?identifier=urn:oid:1.2.250.1.999.1.1|{id}"));
    }
}

public sealed class SqliteCdaImportTests(SqliteMappingGateway gateway) : CdaImportTests(gateway), IClassFixture<SqliteMappingGateway>;

public sealed class PostgresCdaImportTests(PostgresMappingGateway gateway) : CdaImportTests(gateway), IClassFixture<PostgresMappingGateway>;
