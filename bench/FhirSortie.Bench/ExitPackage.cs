using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Bench;

/// <summary>
/// The 15-resource "exit package" a USMP sends when a patient leaves prison, as a transaction Bundle template.
/// The wrk Lua script makes each posted copy unique: it replaces <see cref="Token"/> (8 digits) by a per-request
/// number and <see cref="InsKey"/> by the INS key of "28502" + that number, so every transaction carries fresh
/// urn:uuid fullUrls, a fresh patient INS and fresh local identifiers.
/// </summary>
public static class ExitPackage
{
    public const string Token = "@@@@@@@@";
    public const string InsKey = "@K@";
    public const string InsPrefix = "28502";

    public static readonly string UsmpFiness = Identifiers.WithLuhn("69000123");
    public static readonly string CsapaFiness = Identifiers.WithLuhn("69000456");
    public static readonly string DoctorRpps = Identifiers.WithLuhn("1000012345");

    private static string Uuid(int n) => $"urn:uuid:{Token}-0000-4000-8000-{n:D12}";

    public static Bundle Build(DateTimeOffset now)
    {
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        void Add(int n, Resource resource, string? ifNoneExist = null) => bundle.Entry.Add(new Bundle.EntryComponent
        {
            FullUrl = Uuid(n),
            Resource = resource,
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = resource.TypeName, IfNoneExist = ifNoneExist },
        });
        string usmp = Uuid(1), csapa = Uuid(2), doctor = Uuid(3), patient = Uuid(4), encounter = Uuid(5);
        string oud = Uuid(6), hcv = Uuid(7), bup = Uuid(8), naloxone = Uuid(9);

        // Reference data: created once, matched afterwards (conditional create on the national identifier).
        Add(1, new Organization
        {
            Identifier = [new Identifier(Identifiers.FinessSystem, UsmpFiness)],
            Name = "USMP Maison d'arrêt de Lyon-Corbas",
            Type = [new CodeableConcept("https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement", "355", "Centre Hospitalier (C.H.)")],
        }, $"identifier={Identifiers.FinessSystem}|{UsmpFiness}");
        Add(2, new Organization
        {
            Identifier = [new Identifier(Identifiers.FinessSystem, CsapaFiness)],
            Name = "CSAPA Lyon 7e",
            Type = [new CodeableConcept("https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement", "197", "Centre soins accompagnement prévention addictologie (CSAPA)")],
        }, $"identifier={Identifiers.FinessSystem}|{CsapaFiness}");
        Add(3, new Practitioner
        {
            Identifier = [new Identifier(Identifiers.RppsSystem, DoctorRpps)],
            Name = [new HumanName { Family = "LAMBERT", Given = ["Claire"], Prefix = ["Dr"] }],
        }, $"identifier={Identifiers.RppsSystem}|{DoctorRpps}");

        var ins = InsPrefix + Token + InsKey;
        Add(4, Clinical.Patient(ins, "L" + Token, 7), $"identifier={Identifiers.InsSystem}|{ins}");
        Add(5, new Encounter
        {
            Identifier = [new Identifier("urn:oid:1.2.250.1.999.1.3", "E" + Token)],
            Status = Encounter.EncounterStatus.Finished,
            Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
            Subject = new ResourceReference(patient),
            Period = new Period(new FhirDateTime(now.AddDays(-1)), new FhirDateTime(now)),
            ServiceProvider = new ResourceReference(usmp),
        });
        Add(6, Condition(patient, encounter, "http://hl7.org/fhir/sid/icd-10", "F11.2", "Troubles mentaux et du comportement liés à l'utilisation d'opiacés : syndrome de dépendance"));
        Add(7, Condition(patient, encounter, "http://hl7.org/fhir/sid/icd-10", "B18.2", "Hépatite virale chronique C"));
        Add(8, Clinical.Prescription(Clinical.Buprenorphine, patient, now, doctor, csapa, encounter));
        Add(9, Clinical.Prescription(Clinical.Naloxone, patient, now, doctor, csapa, encounter));
        Add(10, new AllergyIntolerance
        {
            ClinicalStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"),
            VerificationStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed"),
            Code = new CodeableConcept("http://www.whocc.no/atc", "J01CA04", "amoxicilline"),
            Patient = new ResourceReference(patient),
        });
        Add(11, Lab(patient, encounter, now, "11011-4", "Hepatitis C virus RNA [Units/volume] (viral load) in Serum or Plasma", new Quantity(1250000, "[IU]/mL") { Unit = "UI/mL" }));
        Add(12, Lab(patient, encounter, now, "29463-7", "Body weight", new Quantity(72.5m, "kg")));
        Add(13, new ServiceRequest
        {
            Identifier = [new Identifier("urn:oid:1.2.250.1.999.1.4", "S" + Token)],
            Status = RequestStatus.Active,
            Intent = RequestIntent.Order,
            Code = new CodeableConcept("http://snomed.info/sct", "3457005", "Patient referral"),
            Subject = new ResourceReference(patient),
            Encounter = new ResourceReference(encounter),
            Occurrence = new FhirDateTime(now.AddDays(2)),
            Requester = new ResourceReference(doctor),
            Performer = [new ResourceReference(csapa)],
            ReasonReference = [new ResourceReference(oud)],
            Note = [new Annotation { Text = new Markdown("Relais TSO à J+2, prévoir délivrance quotidienne.") }],
        });
        Add(14, new CarePlan
        {
            Status = RequestStatus.Active,
            Intent = CarePlan.CarePlanIntent.Plan,
            Title = "Plan de soins de sortie",
            Subject = new ResourceReference(patient),
            Encounter = new ResourceReference(encounter),
            Period = new Period(new FhirDateTime(now), new FhirDateTime(now.AddDays(90))),
            Addresses = [new ResourceReference(oud), new ResourceReference(hcv)],
            Activity =
            [
                new CarePlan.ActivityComponent { Reference = new ResourceReference(bup) },
                new CarePlan.ActivityComponent { Reference = new ResourceReference(naloxone) },
            ],
        });
        Add(15, new Consent
        {
            Status = Consent.ConsentState.Active,
            Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            Category = [new CodeableConcept("http://loinc.org", "59284-0", "Patient Consent")],
            Patient = new ResourceReference(patient),
            DateTimeElement = new FhirDateTime(now),
            Organization = [new ResourceReference(usmp)],
            PolicyRule = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN"),
            Provision = new Consent.provisionComponent
            {
                Type = Consent.ConsentProvisionType.Permit,
                Actor = [new Consent.provisionActorComponent { Role = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"), Reference = new ResourceReference(csapa) }],
            },
        });
        return bundle;
    }

    private static Condition Condition(string patient, string encounter, string system, string code, string display) => new()
    {
        ClinicalStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
        VerificationStatus = new CodeableConcept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
        Code = new CodeableConcept(system, code, display),
        Subject = new ResourceReference(patient),
        Encounter = new ResourceReference(encounter),
    };

    private static Observation Lab(string patient, string encounter, DateTimeOffset now, string loinc, string display, Quantity value) => new()
    {
        Status = ObservationStatus.Final,
        Category = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")],
        Code = new CodeableConcept("http://loinc.org", loinc, display),
        Subject = new ResourceReference(patient),
        Encounter = new ResourceReference(encounter),
        Effective = new FhirDateTime(now.AddDays(-3)),
        Value = value,
    };

    /// <summary>What the Lua script does to the template, for checking the template here (and in tests of the bench).</summary>
    public static string Instantiate(string template, long number)
    {
        var token = number.ToString("D8", System.Globalization.CultureInfo.InvariantCulture);
        var key = Identifiers.InsKey(long.Parse(InsPrefix + token, System.Globalization.CultureInfo.InvariantCulture));
        return template.Replace(InsKey, key.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)).Replace(Token, token);
    }

    private static readonly System.Text.Json.JsonSerializerOptions Json = new System.Text.Json.JsonSerializerOptions().ForFhir(ModelInfo.ModelInspector);

    public static string Serialize(Resource resource) => System.Text.Json.JsonSerializer.Serialize(resource, Json);

    /// <summary>Strict parse, as the gateway does: the bench must never post something the gateway rightly refuses.</summary>
    public static void CheckStrict(string json) => new FhirJsonDeserializer(new DeserializerSettings()).DeserializeResource(json);
}
