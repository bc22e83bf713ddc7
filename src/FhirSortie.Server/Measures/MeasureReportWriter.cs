using System.Globalization;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Measures;

/// <summary>
/// The summary MeasureReport of an evaluation: counts only (no person, no resource id: the USMPs are named by FINESS
/// and name, the subject likewise), every masked count or score without its value and with the data-absent-reason
/// extension <c>masked</c> (on the element: <c>_count</c>, <c>measureScore.extension</c>).
/// </summary>
public static class MeasureReportWriter
{
    public const string DataAbsentReason = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
    public const string PopulationSystem = "http://terminology.hl7.org/CodeSystem/measure-population";
    public const string StratifierSystem = "https://fhirsortie.fr/fhir/CodeSystem/measure-stratifier";
    public const string GroupSystem = "https://fhirsortie.fr/fhir/CodeSystem/continuity-indicator";

    public sealed record Subject(string Finess, string? Name);

    public static MeasureReport Write(Measure published, MeasureDefinition measure, MeasureEvaluation.Result result, ReleaseSql sql,
        Subject? subject, DateTimeOffset now)
    {
        var table = result.Table;
        var masked = SmallCountSuppression.Masked(table);
        var report = new MeasureReport
        {
            Status = MeasureReport.MeasureReportStatus.Complete,
            Type = MeasureReport.MeasureReportType.Summary,
            Measure = published.Version is { } version ? $"{measure.Url}|{version}" : measure.Url,
            DateElement = new FhirDateTime(now),
            Period = new Period
            {
                Start = sql.PeriodStart.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                End = sql.PeriodEnd.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            },
            Reporter = new ResourceReference { Display = "FhirSortie" },
            ImprovementNotation = published.ImprovementNotation,
        };
        if (subject is not null)
            report.Subject = new ResourceReference { Type = "Organization", Identifier = new Identifier(ReleaseSql.FinessSystem, subject.Finess), Display = subject.Name };
        foreach (var group in measure.Groups)
        {
            var definition = published.Group.FirstOrDefault(g => g.Code?.Coding.Any(c => c.Code == group.Code) == true);
            var reported = new MeasureReport.GroupComponent { Code = definition?.Code ?? new CodeableConcept(GroupSystem, group.Code) };
            reported.Population.AddRange(Populations(table, masked, group, Stratum.Total));
            reported.MeasureScore = Score(table, masked, group.Score, Stratum.Total);
            foreach (var stratifier in CountTable.Stratifiers)
            {
                var code = definition?.Stratifier.FirstOrDefault(s => s.Code?.Coding.Any(x => x.Code == stratifier) == true)?.Code
                    ?? new CodeableConcept(StratifierSystem, stratifier);
                var component = new MeasureReport.StratifierComponent { Code = [code] };
                foreach (var stratum in table.Strata(stratifier))
                {
                    var reportedStratum = new MeasureReport.StratifierGroupComponent { Value = Value(stratum, result.UsmpNames) };
                    foreach (var population in Populations(table, masked, group, stratum))
                        reportedStratum.Population.Add(new MeasureReport.StratifierGroupPopulationComponent { Code = population.Code, CountElement = population.CountElement });
                    reportedStratum.MeasureScore = Score(table, masked, group.Score, stratum);
                    component.Stratum.Add(reportedStratum);
                }
                reported.Stratifier.Add(component);
            }
            report.Group.Add(reported);
        }
        return report;
    }

    private static IEnumerable<MeasureReport.PopulationComponent> Populations(CountTable table, HashSet<(string, Stratum)> masked, MeasureGroup group, Stratum stratum) =>
        group.Populations.Select(p => new MeasureReport.PopulationComponent
        {
            Code = new CodeableConcept(PopulationSystem, p.Code),
            CountElement = masked.Contains((p.Population, stratum))
                ? new Integer { Extension = [Masked()] }
                : new Integer(checked((int)table.Count(p.Population, stratum))),
        });

    private static Quantity? Score(CountTable table, HashSet<(string, Stratum)> masked, Score score, Stratum stratum)
    {
        switch (score)
        {
            case Proportion(var numerator, var denominator):
                if (masked.Contains((numerator, stratum)) || masked.Contains((denominator, stratum))) return new Quantity { Extension = [Masked()] };
                var d = table.Count(denominator, stratum);
                return d == 0 ? null : new Quantity { Value = Math.Round((decimal)table.Count(numerator, stratum) / d, 4) };
            case MedianDays(var population):
                var count = table.Count(population, stratum);
                if (count == 0) return null;
                // A median describes its people: given over at least 11 of them, and never for a masked count.
                if (masked.Contains((population, stratum)) || count < SmallCountSuppression.Threshold) return new Quantity { Extension = [Masked()] };
                return table.Median(population, stratum) is { } median
                    ? new Quantity { Value = median, Unit = "j", System = "http://unitsofmeasure.org", Code = "d" }
                    : null;
            default:
                return null;
        }
    }

    private static Extension Masked() => new(DataAbsentReason, new Code("masked"));

    private static CodeableConcept Value(Stratum stratum, IReadOnlyDictionary<string, string> usmpNames)
    {
        if (stratum.Value == CountTable.Unknown) return new CodeableConcept { Text = CountTable.Unknown };
        return stratum.Stratifier switch
        {
            CountTable.Usmp => new CodeableConcept(ReleaseSql.FinessSystem, stratum.Value, usmpNames.GetValueOrDefault(stratum.Value), usmpNames.GetValueOrDefault(stratum.Value) ?? stratum.Value),
            CountTable.ExitKind => new CodeableConcept(Exit.ReleaseDates.ExitKinds, stratum.Value, ExitKindDisplay(stratum.Value), ExitKindDisplay(stratum.Value) ?? stratum.Value),
            _ => new CodeableConcept { Text = stratum.Value },
        };
    }

    private static string? ExitKindDisplay(string code) => code switch
    {
        "fin-de-peine" => "Sortie sèche / fin de peine (sans aménagement)",
        "transfert" => "Transfert vers un autre établissement pénitentiaire",
        "placement-exterieur" => "Placement extérieur",
        "semi-liberte" => "Semi-liberté",
        "surveillance-electronique" => "Surveillance électronique (PSE / DDSE)",
        "liberation-conditionnelle" => "Libération conditionnelle",
        "suspension-peine-medicale" => "Suspension de peine pour raison médicale",
        _ => null,
    };
}
