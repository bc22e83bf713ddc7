using System.Globalization;
using System.Text;
using static FhirSortie.Server.Portal.PortalPage;

namespace FhirSortie.Server.Portal;

/// <summary>
/// A horizontal bar chart as inline SVG, drawn on the server: no script (the CSP allows none), no image to fetch, and
/// it prints. Accessible: the SVG is one image named by its title and description, each bar carries a title with
/// its figures, and the page puts the same figures in a table beneath (<see cref="Table"/>). A suppressed row gets
/// no bar at all, only the words "&lt; 11": a bar of any height would be a guess, or a disclosure.
/// </summary>
public static class IndicatorChart
{
    private const int Width = 760;
    private const int LabelWidth = 230;
    private const int BarArea = 400;
    private const int RowHeight = 26;
    private const int Top = 8;

    public static string Bars(string id, string title, IReadOnlyList<IndicatorRow> rows)
    {
        var percent = rows.Any(r => r.Score.IsPercent);
        var max = percent ? 100m : Math.Max(1m, rows.Select(r => r.Drawn ?? 0m).DefaultIfEmpty(0m).Max());
        var height = Top * 2 + RowHeight * Math.Max(1, rows.Count) + 18;
        var svg = new StringBuilder();
        svg.Append("<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-labelledby=\"").Append(id).Append("-t ").Append(id).Append("-d\" viewBox=\"0 0 ")
            .Append(Width).Append(' ').Append(height).Append("\" width=\"").Append(Width).Append("\" height=\"").Append(height).Append("\" class=\"bars\">")
            .Append("<title id=\"").Append(id).Append("-t\">").Append(H(title)).Append("</title>")
            .Append("<desc id=\"").Append(id).Append("-d\">").Append(H(Description(rows, percent))).Append("</desc>");
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            var y = Top + i * RowHeight;
            var text = Number(y + RowHeight / 2 + 5);
            svg.Append("<g><title>").Append(H(Figures(row))).Append("</title>")
                .Append("<text x=\"").Append(LabelWidth - 8).Append("\" y=\"").Append(text).Append("\" text-anchor=\"end\" class=\"axis\" fill=\"#1a1a1a\" font-size=\"13\">").Append(H(row.Label)).Append("</text>");
            if (row.Drawn is { } value)
            {
                var length = Math.Max(value > 0 ? 1m : 0m, value / max * BarArea);
                svg.Append("<rect x=\"").Append(LabelWidth).Append("\" y=\"").Append(y + 4).Append("\" width=\"").Append(Number(length)).Append("\" height=\"").Append(RowHeight - 8)
                    .Append("\" class=\"bar\" fill=\"#0b4f9c\"/>")
                    .Append("<text x=\"").Append(Number(LabelWidth + length + 6)).Append("\" y=\"").Append(text)
                    .Append("\" class=\"value\" fill=\"#1a1a1a\" font-size=\"13\">").Append(H(row.Score.Value is null ? row.Numerator.Shown : row.ScoreShown)).Append("</text>");
            }
            else
            {
                svg.Append("<text x=\"").Append(LabelWidth + 6).Append("\" y=\"").Append(text).Append("\" class=\"masked\" fill=\"#6b3a00\" font-size=\"13\" font-style=\"italic\">")
                    .Append(H(row.Masked ? IndicatorReport.MaskedLabel + " (effectif masqué)" : "—")).Append("</text>");
            }
            svg.Append("</g>");
        }
        // The scale's end, so a bar's length reads as a share of 100 % (or of the largest count).
        var axisY = Top + RowHeight * Math.Max(1, rows.Count) + 14;
        svg.Append("<line x1=\"").Append(LabelWidth).Append("\" y1=\"").Append(Top).Append("\" x2=\"").Append(LabelWidth).Append("\" y2=\"").Append(axisY - 12).Append("\" stroke=\"#555\"/>")
            .Append("<text x=\"").Append(LabelWidth).Append("\" y=\"").Append(axisY).Append("\" class=\"axis\" fill=\"#444\" font-size=\"12\">0</text>")
            .Append("<text x=\"").Append(LabelWidth + BarArea).Append("\" y=\"").Append(axisY).Append("\" text-anchor=\"end\" class=\"axis\" fill=\"#444\" font-size=\"12\">")
            .Append(H(percent ? "100 %" : max.ToString("N0", French))).Append("</text>");
        svg.Append("</svg></figure>");
        return svg.ToString();
    }

    /// <summary>The chart's figures as a table (the text alternative that a screen reader and a printout both read).</summary>
    public static string Table(string caption, string firstColumn, IReadOnlyList<IndicatorRow> rows)
    {
        var table = new StringBuilder("<table class=\"figures\"><caption>").Append(H(caption)).Append("</caption><thead><tr><th scope=\"col\">").Append(H(firstColumn))
            .Append("</th><th scope=\"col\">Population initiale</th><th scope=\"col\">Dénominateur</th><th scope=\"col\">Numérateur</th><th scope=\"col\">Proportion</th></tr></thead><tbody>");
        foreach (var row in rows)
            table.Append("<tr><th scope=\"row\">").Append(H(row.Label)).Append("</th><td>").Append(H(row.Initial.Shown)).Append("</td><td>").Append(H(row.Denominator.Shown))
                .Append("</td><td>").Append(H(row.Numerator.Shown)).Append("</td><td>").Append(H(row.ScoreShown)).Append("</td></tr>");
        return table.Append("</tbody></table>").ToString();
    }

    public static string Figures(IndicatorRow row) => row.Masked
        ? $"{row.Label} : effectif inférieur à 11, masqué (secret statistique)"
        : $"{row.Label} : {row.Ratio}" + (row.Score.Value is null ? "" : $" ({row.ScoreShown})");

    private static string Description(IReadOnlyList<IndicatorRow> rows, bool percent) =>
        rows.Count == 0 ? "Aucune donnée pour cette période."
            : (percent ? "Proportion, de 0 à 100 %. " : rows.Any(r => r.Score.Unit == "j") ? "Médiane en jours. " : "Effectifs. ") + string.Join(" ; ", rows.Select(Figures)) + ". Les mêmes chiffres sont dans le tableau sous le graphique.";

    private static string Number(decimal value) => Math.Round(value, 1).ToString("0.#", CultureInfo.InvariantCulture);

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);
}
