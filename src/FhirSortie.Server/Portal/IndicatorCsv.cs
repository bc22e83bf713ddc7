using System.Text;

namespace FhirSortie.Server.Portal;

/// <summary>
/// A MeasureReport's strata as CSV (issue 24): one line for the whole population and one per stratum (month, prison,
/// kind of exit) of every group, French headers, a suppressed count written "&lt; 11" (never a number), the rate with a
/// decimal comma as French spreadsheets read numbers. Encoding and separator: <see cref="PortalCsv"/>.
/// </summary>
public static class IndicatorCsv
{
    public static readonly string[] Headers =
        ["Indicateur", "Groupe", "Début de période", "Fin de période", "Stratification", "Strate", "Code de la strate", "Population initiale", "Dénominateur", "Numérateur", "Score", "Unité du score"];

    public static string Of(string measureTitle, IndicatorReport report)
    {
        var csv = new StringBuilder(PortalCsv.Bom).Append(PortalCsv.Line(Headers));
        foreach (var group in report.Groups)
        {
            csv.Append(Line(measureTitle, group, report, "Ensemble", group.Total));
            foreach (var (stratifier, rows) in group.Strata)
                foreach (var row in rows) csv.Append(Line(measureTitle, group, report, StratifierLabel(stratifier), row));
        }
        return csv.ToString();
    }

    public static string StratifierLabel(string code) => code switch
    {
        IndicatorReport.Month => "Mois",
        IndicatorReport.Prison => "Établissement (USMP)",
        IndicatorReport.ExitKind => "Type de sortie",
        _ => code,
    };

    private static string Line(string title, IndicatorGroup group, IndicatorReport report, string stratifier, IndicatorRow row) => PortalCsv.Line(
    [
        title, group.Label, PortalPage.Date(report.PeriodStart), PortalPage.Date(report.PeriodEnd), stratifier, row.Label, row.Key == "total" ? "" : row.Key,
        row.Initial.Plain, row.Denominator.Plain, row.Numerator.Plain,
        row.Masked ? IndicatorReport.MaskedLabel : row.Score.Value?.ToString("0.#", PortalPage.French) ?? "", row.Score.Unit,
    ]);
}
