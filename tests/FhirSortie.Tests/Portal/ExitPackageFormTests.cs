using FhirSortie.Server.Portal;
using FhirSortie.Tests.Profiles;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using FhirTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Tests.Portal;

/// <summary>
/// The exit-package form's pure parts (issue 22, USMP view): the transaction it builds (the shape of
/// conformance/scenarios/exit-package-transaction.json, valid against our profiles, conditional on identifiers so that
/// nothing duplicates), the checks of what cannot be written at all, and the gateway's issues put back on the fields.
/// </summary>
public sealed class ExitPackageFormTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);
    private const string Key = "0123456789abcdef01234567";

    private static ExitPackageForm Full() => new()
    {
        Key = Key,
        Entry = "02/03/2026",
        Release = "10/12/2026",
        ReleaseTime = "09:30",
        ExitKind = "fin-de-peine",
        Prescriptions =
        [
            new PrescriptionLine(1, "N07BC01", "", "8", "mg", "1", "28", "7", "7"),
            new PrescriptionLine(2, "V03AB15", "", "1,8", "mg", "besoin", "30", "", ""),
            new PrescriptionLine(3, "", "", "", "mg", "1", "", "", ""),
        ],
        Naloxone = "oui",
        LetterText = "Lettre de liaison (fictive).",
        Organization = "csapa-a",
        ReferralType = "addiction-followup",
        ReferralReason = "Relais du TSO",
        AppointmentDate = "11/12/2026",
        AppointmentTime = "14h",
        AppointmentPlace = "CSAPA Les Tilleuls, 12 rue de l'Exemple",
    };

    private static ExitPackageContext Context() =>
        new("patient-1", "usmp-org", "750000010", "usmp-medecin", Now) { ReceiverId = "csapa-a", ReceiverName = "CSAPA Les Tilleuls" };

    private static T Entry<T>(Bundle bundle) where T : Resource => bundle.Entry.Select(e => e.Resource).OfType<T>().Single();

    [Fact]
    public void A_full_form_builds_the_USMP_transaction_with_a_DetentionStay_a_bridging_supply_and_a_handoff()
    {
        var built = ExitPackageTransaction.Build(Full(), Context());
        var bundle = built.Bundle;

        Assert.Equal(Bundle.BundleType.Transaction, bundle.Type);
        Assert.Equal(["sejour", "med1", "med2", "naloxone", "lettre", "adressage", "relais", "rdv-lieu", "rdv"], built.Fields);
        var stay = Entry<Encounter>(bundle);
        Assert.Contains(ExitPackageTransaction.StayProfile, stay.Meta!.Profile);
        Assert.Equal("2026-12-10T09:30:00+01:00", stay.Period!.End); // Paris, winter
        Assert.Equal("2026-03-02", stay.Period!.Start);
        Assert.Equal(Encounter.EncounterStatus.InProgress, stay.Status);
        Assert.Equal("fin-de-peine", stay.Hospitalization!.DischargeDisposition!.Coding.Single().Code);
        Assert.Equal("complete", stay.Meta!.Tag.Single(t => t.System == ExitPackageTransaction.PackageStatus).Code);
        Assert.Equal($"Encounter?identifier=https://fhirsortie.fr/portail/750000010/sejour|{Key}", bundle.Entry[0].Request!.Url);

        var bup = bundle.Entry[1].Resource as MedicationRequest;
        Assert.Equal("Practitioner/usmp-medecin", bup!.Requester!.Reference);
        Assert.Equal(7, PortalData.BridgingDays(bup));
        Assert.Equal(8m, ((Quantity)bup.DosageInstruction[0].DoseAndRate[0].Dose!).Value);
        Assert.Equal(bundle.Entry[0].FullUrl, bup.Encounter!.Reference);
        var dispense = Entry<MedicationDispense>(bundle);
        Assert.Equal(bundle.Entry[2].FullUrl, dispense.AuthorizingPrescription.Single().Reference);

        var task = Entry<FhirTask>(bundle);
        Assert.Equal(FhirTask.TaskStatus.Requested, task.Status);
        Assert.Equal("Organization/csapa-a", task.Owner!.Reference);
        Assert.Equal("Organization/usmp-org", task.Requester!.Reference);
        Assert.Equal(Bundle.HTTPVerb.POST, bundle.Entry[6].Request!.Method);
        Assert.Equal($"identifier=https://fhirsortie.fr/portail/750000010/relais|{Key}", bundle.Entry[6].Request!.IfNoneExist);
        var appointment = Entry<Appointment>(bundle);
        Assert.Equal(new DateTimeOffset(2026, 12, 11, 14, 0, 0, TimeSpan.FromHours(1)), appointment.Start);
        Assert.Equal(bundle.Entry[5].FullUrl, appointment.BasedOn.Single().Reference);
    }

    [Fact]
    public void Every_resource_the_form_builds_validates_against_the_profiles_it_claims()
    {
        var pdf = Full();
        pdf.LetterText = "";
        pdf.LetterPdf = "%PDF-1.4\n%%EOF\n"u8.ToArray();
        pdf.LetterPdfName = "lettre.pdf";
        foreach (var form in new[] { Full(), pdf })
            foreach (var resource in ExitPackageTransaction.Build(form, Context()).Bundle.Entry.Select(e => e.Resource!).Where(r => r.Meta?.Profile.Any() == true))
            {
                var run = ProfileFixture.Validate(resource);
                Assert.False(run.HasErrors, resource.TypeName + ": " + ProfileFixture.Describe(run));
            }
    }

    [Fact]
    public void A_bridging_supply_of_0_days_is_written_as_typed_so_the_profile_refuses_it()
    {
        var form = Full();
        form.Prescriptions[0] = form.Prescriptions[0] with { BridgingDays = "0" };
        var errors = new Dictionary<string, string>();
        form.Check(errors, newStay: true, referralExists: false, appointmentExists: false);
        Assert.Empty(errors);

        var prescription = (MedicationRequest)ExitPackageTransaction.Build(form, Context()).Bundle.Entry[1].Resource!;
        var run = ProfileFixture.Validate(prescription);
        var issue = Assert.Single(run.Issues, i => i.Severity == OperationOutcome.IssueSeverity.Error);
        var field = Assert.Single(ExitPackageErrors.FromValidation("med1", new OperationOutcome { Issue = [issue] }));
        Assert.Equal("med1-depannage", field.Field);
        Assert.Equal("Le dépannage doit couvrir au moins 1 jour (0 jour n'est pas un dépannage).", field.Message);
    }

    [Fact]
    public void Submitting_the_same_form_twice_names_the_same_resources()
    {
        var first = ExitPackageTransaction.Build(Full(), Context()).Bundle;
        var second = ExitPackageTransaction.Build(Full(), Context()).Bundle;
        Assert.Equal(first.Entry.Select(e => e.Request!.Url + e.Request!.IfNoneExist), second.Entry.Select(e => e.Request!.Url + e.Request!.IfNoneExist));
        Assert.All(first.Entry, e => Assert.True(e.Request!.Url!.Contains("?identifier=", StringComparison.Ordinal) || e.Request!.IfNoneExist is not null, e.Request!.Url));
    }

    [Fact]
    public void Completing_updates_the_existing_stay_in_place_and_adds_only_what_is_missing()
    {
        var existing = new Encounter
        {
            Id = "stay-1",
            Identifier = [new Identifier("https://usmp.example/sejour", "SEJ-9")],
            Status = Encounter.EncounterStatus.Finished,
            Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
            Subject = new ResourceReference("Patient/patient-1"),
            ServiceProvider = new ResourceReference("Organization/usmp-org"),
            Period = new Period { Start = "2026-09-01T08:00:00+02:00", End = "2026-12-06T16:00:00+00:00" },
            Hospitalization = new Encounter.HospitalizationComponent { DischargeDisposition = new CodeableConcept { Text = "Sortie sèche" } },
        };
        var referral = new ServiceRequest { Id = "ref-1", Performer = [new ResourceReference("Organization/csapa-a")] };
        var context = Context() with { ReceiverId = null, Stay = existing, StayVersion = "W/\"2\"", Referral = referral, HasPrescription = true };
        var form = new ExitPackageForm
        {
            Key = Key, Entry = "01/09/2026", Release = "06/12/2026", ReleaseTime = "17:00", Released = true, ExitKind = "fin-de-peine",
            AppointmentDate = "09/12/2026", AppointmentTime = "10:30", AppointmentPlace = "CSAPA",
        };

        var built = ExitPackageTransaction.Build(form, context);

        Assert.Equal(["sejour", "rdv-lieu", "rdv"], built.Fields);
        var stayEntry = built.Bundle.Entry[0];
        Assert.Equal("Encounter/stay-1", stayEntry.Request!.Url);
        Assert.Equal("W/\"2\"", stayEntry.Request!.IfMatch);
        var stay = (Encounter)stayEntry.Resource!;
        Assert.Equal("SEJ-9", stay.Identifier.Single().Value);
        Assert.Equal("2026-09-01T08:00:00+02:00", stay.Period!.Start); // the date shown was not changed
        Assert.Equal("Sortie sèche", stay.Hospitalization!.DischargeDisposition!.Text);
        Assert.Equal("fin-de-peine", stay.Hospitalization!.DischargeDisposition!.Coding.Single().Code);
        Assert.Equal("incomplete", stay.Meta!.Tag.Single().Code); // still no letter
        Assert.Null(existing.Meta); // the stay read is not changed under the caller
        Assert.Equal("ServiceRequest/ref-1", Entry<Appointment>(built.Bundle).BasedOn.Single().Reference);
        var run = ProfileFixture.Validate(stay);
        Assert.False(run.HasErrors, ProfileFixture.Describe(run));
    }

    [Fact]
    public void The_form_says_in_French_what_cannot_be_written_at_all()
    {
        var form = Full();
        form.Release = "";
        form.Prescriptions[0] = form.Prescriptions[0] with { Dose = "huit" };
        form.Prescriptions[1] = form.Prescriptions[1] with { Medication = ExitPackageForm.OtherMedication, Atc = "J05" };
        form.AppointmentTime = "25:00";
        var errors = new Dictionary<string, string>();

        form.Check(errors, newStay: true, referralExists: false, appointmentExists: false);

        Assert.Equal("Indiquez la date de sortie, prévue ou effective (jj/mm/aaaa).", errors["sortie"]);
        Assert.Equal("Dose invalide : un nombre positif, par exemple 8 ou 0,5.", errors["med1-dose"]);
        Assert.Equal("Code ATC invalide : 7 caractères, par exemple N07BC01.", errors["med2-atc"]);
        Assert.Equal("Heure invalide : écrivez-la hh:mm, par exemple 14:30.", errors["rdv-heure"]);
        Assert.Equal(4, errors.Count);
    }

    [Theory]
    [InlineData("Encounter.hospitalization.dischargeDisposition", "Encounter.hospitalization.dischargeDisposition: no code given; a code from https://fhirsortie.fr/fhir/ValueSet/exit-kinds is required", "sejour", "type-sortie", "Choisissez une valeur dans la liste.")]
    [InlineData("ServiceRequest", "fs-ref-1: The referral gives its reason, coded or by reference (profile https://fhirsortie.fr/fhir/StructureDefinition/ExitReferral)", "adressage", "adressage-motif", "Indiquez le motif de l'adressage.")]
    [InlineData("MedicationRequest.dosageInstruction", "fs-mr-1: A dosage instruction says something (profile https://interop.esante.gouv.fr/ig/fhir/eprescription/StructureDefinition/fr-medicationrequest)", "med2", "med2-dose", "Indiquez la posologie.")]
    [InlineData("MedicationRequest.medication", "fs-exit-1: The medicine is coded in ATC (profile https://fhirsortie.fr/fhir/StructureDefinition/ExitPrescription)", "med3", "med3", "Le médicament doit être codé en ATC.")]
    public void A_validation_issue_lands_on_its_field_in_French(string expression, string diagnostics, string entry, string field, string message)
    {
        var outcome = new OperationOutcome { Issue = [new OperationOutcome.IssueComponent { Severity = OperationOutcome.IssueSeverity.Error, Code = OperationOutcome.IssueType.Invariant, Diagnostics = diagnostics, Expression = [expression] }] };
        var error = Assert.Single(ExitPackageErrors.FromValidation(entry, outcome));
        Assert.Equal(field, error.Field);
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void A_refused_transaction_is_mapped_through_the_entry_it_names()
    {
        var outcome = new OperationOutcome
        {
            Issue =
            [
                new() { Severity = OperationOutcome.IssueSeverity.Error, Code = OperationOutcome.IssueType.Invariant, Expression = ["Bundle.entry[2]"],
                    Diagnostics = "Entry 2 (PUT MedicationRequest): fs-bridging-1: A bridging supply covers a positive number of days" },
                new() { Severity = OperationOutcome.IssueSeverity.Error, Code = OperationOutcome.IssueType.Forbidden, Expression = ["Bundle.entry[9]"], Diagnostics = "no" },
                new() { Severity = OperationOutcome.IssueSeverity.Warning, Code = OperationOutcome.IssueType.Informational, Expression = ["Bundle.entry[0]"], Diagnostics = "just so you know" },
            ],
        };
        var errors = ExitPackageErrors.FromTransaction(["sejour", "med1", "med2"], outcome).ToList();
        Assert.Equal(2, errors.Count);
        Assert.Equal("med2-depannage", errors[0].Field);
        Assert.Equal("", errors[1].Field); // an entry the form did not build: a general error, in French
        Assert.Equal("La passerelle refuse cet enregistrement (droits ou consentement).", errors[1].Message);
    }

    [Fact]
    public void The_portal_sends_an_attachment_size_as_an_R4_unsignedInt()
    {
        var form = Full();
        var letter = ExitPackageTransaction.Build(form, Context()).Bundle.Entry.Select(e => e.Resource).OfType<DocumentReference>().Single();
        var json = PortalApi.Serialize(letter);
        Assert.True(json.Contains($"\"size\":{form.LetterText.Length},", StringComparison.Ordinal), json);
        // And the gateway's strict parser reads it back.
        var parsed = (DocumentReference)new FhirJsonDeserializer(new DeserializerSettings()).DeserializeResource(json);
        Assert.Equal(form.LetterText.Length, ((UnsignedInt)parsed.Content[0].Attachment!.SizeElement!).Value);
    }
}
