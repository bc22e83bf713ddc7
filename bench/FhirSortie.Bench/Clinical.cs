using Hl7.Fhir.Model;

namespace FhirSortie.Bench;

/// <summary>Fictitious but realistic resources of an opioid substitution treatment (OST) follow-up after prison.</summary>
public static class Clinical
{
    public sealed record Drug(string Atc, string Display, string Form, decimal DailyMg, string Route, string RouteDisplay);

    public static readonly Drug Buprenorphine = new("N07BC01", "buprénorphine", "comprimé sublingual 8 mg", 8, "37839007", "Sublingual route");
    public static readonly Drug Methadone = new("N07BC02", "méthadone", "sirop 60 mg", 60, "26643006", "Oral route");
    public static readonly Drug Naloxone = new("V03AB15", "naloxone", "solution pour pulvérisation nasale 1,8 mg", 1.8m, "46713006", "Nasal route");

    private static readonly string[] Family = ["MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY", "MOREAU"];
    private static readonly string[] Given = ["Karim", "Julien", "Mehdi", "Thomas", "Nicolas", "Samir", "Kevin", "Yanis", "Lucas", "Sofiane"];

    public static Patient Patient(string ins, string localId, int seed) => new()
    {
        Identifier =
        [
            new Identifier(Identifiers.InsSystem, ins) { Use = Identifier.IdentifierUse.Official },
            new Identifier("urn:oid:1.2.250.1.999.1.1", localId) { Use = Identifier.IdentifierUse.Usual },
        ],
        Name = [new HumanName { Use = HumanName.NameUse.Official, Family = Family[seed % Family.Length], Given = [Given[seed / 10 % Given.Length]] }],
        Gender = AdministrativeGender.Male,
        BirthDate = $"{1970 + seed % 35:D4}-{1 + seed % 12:D2}-{1 + seed % 28:D2}",
        Address = [new Address { City = "Lyon", PostalCode = "69007", Country = "FR" }],
    };

    public static MedicationRequest Prescription(Drug drug, string subject, DateTimeOffset authored, string? requester, string? pharmacy, string? encounter)
    {
        var start = authored.Date;
        return new MedicationRequest
        {
            Identifier = [new Identifier("urn:oid:1.2.250.1.999.1.2", Guid.NewGuid().ToString())],
            Status = MedicationRequest.MedicationrequestStatus.Active,
            Intent = MedicationRequest.MedicationRequestIntent.Order,
            Medication = new CodeableConcept(Identifiers.AtcSystem, drug.Atc, drug.Display, $"{drug.Display} {drug.Form}"),
            Subject = new ResourceReference(subject),
            Encounter = encounter is null ? null : new ResourceReference(encounter),
            AuthoredOnElement = new FhirDateTime(authored),
            Requester = requester is null ? null : new ResourceReference(requester),
            DosageInstruction =
            [
                new Dosage
                {
                    Text = $"{drug.DailyMg} mg par jour, délivrance fractionnée",
                    Timing = new Timing { Repeat = new Timing.RepeatComponent { Frequency = 1, Period = 1, PeriodUnit = Timing.UnitsOfTime.D } },
                    Route = new CodeableConcept("http://snomed.info/sct", drug.Route, drug.RouteDisplay),
                    DoseAndRate = [new Dosage.DoseAndRateComponent { Dose = new Quantity(drug.DailyMg, "mg") }],
                },
            ],
            DispenseRequest = new MedicationRequest.DispenseRequestComponent
            {
                ValidityPeriod = new Period(new FhirDateTime(start), new FhirDateTime(start.AddDays(28))),
                NumberOfRepeatsAllowed = 0,
                Quantity = new Quantity(drug.DailyMg * 28, "mg"),
                ExpectedSupplyDuration = new Duration { Value = 7, Unit = "d", System = "http://unitsofmeasure.org", Code = "d" },
                Performer = pharmacy is null ? null : new ResourceReference(pharmacy),
            },
            Substitution = new MedicationRequest.SubstitutionComponent { Allowed = new FhirBoolean(false) },
        };
    }
}
