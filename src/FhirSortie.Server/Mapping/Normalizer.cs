using Hl7.Fhir.Model;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// Plain R4 from USMP software that does not know the national shapes, brought to them on every write (called from
/// WriteSession.SaveAsync before profile validation):
/// - an identifier whose system is another spelling of a national one (bare OID, another case of urn:oid:, http:// or
///   trailing-slash forms of the RPPS/FINESS URLs) or a local system configured under
///   FhirSortie:Mapping:IdentifierSystems gets a copy under the FR Core system;
/// - RPPS ↔ idNatPs ("8" + RPPS) and FINESS ↔ idNatSt ("1" + FINESS) are completed, also from a bare RPPS/FINESS
///   given under the idNat OID, when the number's control key is right (a wrong number is never spread);
/// - medicine codes given with an OID system (ATC, CIS) get the FHIR URI; a local code that a ConceptMap of profiles/
///   translates gets the national coding added beside it.
/// Identifiers are ADDED, never rewritten: the sender keeps finding its resources with its own identifiers (its
/// conditional creates "identifier=its-system|value" must still match on the next post, or each post would
/// duplicate the resource). Each change is an information issue, which never repeats a value (it may identify the person).
/// </summary>
public sealed class Normalizer(ConceptMaps maps, IReadOnlyDictionary<string, string> localIdentifierSystems)
{
    public const string IdentifierSystemsSection = "FhirSortie:Mapping:IdentifierSystems";

    public static Normalizer FromConfiguration(ConceptMaps maps, IConfiguration configuration)
    {
        // Keys are the local system URLs; configuration keys cannot hold ':' so each entry is { "Local": ..., "National": ... }.
        var local = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in configuration.GetSection(IdentifierSystemsSection).GetChildren())
        {
            var from = entry["Local"];
            var to = entry["National"];
            if (string.IsNullOrWhiteSpace(from) || string.IsNullOrWhiteSpace(to))
                throw new InvalidOperationException($"{IdentifierSystemsSection}:{entry.Key} needs Local and National.");
            local[from] = to;
        }
        return new Normalizer(maps, local);
    }

    /// <summary>Changes <paramref name="resource"/> in place; returns what was changed (empty when nothing was).</summary>
    public IReadOnlyList<OperationOutcome.IssueComponent> Normalize(Resource resource)
    {
        var notes = new List<OperationOutcome.IssueComponent>();
        var type = resource.TypeName;
        switch (resource)
        {
            case Patient p: Identifiers(p.Identifier, type, notes); break;
            case Practitioner p: Identifiers(p.Identifier, type, notes); PairNationalIds(p.Identifier, type, NationalSystems.IdNatPs, NationalSystems.Rpps, "8", 11, Profiles.IdentifierKeyKind.Rpps, notes); break;
            case PractitionerRole r: Identifiers(r.Identifier, type, notes); break;
            case Organization o: Identifiers(o.Identifier, type, notes); PairNationalIds(o.Identifier, type, NationalSystems.IdNatSt, NationalSystems.Finess, "1", 9, Profiles.IdentifierKeyKind.Finess, notes); break;
            case MedicationRequest m when m.Medication is CodeableConcept cc: Medicine(cc, $"{type}.medicationCodeableConcept", notes); break;
            case MedicationStatement m when m.Medication is CodeableConcept cc: Medicine(cc, $"{type}.medicationCodeableConcept", notes); break;
            case MedicationDispense m when m.Medication is CodeableConcept cc: Medicine(cc, $"{type}.medicationCodeableConcept", notes); break;
            case MedicationAdministration m when m.Medication is CodeableConcept cc: Medicine(cc, $"{type}.medicationCodeableConcept", notes); break;
            case Medication m when m.Code is { } code: Medicine(code, $"{type}.code", notes); break;
        }
        return notes;
    }

    private void Identifiers(List<Identifier> identifiers, string type, List<OperationOutcome.IssueComponent> notes)
    {
        var count = identifiers.Count;
        for (var i = 0; i < count; i++)
        {
            var identifier = identifiers[i];
            if (identifier.System is not { } system || identifier.Value is not { } value) continue;
            var national = localIdentifierSystems.GetValueOrDefault(system) ?? NationalSystems.NationalIdentifierSystem(system);
            if (national is null || national == system || Has(identifiers, national, value)) continue;
            identifiers.Add(new Identifier(national, value) { Use = identifier.Use, Type = (CodeableConcept?)identifier.Type?.DeepCopy() });
            notes.Add(Note($"Identifier added under the national system '{national}', copied from identifier[{i}] (system '{system}', kept as sent).",
                $"{type}.identifier[{identifiers.Count - 1}]"));
        }
    }

    private static bool Has(List<Identifier> identifiers, string system, string value) =>
        identifiers.Any(x => x.System == system && x.Value == value);

    /// <summary>
    /// idNatPs = "8" + RPPS and idNatSt = "1" + FINESS (ANS identification nationale): each of the pair is added when
    /// only the other is given, and a bare number under the idNat system gives the number identifier.
    /// </summary>
    private static void PairNationalIds(List<Identifier> identifiers, string type, string idNatSystem, string numberSystem,
        string prefix, int numberLength, Profiles.IdentifierKeyKind numberKind, List<OperationOutcome.IssueComponent> notes)
    {
        bool Valid(string number) => number.Length == numberLength && number.All(char.IsAsciiDigit) && Profiles.IdentifierKeys.Check(numberKind, number) is null;
        void Add(string system, string value, string from)
        {
            if (Has(identifiers, system, value)) return;
            identifiers.Add(new Identifier(system, value));
            notes.Add(Note($"Identifier {system} added from the {from} identifier.", $"{type}.identifier[{identifiers.Count - 1}]"));
        }
        if (!identifiers.Any(x => x.System == numberSystem))
        {
            var number = identifiers.Where(x => x.System == idNatSystem && x.Value is not null)
                .Select(x => x.Value!.Length == numberLength + 1 && x.Value.StartsWith(prefix, StringComparison.Ordinal) ? x.Value[prefix.Length..] : x.Value)
                .FirstOrDefault(Valid);
            if (number is not null) Add(numberSystem, number, idNatSystem);
        }
        if (!identifiers.Any(x => x.System == idNatSystem))
        {
            var number = identifiers.Where(x => x.System == numberSystem && x.Value is not null).Select(x => x.Value!).FirstOrDefault(Valid);
            if (number is not null) Add(idNatSystem, prefix + number, numberSystem);
        }
    }

    private void Medicine(CodeableConcept concept, string path, List<OperationOutcome.IssueComponent> notes)
    {
        for (var i = 0; i < concept.Coding.Count; i++)
        {
            var coding = concept.Coding[i];
            if (NationalSystems.CodeSystemFromOid(coding.System) is { } uri && uri != coding.System)
            {
                notes.Add(Note($"Code system '{coding.System}' replaced by '{uri}'.", $"{path}.coding[{i}].system"));
                coding.System = uri;
            }
        }
        if (concept.Coding.Any(c => c.System is { } s && NationalSystems.Medicines.Contains(s))) return;
        foreach (var coding in concept.Coding.ToList())
        {
            if (coding.System is null || coding.Code is null) continue;
            var match = maps.Translate(coding.System, coding.Code).FirstOrDefault(m => NationalSystems.Medicines.Contains(m.Concept.System!) && Usable(m));
            if (match is null) continue;
            concept.Coding.Add(match.Concept);
            notes.Add(Note($"Local medicine code of '{coding.System}' translated to {match.Concept.System}|{match.Concept.Code} by ConceptMap {match.MapUrl}; the local coding is kept.",
                $"{path}.coding[{concept.Coding.Count - 1}]"));
            return;
        }
    }

    /// <summary>
    /// Adding a national coding beside the local one is safe when the national concept means the same or contains it
    /// (an ATC substance class for a local product); narrower or merely related concepts are left to a person.
    /// </summary>
    public static bool Usable(ConceptMaps.Match match) =>
        ConceptMaps.IsExact(match) || match.Equivalence is ConceptMapEquivalence.Wider or ConceptMapEquivalence.Subsumes;

    private static OperationOutcome.IssueComponent Note(string diagnostics, string expression) =>
        Rest.Outcomes.Issue(OperationOutcome.IssueSeverity.Information, OperationOutcome.IssueType.Informational, diagnostics, expression);
}
