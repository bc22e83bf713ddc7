namespace FhirSortie.Server.Measures;

/// <summary>
/// The continuity indicators of issue 24, by Measure id. Each one's SQL returns (month, usmp, kind, outcome, detail, n)
/// aggregated in the database; <see cref="MeasureDefinition.Classify"/> says which population sets a row counts in.
/// Their definitions, in French and English, are conformance/measures/{id}.json.
/// </summary>
public static class MeasureCatalog
{
    public const string ExitPrescriptionProfile = "https://fhirsortie.fr/fhir/StructureDefinition/ExitPrescription";

    /// <summary>1. Releases with an exit package posted on or before the release day; the median delay when after.</summary>
    public static readonly MeasureDefinition SortieAvecPaquet = new(
        "sortie-avec-paquet",
        ["releases", "on-time", "late"],
        [new Nesting("releases", ["on-time", "late"])],
        [
            new MeasureGroup("paquet-avant-sortie", [("initial-population", "releases"), ("denominator", "releases"), ("numerator", "on-time")], new Proportion("on-time", "releases")),
            new MeasureGroup("paquet-apres-sortie", [("initial-population", "releases"), ("measure-population", "late")], new MedianDays("late")),
        ],
        sql => $"""
            SELECT b.month, b.usmp, b.kind,
                CASE WHEN b.posted IS NULL THEN 0 ELSE 1 END,
                CASE WHEN b.posted IS NULL OR {sql.Day("b.posted")} <= {sql.Day("b.released")} THEN 0 ELSE {sql.Day("b.posted")} - {sql.Day("b.released")} END,
                COUNT(*)
            FROM (SELECT rel.month, rel.usmp, rel.kind, rel.released,
                    (SELECT MIN(v.last_updated) FROM search_reference pr
                        JOIN resources pk ON pk.rkey = pr.rkey AND pk.deleted = 0
                        JOIN resource_versions v ON v.type = pk.type AND v.id = pk.id AND v.version = 1
                     WHERE pr.target_id = rel.stay AND pr.target_type = 'Encounter' AND pr.param = 'encounter'
                       AND (pr.type = 'Composition' OR (pr.type = 'MedicationRequest' AND EXISTS (SELECT 1 FROM search_uri pu
                            WHERE pu.rkey = pr.rkey AND pu.param = '_profile' AND pu.value = '{ExitPrescriptionProfile}')))) AS posted
                  FROM {sql.ReleasesOfSubject("rel")}) b
            GROUP BY b.month, b.usmp, b.kind, 4, 5
            """,
        (row, add) =>
        {
            add("releases", null);
            if (row.Outcome == 0) return;
            if (row.Detail == 0) add("on-time", null);
            else add("late", row.Detail);
        });

    public static IReadOnlyDictionary<string, MeasureDefinition> All { get; } =
        new[] { SortieAvecPaquet }.ToDictionary(m => m.Id, StringComparer.Ordinal);
}
