namespace FhirSortie.Server.Measures;

/// <summary>How a group's measureScore is computed from its counts.</summary>
public abstract record Score;

/// <summary>numerator / denominator (4 decimals); none when the denominator is 0.</summary>
public sealed record Proportion(string Numerator, string Denominator) : Score;

/// <summary>The median (lower median, whole days) of the observations of a population set, in days (UCUM d).</summary>
public sealed record MedianDays(string Population) : Score;

/// <summary>One group of a Measure: its code (conformance/measures), its populations (measure-population code → set) and its score.</summary>
public sealed record MeasureGroup(string Code, IReadOnlyList<(string Code, string Population)> Populations, Score Score);

/// <summary>
/// One aggregate row of a measure's SQL: releases (or hand-offs) of one month, one USMP (FINESS, null when the stay
/// names none) and one kind of exit (null when absent), with the measure's own outcome columns, and how many.
/// </summary>
public sealed record OutcomeRow(string Month, string? Usmp, string? Kind, long Outcome, long Detail, long Count);

/// <summary>
/// A continuity indicator as the gateway computes it: the SQL that aggregates its rows inside the database
/// (<see cref="ReleaseSql"/>), which population sets each row belongs to, and the groups reported. Its published
/// definition (French and English, numerator and denominator) is conformance/measures/{Id}.json.
/// </summary>
public sealed record MeasureDefinition(
    string Id,
    IReadOnlyList<string> Populations,
    IReadOnlyList<Nesting> Nestings,
    IReadOnlyList<MeasureGroup> Groups,
    Func<ReleaseSql, string> Sql,
    Action<OutcomeRow, Action<string, long?>> Classify)
{
    public string Url => "https://fhirsortie.fr/fhir/Measure/" + Id;
}
