using Hl7.Fhir.Model;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// Plain R4 from USMP software that does not know the national shapes, brought to them on every write (called from
/// WriteSession.SaveAsync before profile validation):
/// - identifier systems given as bare OIDs, another case of urn:oid:, http:// or trailing-slash spellings of the
///   national URLs, or a local system configured under FhirSortie:Mapping:IdentifierSystems, become the FR Core ones;
/// - an idNatPs/idNatSt given without its type digit (a bare RPPS/FINESS) gets it ("8" + RPPS, "1" + FINESS), and the
///   RPPS/FINESS identifier is added beside an idNatPs/idNatSt that carries one, and the other way round;
/// - medicine codes given with an OID system (ATC, CIS) get the FHIR URI; a local code that a ConceptMap of profiles/
///   translates gets the national coding added beside it (the local coding stays).
/// Each change is an information issue (never the identifier or code value: they may identify the person).
/// Nothing else is touched, and a resource that is already national costs a walk over its identifiers.
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
            case Practitioner p: Identifiers(p.Identifier, type, notes); PairNationalIds(p.Identifier, type, NationalSystems.IdNatPs, NationalSystems.Rpps, "8", 11, notes); break;
            case PractitionerRole r: Identifiers(r.Identifier, type, notes); break;
            case Organization o: Identifiers(o.Identifier, type, notes); PairNationalIds(o.Identifier, type, NationalSystems.IdNatSt, NationalSystems.Finess, "1", 9, notes); break;
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
        for (var i = 0; i < identifiers.Count; i++)
        {
            var identifier = identifiers[i];
            if (identifier.System is not { } system) continue;
            var national = localIdentifierSystems.GetValueOrDefault(system) ?? NationalSystems.NationalIdentifierSystem(system);
            if (national is null || national == system) continue;
            identifier.System = national;
            notes.Add(Note($"Identifier system '{system}' replaced by the national system '{national}'.", $"{type}.identifier[{i}].system"));
        }
    }

    /// <summary>
    /// idNatPs = "8" + RPPS and idNatSt = "1" + FINESS (ANS identification nationale): a bare number under the idNat
    /// system gets its type digit, and each of the pair is added when only the other is given.
    /// </summary>
    private static void PairNationalIds(List<Identifier> identifiers, string type, string idNatSystem, string numberSystem,
        string prefix, int numberLength, List<OperationOutcome.IssueComponent> notes)
    {
        for (var i = 0; i < identifiers.Count; i++)
        {
            var id = identifiers[i];
            if (id.System == idNatSystem && id.Value is { } v && v.Length == numberLength)
            {
                id.Value = prefix + v;
                notes.Add(Note($"The {idNatSystem} identifier was given without its type digit; '{prefix}' was prepended.", $"{type}.identifier[{i}].value"));
            }
        }
        var idNat = identifiers.FirstOrDefault(x => x.System == idNatSystem && x.Value is { } v && v.Length == numberLength + 1 && v.StartsWith(prefix, StringComparison.Ordinal));
        var number = identifiers.FirstOrDefault(x => x.System == numberSystem && x.Value is { Length: > 0 } v && v.Length == numberLength);
        if (idNat is not null && number is null)
        {
            identifiers.Add(new Identifier(numberSystem, idNat.Value![prefix.Length..]));
            notes.Add(Note($"Identifier {numberSystem} added from the {idNatSystem} identifier.", $"{type}.identifier[{identifiers.Count - 1}]"));
        }
        else if (number is not null && !identifiers.Any(x => x.System == idNatSystem))
        {
            identifiers.Add(new Identifier(idNatSystem, prefix + number.Value));
            notes.Add(Note($"Identifier {idNatSystem} added from the {numberSystem} identifier.", $"{type}.identifier[{identifiers.Count - 1}]"));
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
