using System.Globalization;
using System.Text;
using FhirSortie.Server.Consents;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Demo;

/// <summary>One fictitious exit package: a transaction Bundle of conditional creates, and what happens after it.</summary>
/// <param name="Name">Short name used in the command's output and the tests.</param>
/// <param name="Ins">The patient's demo INS (identifier value on <see cref="DemoIdentifiers.InsDemo"/>).</param>
public sealed record DemoPackage(string Name, string Ins, string Summary, Bundle Transaction)
{
    /// <summary>Local identifier values of Consents the patient withdraws after the package is posted (status → inactive).</summary>
    public IReadOnlyList<string> Withdrawals { get; init; } = [];
}

/// <summary>
/// The demo data set (issue 6 §1): six FICTITIOUS people leaving prison, one exit package each, every resource a
/// conditional create on a business identifier so that seeding twice changes nothing. All the shapes live here, in
/// one place: when the exit-package profiles change, this is the file to adapt. Dates are relative to the first
/// seeding (a planned release in two days, an appointment after it...), so the data stays meaningful whenever it is
/// loaded; a re-run matches what is there and does not move them.
/// </summary>
public static class DemoPackages
{
    // The organisations of the demo clients (Security/DemoClients.cs) and two more that have no client.
    public const string UsmpFiness = "750000010";
    public const string CsapaAFiness = "750000028";
    public const string CsapaBFiness = "930000039";
    public const string ActFiness = "750000044";
    public const string TelemedicineFiness = "750000051";
    public static readonly string CmpFiness = DemoIdentifiers.WithLuhnKey("75000009");
    public static readonly string OtherPrisonFiness = DemoIdentifiers.WithLuhnKey("91000012");

    /// <summary>The patient of the walkthrough and of the telemedicine scenario (planned exit, TSO, CSAPA A).</summary>
    public static readonly string PlannedExitIns = DemoIdentifiers.Nir("1860375056123");

    /// <summary>The patient whose attendance attestation the SPIP may read (ACT admission).</summary>
    public static readonly string ActAdmissionIns = DemoIdentifiers.Nir("1790213055042");

    public const string LiaisonLetterLoinc = "11490-0";

    /// <summary>Dr Camille Exemple, the USMP's doctor in every package, is the portal's demo user usmp-medecin.</summary>
    public const string UsmpDoctorRpps = "1000000101";
    public const string UsmpDoctorId = "usmp-medecin";

    public static IReadOnlyList<DemoPackage> All(DateTimeOffset now)
    {
        var today = now.UtcDateTime.Date;
        return
        [
            PlannedExit(today),
            PsychiatricFollowUp(today),
            ActAdmission(today),
            UnannouncedRelease(today),
            Transfer(today),
            WithdrawnConsent(today),
        ];
    }

    /// <summary>Scenario 1: planned exit, TSO buprenorphine + 7-day bridging supply + naloxone + HCV treatment, CSAPA A named for 6 months.</summary>
    private static DemoPackage PlannedExit(DateTime today)
    {
        var b = new PackageBuilder("P1");
        var release = today.AddDays(2).AddHours(9);
        var usmp = b.Organization(UsmpFiness, "USMP de la maison d'arrêt (demo)", "Unité sanitaire en milieu pénitentiaire");
        var csapa = b.Organization(CsapaAFiness, "CSAPA Les Tilleuls (demo)", "Centre de soins, d'accompagnement et de prévention en addictologie", "+33 1 00 00 00 28");
        b.Organization(TelemedicineFiness, "Téléconsultation (demo)", "Module de téléconsultation");
        var doctor = b.Practitioner("1000000101", "Exemple", "Camille");
        var csapaDoctor = b.Practitioner("1000000102", "Modèle", "Inès");
        var csapaRole = b.Role("ROLE-CSAPA-A-1", csapaDoctor, csapa, "Médecin addictologue", "+33 1 00 00 00 29");
        var csapaPlace = b.Location("LOC-CSAPA-A", "CSAPA Les Tilleuls, 12 rue de l'Exemple, 75011 Paris", csapa);
        var patient = b.Patient(PlannedExitIns, "Fictif", "Aubin", AdministrativeGender.Male, "1986-03-12", usmp);
        var stay = b.Encounter("SEJ-P1", patient, usmp, doctor, today.AddMonths(-9), release, Encounter.EncounterStatus.InProgress, null);

        b.Condition("COND-P1-OUD", patient, "F11.2", "Troubles mentaux et du comportement liés à l'utilisation d'opiacés : syndrome de dépendance", today.AddYears(-6));
        b.Condition("COND-P1-HCV", patient, "B18.2", "Hépatite virale chronique C", today.AddMonths(-4));
        b.Allergy("ALG-P1-PENI", patient, "Pénicillines", "Urticaire généralisée");

        var tso = b.Prescription("ORD-P1-BUP", patient, stay, doctor, "N07BC01", "buprénorphine", "8 mg par voie sublinguale une fois par jour",
            today, release, supplyDays: 28, quantity: 28);
        b.Prescription("ORD-P1-BUP-DEP", patient, stay, doctor, "N07BC01", "buprénorphine",
            "Dépannage : 8 mg par voie sublinguale une fois par jour, 7 jours, en attendant le relais au CSAPA", today, release, supplyDays: 7, quantity: 7);
        var naloxone = b.Prescription("ORD-P1-NAL", patient, stay, doctor, "V03AB15", "naloxone", "1,8 mg par voie nasale en cas de surdosage opioïde",
            today, release, supplyDays: null, quantity: 2);
        b.Prescription("ORD-P1-VHC", patient, stay, doctor, "J05AP55", "sofosbuvir et velpatasvir", "1 comprimé par jour pendant 12 semaines (semaine 6 sur 12 à la sortie)",
            today, release, supplyDays: 42, quantity: 42);
        b.Dispense("DISP-P1-NAL", patient, naloxone, "V03AB15", "naloxone", release, "Kit de naloxone remis à la sortie avec explication du geste");
        b.Administration("ADM-P1-BUP", patient, tso, "N07BC01", "buprénorphine", today.AddHours(8), "Dernière prise supervisée : 8 mg");

        var referral = b.Referral("ADR-P1-CSAPA", patient, stay, doctor, csapa, "Relais du traitement de substitution et du traitement VHC au CSAPA", release);
        b.Handoff("TCH-P1-CSAPA", patient, referral, doctor, csapa, "Prise en charge à la sortie : relais TSO sous 24 h");
        var appointment = b.Appointment("RDV-P1-CSAPA", patient, csapaPlace, csapaRole, release.AddDays(1).AddHours(5), Appointment.AppointmentStatus.Booked,
            "Premier rendez-vous au CSAPA (relais TSO)");
        var team = b.CareTeam("EQ-P1", patient, usmp, [doctor, csapaRole, csapa]);
        b.CarePlan("PDS-P1", patient, stay, usmp, team, release, [referral, tso, appointment], "Projet de soins de sortie : TSO, VHC, réduction des risques");
        b.Letter("LL-P1", patient, stay, doctor, usmp, today,
            "Lettre de liaison de sortie (fictive). Traitement de substitution par buprénorphine 8 mg/j, dépannage 7 jours remis. "
            + "Traitement VHC en cours (semaine 6/12). Kit de naloxone remis. Relais au CSAPA Les Tilleuls.");
        b.Consent("CST-P1-CSAPA", patient, usmp, CsapaAFiness, today, today.AddMonths(6),
            ["Patient", "MedicationRequest", "MedicationDispense", "MedicationAdministration", "CarePlan", "DocumentReference", "Appointment", "Condition", "AllergyIntolerance", "CareTeam", "Task", "ServiceRequest"],
            [], "Partage avec le CSAPA Les Tilleuls pour la continuité des soins, 6 mois");
        b.Consent("CST-P1-TLM", patient, usmp, TelemedicineFiness, today, today.AddMonths(6),
            ["Patient", "MedicationRequest", "CarePlan", "DocumentReference", "Appointment", "Condition", "AllergyIntolerance", "CareTeam"],
            [], "Téléconsultation depuis l'unité sanitaire");
        return new DemoPackage("planned-exit", PlannedExitIns, "planned exit, TSO + 7-day bridging + naloxone + HCV, consent to CSAPA A (6 months) and telemedicine", b.Bundle);
    }

    /// <summary>Psychiatric follow-up at a CMP; the condition and the antipsychotic are labelled PSY; the consent names no label, so it covers every resource of its classes (FHIR), PSY included.</summary>
    private static DemoPackage PsychiatricFollowUp(DateTime today)
    {
        var b = new PackageBuilder("P2");
        var release = today.AddDays(5).AddHours(10);
        var ins = DemoIdentifiers.Nir("2910769123077");
        var usmp = b.Organization(UsmpFiness, "USMP de la maison d'arrêt (demo)", "Unité sanitaire en milieu pénitentiaire");
        var cmp = b.Organization(CmpFiness, "CMP du secteur 11 (demo)", "Centre médico-psychologique");
        var psychiatrist = b.Practitioner("1000000103", "Spécimen", "Paul");
        var cmpPlace = b.Location("LOC-CMP", "CMP du secteur 11, 3 place de l'Essai, 75011 Paris", cmp);
        var patient = b.Patient(ins, "Exemple", "Léa", AdministrativeGender.Female, "1991-07-05", usmp);
        var stay = b.Encounter("SEJ-P2", patient, usmp, psychiatrist, today.AddMonths(-14), release, Encounter.EncounterStatus.InProgress, null);
        b.Condition("COND-P2-DEP", patient, "F32.1", "Épisode dépressif moyen", today.AddMonths(-10));
        var treatment = b.Prescription("ORD-P2-ARI", patient, stay, psychiatrist, "N05AX12", "aripiprazole", "10 mg le matin",
            today, release, supplyDays: 28, quantity: 28);
        var referral = b.Referral("ADR-P2-CMP", patient, stay, psychiatrist, cmp, "Suivi psychiatrique de secteur après la sortie", release);
        b.Handoff("TCH-P2-CMP", patient, referral, psychiatrist, cmp, "Prise en charge psychiatrique à la sortie");
        var appointment = b.Appointment("RDV-P2-CMP", patient, cmpPlace, null, release.AddDays(3).AddHours(4), Appointment.AppointmentStatus.Booked, "Consultation au CMP");
        var team = b.CareTeam("EQ-P2", patient, usmp, [psychiatrist, cmp]);
        b.CarePlan("PDS-P2", patient, stay, usmp, team, release, [referral, treatment, appointment], "Projet de soins de sortie : suivi psychiatrique");
        b.Consent("CST-P2-CMP", patient, usmp, CmpFiness, today, today.AddMonths(6),
            ["Patient", "MedicationRequest", "CarePlan", "Appointment", "Condition"], [], "Partage avec le CMP du secteur, 6 mois");
        return new DemoPackage("psychiatric-follow-up", ins, "psychiatric follow-up at a CMP (PSY labelled), consent without labels covers them", b.Bundle);
    }

    /// <summary>ACT admission with HIV treatment; released a week ago, first appointment honoured, attendance attestation for the SPIP.</summary>
    private static DemoPackage ActAdmission(DateTime today)
    {
        var b = new PackageBuilder("P3");
        var release = today.AddDays(-7).AddHours(9);
        var usmp = b.Organization(UsmpFiness, "USMP de la maison d'arrêt (demo)", "Unité sanitaire en milieu pénitentiaire");
        var act = b.Organization(ActFiness, "ACT Horizon (demo)", "Appartements de coordination thérapeutique");
        var doctor = b.Practitioner("1000000101", "Exemple", "Camille");
        var actPlace = b.Location("LOC-ACT", "ACT Horizon, 8 avenue du Modèle, 75020 Paris", act);
        var patient = b.Patient(ActAdmissionIns, "Modèle", "Karim", AdministrativeGender.Male, "1979-02-13", usmp);
        var stay = b.Encounter("SEJ-P3", patient, usmp, doctor, today.AddYears(-2), release, Encounter.EncounterStatus.Finished, null);
        b.Condition("COND-P3-HIV", patient, "B20", "Maladie due au VIH", today.AddYears(-8));
        var arv = b.Prescription("ORD-P3-ARV", patient, stay, doctor, "J05AR20", "bictégravir, emtricitabine et ténofovir alafénamide", "1 comprimé par jour",
            today.AddDays(-8), release, supplyDays: 30, quantity: 30);
        var referral = b.Referral("ADR-P3-ACT", patient, stay, doctor, act, "Admission en appartement de coordination thérapeutique", release);
        b.Handoff("TCH-P3-ACT", patient, referral, doctor, act, "Admission à l'ACT Horizon");
        var first = b.Appointment("RDV-P3-ACT-1", patient, actPlace, null, release.AddDays(1).AddHours(1), Appointment.AppointmentStatus.Fulfilled, "Entretien d'admission à l'ACT");
        b.Appointment("RDV-P3-ACT-2", patient, actPlace, null, today.AddDays(14).AddHours(10), Appointment.AppointmentStatus.Booked, "Rendez-vous de coordination à l'ACT");
        b.Attestation("ATT-P3-ACT-1", patient, act, first, release.AddDays(1).AddHours(2),
            "L'ACT Horizon atteste que la personne s'est présentée au rendez-vous prévu (attestation de présence, sans information médicale).");
        var team = b.CareTeam("EQ-P3", patient, usmp, [doctor, act]);
        b.CarePlan("PDS-P3", patient, stay, usmp, team, release, [referral, arv, first], "Projet de soins de sortie : ACT, traitement antirétroviral");
        b.Consent("CST-P3-ACT", patient, usmp, ActFiness, today.AddDays(-8), today.AddMonths(6),
            ["Patient", "MedicationRequest", "CarePlan", "Appointment", "Condition", "DocumentReference", "Task", "ServiceRequest"], [], "Partage avec l'ACT Horizon (volet médical du dossier d'admission)");
        return new DemoPackage("act-admission", ActAdmissionIns, "ACT admission with HIV treatment (HIV labelled, consent to ACT), an honoured appointment and its attendance attestation", b.Bundle);
    }

    /// <summary>Scenario 3: released without notice yesterday; a reduced package, no consent yet, a Task asks the référent to collect it.</summary>
    private static DemoPackage UnannouncedRelease(DateTime today)
    {
        var b = new PackageBuilder("P4");
        var release = today.AddDays(-1).AddHours(16);
        var ins = DemoIdentifiers.Nir("1950693088014");
        var usmp = b.Organization(UsmpFiness, "USMP de la maison d'arrêt (demo)", "Unité sanitaire en milieu pénitentiaire");
        var csapa = b.Organization(CsapaAFiness, "CSAPA Les Tilleuls (demo)", "Centre de soins, d'accompagnement et de prévention en addictologie", "+33 1 00 00 00 28");
        var doctor = b.Practitioner("1000000101", "Exemple", "Camille");
        var patient = b.Patient(ins, "Essai", "Yanis", AdministrativeGender.Male, "1995-06-21", usmp);
        var stay = b.Encounter("SEJ-P4", patient, usmp, doctor, today.AddMonths(-3), release, Encounter.EncounterStatus.Finished,
            "Libération non annoncée (sortie sèche), connue de l'unité sanitaire le lendemain");
        b.Prescription("ORD-P4-MET", patient, stay, doctor, "N07BC02", "méthadone", "60 mg par jour en une prise", today, release, supplyDays: 7, quantity: 7);
        b.Task("TCH-P4-CONSENT", patient, stay, doctor, csapa, "Recueillir le consentement de la personne au partage avec les structures qui la suivront (package incomplet)",
            ConsentAuthority.CollectConsentCode, today.AddDays(-1), today.AddDays(3));
        // The référent must know whom to contact: the USMP (the care team) records the person's agreement to be put in touch
        // with the CSAPA référent, which lets it see the person's identity and this Task only, nothing clinical.
        b.Consent("CST-P4-CONTACT", patient, usmp, CsapaAFiness, today.AddDays(-1), today.AddMonths(1), ["Patient", "Task"], [],
            "Mise en relation avec le CSAPA référent pour recueillir le consentement (identité et demande uniquement)");
        return new DemoPackage("unannounced-release", ins, "unannounced release: reduced package, no sharing consent (only contact with the référent), a collect-consent Task for the référent", b.Bundle);
    }

    /// <summary>Transfer to another prison: the stay ends with a destination; the receiving USMP is named by a consent and owns the hand-off.</summary>
    private static DemoPackage Transfer(DateTime today)
    {
        var b = new PackageBuilder("P5");
        var transfer = today.AddDays(-2).AddHours(7);
        var ins = DemoIdentifiers.Nir("1881099350011");
        var usmp = b.Organization(UsmpFiness, "USMP de la maison d'arrêt (demo)", "Unité sanitaire en milieu pénitentiaire");
        var other = b.Organization(OtherPrisonFiness, "USMP du centre de détention (demo)", "Unité sanitaire en milieu pénitentiaire");
        var doctor = b.Practitioner("1000000101", "Exemple", "Camille");
        var patient = b.Patient(ins, "Prototype", "Théo", AdministrativeGender.Male, "1988-10-30", usmp);
        var stay = b.Encounter("SEJ-P5", patient, usmp, doctor, today.AddMonths(-5), transfer, Encounter.EncounterStatus.Finished,
            "Transfèrement vers un autre établissement pénitentiaire", other);
        b.Condition("COND-P5-TB", patient, "A15.0", "Tuberculose pulmonaire, confirmée", today.AddMonths(-2));
        b.Prescription("ORD-P5-TB", patient, stay, doctor, "J04AM02", "rifampicine et isoniazide", "4 comprimés le matin à jeun, 4 mois restants",
            today.AddDays(-3), transfer, supplyDays: 14, quantity: 56);
        var referral = b.Referral("ADR-P5-USMP", patient, stay, doctor, other, "Poursuite du traitement antituberculeux après transfèrement", transfer);
        b.Handoff("TCH-P5-USMP", patient, referral, doctor, other, "Reprise du suivi par l'unité sanitaire d'arrivée");
        b.Consent("CST-P5-USMP", patient, usmp, OtherPrisonFiness, today.AddDays(-3), today.AddMonths(6),
            ["Patient", "MedicationRequest", "Condition", "Encounter"], [], "Partage avec l'unité sanitaire de l'établissement d'arrivée");
        return new DemoPackage("transfer", ins, "transfer to another prison: encounter destination, hand-off to the receiving USMP", b.Bundle);
    }

    /// <summary>Scenario 5: consent to CSAPA B given, then withdrawn by the person (the seeder sets it inactive after posting).</summary>
    private static DemoPackage WithdrawnConsent(DateTime today)
    {
        var b = new PackageBuilder("P6");
        var release = today.AddDays(-30).AddHours(9);
        var ins = DemoIdentifiers.Nir("2840513055099");
        var usmp = b.Organization(UsmpFiness, "USMP de la maison d'arrêt (demo)", "Unité sanitaire en milieu pénitentiaire");
        var csapaB = b.Organization(CsapaBFiness, "CSAPA Bastide (demo)", "Centre de soins, d'accompagnement et de prévention en addictologie");
        var doctor = b.Practitioner("1000000101", "Exemple", "Camille");
        var patient = b.Patient(ins, "Spécimen", "Marie", AdministrativeGender.Female, "1984-05-13", usmp);
        var stay = b.Encounter("SEJ-P6", patient, usmp, doctor, today.AddYears(-1), release, Encounter.EncounterStatus.Finished, null);
        b.Prescription("ORD-P6-BNX", patient, stay, doctor, "N07BC51", "buprénorphine et naloxone", "8 mg/2 mg par voie sublinguale une fois par jour",
            today.AddDays(-31), release, supplyDays: 28, quantity: 28);
        b.Consent("CST-P6-CSAPAB", patient, usmp, CsapaBFiness, today.AddDays(-31), today.AddMonths(5),
            ["Patient", "MedicationRequest"], [], "Partage avec le CSAPA Bastide (retiré par la personne au 30e jour)");
        return new DemoPackage("withdrawn-consent", ins, "consent to CSAPA B, withdrawn by the person", b.Bundle) { Withdrawals = ["CST-P6-CSAPAB"] };
    }

    /// <summary>
    /// One person of a crowd, for the portal's page timings (bench/portal-timings.sh, issue 22): leaving the USMP in 1 to 13
    /// days with a TSO exit prescription, a bridging supply, a letter and a care plan; with <paramref name="handoff"/>
    /// also a referral, a hand-off Task and a consent to CSAPA A (what its inbox lists). Number <paramref name="n"/> below 100,000.
    /// </summary>
    public static DemoPackage Crowd(int n, DateTimeOffset now, bool handoff)
    {
        var today = now.UtcDateTime.Date;
        var key = "F" + n.ToString("D5", CultureInfo.InvariantCulture);
        var b = new PackageBuilder(key);
        var release = today.AddDays(1 + n % 13).AddHours(9);
        // Sex 1, born 1985-01, department 75, commune 1xx and order number from n: a distinct valid demo NIR per person.
        var ins = DemoIdentifiers.Nir("1850175" + (100 + n / 1000).ToString("D3", CultureInfo.InvariantCulture) + (n % 1000).ToString("D3", CultureInfo.InvariantCulture));
        var usmp = b.Organization(UsmpFiness, "USMP de la maison d'arrêt (demo)", "Unité sanitaire en milieu pénitentiaire");
        var doctor = b.Practitioner("1000000101", "Exemple", "Camille");
        var patient = b.Patient(ins, "Foule" + key, "Sam", AdministrativeGender.Male, "1985-01-15", usmp);
        var stay = b.Encounter("SEJ-" + key, patient, usmp, doctor, today.AddMonths(-6), release, Encounter.EncounterStatus.InProgress, null);
        var tso = b.Prescription("ORD-" + key + "-BUP", patient, stay, doctor, "N07BC01", "buprénorphine", "8 mg par voie sublinguale une fois par jour",
            today, release, supplyDays: 28, quantity: 28);
        b.Prescription("ORD-" + key + "-DEP", patient, stay, doctor, "N07BC01", "buprénorphine",
            "Dépannage : 8 mg par voie sublinguale une fois par jour, 7 jours", today, release, supplyDays: 7, quantity: 7);
        b.Letter("LL-" + key, patient, stay, doctor, usmp, today, "Lettre de liaison de sortie (fictive, banc d'essai du portail).");
        var activities = new List<string> { tso };
        if (handoff)
        {
            var csapa = b.Organization(CsapaAFiness, "CSAPA Les Tilleuls (demo)", "Centre de soins, d'accompagnement et de prévention en addictologie", "+33 1 00 00 00 28");
            var referral = b.Referral("ADR-" + key, patient, stay, doctor, csapa, "Relais du traitement de substitution au CSAPA", release);
            b.Handoff("TCH-" + key, patient, referral, doctor, csapa, "Prise en charge à la sortie : relais TSO sous 24 h");
            b.Consent("CST-" + key, patient, usmp, CsapaAFiness, today, today.AddMonths(6),
                ["Patient", "MedicationRequest", "CarePlan", "DocumentReference", "Appointment", "Task", "ServiceRequest"], [], "Partage avec le CSAPA Les Tilleuls, 6 mois");
            activities.Add(referral);
        }
        var team = b.CareTeam("EQ-" + key, patient, usmp, [doctor]);
        b.CarePlan("PDS-" + key, patient, stay, usmp, team, release, activities, "Projet de soins de sortie : TSO");
        return new DemoPackage("crowd-" + key, ins, "one of a crowd leaving (bench)", b.Bundle);
    }

    /// <summary>Builds one transaction: each resource is a POST with If-None-Exist on its business identifier.</summary>
    /// <summary>Builds one package of conditional creates; public so that bench/'s scale loader builds its 100,000 packages in the same shapes.</summary>
    public sealed class PackageBuilder(string patientKey)
    {
        public Bundle Bundle { get; } = new() { Type = Bundle.BundleType.Transaction };

        private string Add(Resource resource, Identifier identifier)
        {
            var fullUrl = "urn:uuid:" + Guid.NewGuid();
            Bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = fullUrl,
                Resource = resource,
                Request = new Bundle.RequestComponent
                {
                    Method = Bundle.HTTPVerb.POST,
                    Url = resource.TypeName,
                    IfNoneExist = $"identifier={identifier.System}|{identifier.Value}",
                },
            });
            return fullUrl;
        }

        private static Identifier Local(string kind, string value) => new($"{DemoIdentifiers.Local}/{kind}", value);

        private static ResourceReference Ref(string fullUrl) => new(fullUrl);

        private static string Date(DateTime d) => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

        private static string Instant(DateTime d) => new DateTimeOffset(d, TimeSpan.Zero).ToString("yyyy-MM-ddTHH:mm:ssK", CultureInfo.InvariantCulture);

        public string Organization(string finess, string name, string type, string? phone = null)
        {
            var id = new Identifier(DemoIdentifiers.Finess, finess);
            var org = new Organization { Active = true, Name = name, Identifier = [id], Type = [new CodeableConcept { Text = type }] };
            if (phone is not null) org.Telecom.Add(new ContactPoint(ContactPoint.ContactPointSystem.Phone, ContactPoint.ContactPointUse.Work, phone));
            return Add(org, id);
        }

        public string Practitioner(string rppsBody, string family, string given)
        {
            var id = new Identifier(DemoIdentifiers.Rpps, DemoIdentifiers.WithLuhnKey(rppsBody));
            var practitioner = new Practitioner { Identifier = [id], Name = [new HumanName { Family = family, Given = [given], Prefix = ["Dr"] }] };
            if (rppsBody != UsmpDoctorRpps) return Add(practitioner, id);
            // The USMP doctor is the portal's demo user usmp-medecin (fhirUser Practitioner/usmp-medecin): the exit-package
            // form reads the prescriber's RPPS from that Practitioner, so it has that id (an update that creates it).
            var fullUrl = "urn:uuid:" + Guid.NewGuid();
            practitioner.Id = UsmpDoctorId;
            Bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = fullUrl,
                Resource = practitioner,
                Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PUT, Url = "Practitioner/" + UsmpDoctorId },
            });
            return fullUrl;
        }

        public string Role(string key, string practitioner, string organization, string role, string phone)
        {
            var id = Local("practitioner-role", key);
            return Add(new PractitionerRole
            {
                Identifier = [id],
                Active = true,
                Practitioner = Ref(practitioner),
                Organization = Ref(organization),
                Code = [new CodeableConcept { Text = role }],
                Telecom = [new ContactPoint(ContactPoint.ContactPointSystem.Phone, ContactPoint.ContactPointUse.Work, phone)],
            }, id);
        }

        public string Location(string key, string name, string organization)
        {
            var id = Local("location", key);
            return Add(new Location { Identifier = [id], Status = Hl7.Fhir.Model.Location.LocationStatus.Active, Name = name, ManagingOrganization = Ref(organization) }, id);
        }

        public string Patient(string ins, string family, string given, AdministrativeGender gender, string birthDate, string managingOrganization)
        {
            var id = new Identifier(DemoIdentifiers.InsDemo, ins);
            return Add(new Patient
            {
                Identifier = [id],
                Name = [new HumanName { Use = HumanName.NameUse.Official, Family = family, Given = [given] }],
                Gender = gender,
                BirthDate = birthDate,
                // The USMP is the patient's care team during detention (consent rule 2).
                ManagingOrganization = Ref(managingOrganization),
            }, id);
        }

        public string Encounter(string key, string patient, string usmp, string doctor, DateTime start, DateTime end, Encounter.EncounterStatus status,
            string? disposition, string? destination = null)
        {
            var id = Local("encounter", key);
            var encounter = new Encounter
            {
                Identifier = [id],
                Status = status,
                Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
                Type = [new CodeableConcept { Text = "Suivi sanitaire pendant la détention" }],
                Subject = Ref(patient),
                Participant = [new Encounter.ParticipantComponent { Individual = Ref(doctor) }],
                // period.end is the release date: planned while in progress, actual once finished.
                Period = new Period { Start = Instant(start), End = Instant(end) },
                ServiceProvider = Ref(usmp),
            };
            if (disposition is not null || destination is not null)
            {
                encounter.Hospitalization = new Encounter.HospitalizationComponent
                {
                    DischargeDisposition = disposition is null ? null : new CodeableConcept { Text = disposition },
                    Destination = destination is null ? null : Ref(destination),
                };
            }
            return Add(encounter, id);
        }

        public string Condition(string key, string patient, string icd10, string text, DateTime onset)
        {
            var id = Local("condition", key);
            return Add(new Condition
            {
                Identifier = [id],
                ClinicalStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
                VerificationStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
                Code = new CodeableConcept("http://hl7.org/fhir/sid/icd-10", icd10, text, text),
                Subject = Ref(patient),
                Onset = new FhirDateTime(Date(onset)),
            }, id);
        }

        public string Allergy(string key, string patient, string substance, string reaction)
        {
            var id = Local("allergy", key);
            return Add(new AllergyIntolerance
            {
                Identifier = [id],
                ClinicalStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"),
                VerificationStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed"),
                Category = [AllergyIntolerance.AllergyIntoleranceCategory.Medication],
                Code = new CodeableConcept { Text = substance },
                Patient = Ref(patient),
                Reaction = [new AllergyIntolerance.ReactionComponent { Manifestation = [new CodeableConcept { Text = reaction }] }],
            }, id);
        }

        public string Prescription(string key, string patient, string stay, string doctor, string atc, string name, string dosage,
            DateTime authored, DateTime release, int? supplyDays, int quantity)
        {
            var id = Local("prescription", key);
            var request = new MedicationRequest
            {
                Identifier = [id],
                Status = MedicationRequest.MedicationrequestStatus.Active,
                Intent = MedicationRequest.MedicationRequestIntent.Order,
                Medication = new CodeableConcept("http://www.whocc.no/atc", atc, name, name),
                Subject = Ref(patient),
                Encounter = Ref(stay),
                AuthoredOn = Date(authored),
                Requester = Ref(doctor),
                DosageInstruction = [new Dosage { Text = dosage }],
                DispenseRequest = new MedicationRequest.DispenseRequestComponent
                {
                    ValidityPeriod = new Period { Start = Date(release), End = Date(release.AddMonths(1)) },
                    Quantity = new Quantity { Value = quantity, Unit = "unité" },
                },
            };
            if (supplyDays is { } days)
                request.DispenseRequest.ExpectedSupplyDuration = new Duration { Value = days, Unit = "jours", System = "http://unitsofmeasure.org", Code = "d" };
            return Add(request, id);
        }

        public string Dispense(string key, string patient, string prescription, string atc, string name, DateTime handedOver, string note)
        {
            var id = Local("dispense", key);
            return Add(new MedicationDispense
            {
                Identifier = [id],
                Status = MedicationDispense.MedicationDispenseStatusCodes.Completed,
                Medication = new CodeableConcept("http://www.whocc.no/atc", atc, name, name),
                Subject = Ref(patient),
                AuthorizingPrescription = [Ref(prescription)],
                Quantity = new Quantity { Value = 2, Unit = "pulvérisateur" },
                WhenHandedOver = Instant(handedOver),
                Note = [new Annotation { Text = note }],
            }, id);
        }

        public string Administration(string key, string patient, string prescription, string atc, string name, DateTime when, string note)
        {
            var id = Local("administration", key);
            return Add(new MedicationAdministration
            {
                Identifier = [id],
                Status = MedicationAdministration.MedicationAdministrationStatusCodes.Completed,
                Medication = new CodeableConcept("http://www.whocc.no/atc", atc, name, name),
                Subject = Ref(patient),
                Request = Ref(prescription),
                Effective = new FhirDateTime(Instant(when)),
                Note = [new Annotation { Text = note }],
            }, id);
        }

        public string Referral(string key, string patient, string stay, string doctor, string receiver, string text, DateTime release)
        {
            var id = Local("referral", key);
            return Add(new ServiceRequest
            {
                Identifier = [id],
                Status = RequestStatus.Active,
                Intent = RequestIntent.Order,
                Code = new CodeableConcept { Text = text },
                Subject = Ref(patient),
                Encounter = Ref(stay),
                AuthoredOn = Date(release.AddDays(-3)),
                Requester = Ref(doctor),
                Performer = [Ref(receiver)],
                Occurrence = new Period { Start = Date(release), End = Date(release.AddDays(7)) },
            }, id);
        }

        public string Handoff(string key, string patient, string referral, string doctor, string owner, string description) =>
            Task(key, patient, referral, doctor, owner, description);

        /// <summary>A hand-off Task (focus: the referral), or with <paramref name="code"/> an ExitPackageTask (focus: the stay; due by <paramref name="due"/>).</summary>
        public string Task(string key, string patient, string? focus, string doctor, string owner, string description,
            string? code = null, DateTime? authored = null, DateTime? due = null)
        {
            var id = Local("task", key);
            var task = new Hl7.Fhir.Model.Task
            {
                Identifier = [id],
                Status = Hl7.Fhir.Model.Task.TaskStatus.Requested,
                Intent = Hl7.Fhir.Model.Task.TaskIntent.Order,
                BasedOn = focus is null || code is not null ? [] : [Ref(focus)],
                Focus = focus is null ? null : Ref(focus),
                For = Ref(patient),
                Requester = Ref(doctor),
                Owner = Ref(owner),
                Description = description,
            };
            if (code is not null)
            {
                task.Meta = new Meta { Profile = ["https://fhirsortie.fr/fhir/StructureDefinition/ExitPackageTask"] };
                task.Code = new CodeableConcept(ConsentAuthority.ExitTaskTypes, code);
                task.AuthoredOn = Date(authored ?? DateTime.UtcNow);
                if (due is { } end) task.Restriction = new Hl7.Fhir.Model.Task.RestrictionComponent { Period = new Period { End = Date(end) } };
            }
            return Add(task, id);
        }

        public string Appointment(string key, string patient, string place, string? practitionerRole, DateTime start, Appointment.AppointmentStatus status, string description)
        {
            var id = Local("appointment", key);
            var appointment = new Appointment
            {
                Identifier = [id],
                Status = status,
                Description = description,
                Start = new DateTimeOffset(start, TimeSpan.Zero),
                End = new DateTimeOffset(start.AddMinutes(45), TimeSpan.Zero),
                Participant =
                [
                    new Appointment.ParticipantComponent { Actor = Ref(patient), Status = ParticipationStatus.Accepted },
                    new Appointment.ParticipantComponent { Actor = Ref(place), Status = ParticipationStatus.Accepted },
                ],
            };
            if (practitionerRole is not null)
                appointment.Participant.Add(new Appointment.ParticipantComponent { Actor = Ref(practitionerRole), Status = ParticipationStatus.Accepted });
            return Add(appointment, id);
        }

        public string CareTeam(string key, string patient, string usmp, IReadOnlyList<string> members)
        {
            var id = Local("careteam", key);
            return Add(new CareTeam
            {
                Identifier = [id],
                Status = Hl7.Fhir.Model.CareTeam.CareTeamStatus.Active,
                Name = "Équipe de soins de sortie",
                Subject = Ref(patient),
                ManagingOrganization = [Ref(usmp)],
                Participant = [.. members.Select(m => new CareTeam.ParticipantComponent { Member = Ref(m) })],
            }, id);
        }

        public string CarePlan(string key, string patient, string stay, string usmp, string team, DateTime release, IReadOnlyList<string> activities, string title)
        {
            var id = Local("careplan", key);
            return Add(new CarePlan
            {
                Identifier = [id],
                Status = RequestStatus.Active,
                Intent = Hl7.Fhir.Model.CarePlan.CarePlanIntent.Plan,
                Title = title,
                Subject = Ref(patient),
                Encounter = Ref(stay),
                Author = Ref(usmp),
                Period = new Period { Start = Date(release) },
                CareTeam = [Ref(team)],
                Activity = [.. activities.Select(a => new CarePlan.ActivityComponent { Reference = Ref(a) })],
            }, id);
        }

        public string Letter(string key, string patient, string stay, string doctor, string usmp, DateTime date, string text) =>
            Document(key, patient, new Coding("http://loinc.org", LiaisonLetterLoinc, "Lettre de liaison"), doctor, usmp, stay, date,
                "Lettre de liaison de sortie de détention", text, null);

        /// <summary>An AttendanceAttestation (profiles/): recognised by justice access by its category, not its type.</summary>
        public string Attestation(string key, string patient, string organization, string appointment, DateTime date, string text) =>
            Document(key, patient, new Coding(AccessRules.DocumentTypes, AccessRules.AttendanceAttestationCode, "Attestation de présence"), organization, organization,
                null, date, "Attestation de présence", text, appointment,
                new Coding(AccessRules.DocumentCategories, AccessRules.AttendanceAttestationCategory, "Attestation de présence"));

        private string Document(string key, string patient, Coding type, string author, string custodian, string? stay, DateTime date, string title, string text, string? related, Coding? category = null)
        {
            var id = Local("document", key);
            var document = new DocumentReference
            {
                Identifier = [id],
                Status = DocumentReferenceStatus.Current,
                DocStatus = CompositionStatus.Final,
                Type = new CodeableConcept { Coding = [type] },
                Category = category is null ? [] : [new CodeableConcept { Coding = [category] }],
                Subject = Ref(patient),
                Date = new DateTimeOffset(date, TimeSpan.Zero),
                Author = [Ref(author)],
                Custodian = Ref(custodian),
                Description = title,
                Content = [new DocumentReference.ContentComponent
                {
                    Attachment = new Attachment { ContentType = "text/plain", Language = "fr", Title = title, Data = Encoding.UTF8.GetBytes(text) },
                }],
            };
            if (stay is not null || related is not null)
            {
                document.Context = new DocumentReference.ContextComponent
                {
                    Encounter = stay is null ? [] : [Ref(stay)],
                    Related = related is null ? [] : [Ref(related)],
                };
            }
            return Add(document, id);
        }

        /// <summary>A FR Core-shaped Consent: deny by default, one nested permit naming the recipient by FINESS, the types, the labels and the period.</summary>
        public string Consent(string key, string patient, string usmp, string recipientFiness, DateTime start, DateTime end,
            IReadOnlyList<string> types, IReadOnlyList<string> labels, string text)
        {
            var id = Local("consent", key);
            return Add(new Consent
            {
                Identifier = [id],
                Status = Hl7.Fhir.Model.Consent.ConsentState.Active,
                Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
                Category = [new CodeableConcept("http://loinc.org", "59284-0")],
                Patient = Ref(patient),
                DateTime = Date(start),
                Organization = [Ref(usmp)],
                Policy = [new Consent.PolicyComponent { Uri = "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031927568" }],
                Provision = new Consent.provisionComponent
                {
                    Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny,
                    Provision =
                    [
                        new Consent.provisionComponent
                        {
                            Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit,
                            Period = new Period { Start = Date(start), End = Date(end) },
                            Actor = [new Consent.provisionActorComponent
                            {
                                Role = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
                                Reference = new ResourceReference { Identifier = new Identifier(DemoIdentifiers.Finess, recipientFiness), Display = text },
                            }],
                            Class = [.. types.Select(t => new Coding(ConsentGrants.ResourceTypes, t))],
                            SecurityLabel = [.. labels.Select(l => new Coding(SecurityLabels.ActCode, l))],
                        },
                    ],
                },
            }, id);
        }

        public override string ToString() => patientKey;
    }
}
