using System.Globalization;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Portal;

/// <summary>One count of a MeasureReport: a number, suppressed ("&lt; 11", data-absent-reason masked), or not given.</summary>
public readonly record struct IndicatorCount(int? Value, bool Masked)
{
    public static readonly IndicatorCount None = new(null, false);

    /// <summary>A population's count element (of the group or of a stratum); null when the report has no such population.</summary>
    public static IndicatorCount Of(Integer? count, bool present) =>
        !present ? None
        : count?.GetExtension(IndicatorReport.DataAbsentReason)?.Value is Code { Value: "masked" } ? new IndicatorCount(null, true)
        : new IndicatorCount(count?.Value, false);

    /// <summary>What a person reads: the number, "&lt; 11" when suppressed, "—" when not given.</summary>
    public string Shown => Masked ? IndicatorReport.MaskedLabel : Value?.ToString("N0", PortalPage.French) ?? "—";

    /// <summary>For a spreadsheet: digits only (no thousands space, which Excel would read as text), "&lt; 11", or empty.</summary>
    public string Plain => Masked ? IndicatorReport.MaskedLabel : Value?.ToString(CultureInfo.InvariantCulture) ?? "";
}

/// <summary>A measureScore: a proportion in percent ("%"), a median in days ("j"), or suppressed (data-absent-reason masked).</summary>
public readonly record struct IndicatorScore(decimal? Value, string Unit, bool Masked)
{
    public static readonly IndicatorScore None = new(null, "", false);

    public bool IsPercent => Unit == "%";

    /// <summary>A proportion's fraction of 1 as a percentage (FHIR proportion scoring, or "%" as is); a UCUM day as days.</summary>
    public static IndicatorScore Of(Quantity? score)
    {
        if (score is null) return None;
        if (score.GetExtension(IndicatorReport.DataAbsentReason)?.Value is Code { Value: "masked" }) return new IndicatorScore(null, "", true);
        if (score.Value is not { } value) return None;
        if (score.Code == "d") return new IndicatorScore(Math.Round(value, 1), "j", false);
        return new IndicatorScore(score.Code == "%" || score.Unit == "%" ? Math.Round(value, 1) : Math.Round(value * 100, 1), "%", false);
    }
}

/// <summary>One row of an indicator: the whole population or one stratum (a month, a prison, a kind of exit).</summary>
public sealed record IndicatorRow(string Key, string Label, IndicatorCount Initial, IndicatorCount Denominator, IndicatorCount Numerator, IndicatorScore Score)
{
    /// <summary>Suppressed: a count or the score is masked, so no rate and no bar may be shown (it would give the count away).</summary>
    public bool Masked => Initial.Masked || Denominator.Masked || Numerator.Masked || Score.Masked;

    public decimal? ScorePercent => Score.IsPercent ? Score.Value : null;

    /// <summary>The value a chart draws: the score when the report gives one, else the numerator; null when masked or absent.</summary>
    public decimal? Drawn => Masked ? null : Score.Value ?? Numerator.Value;

    /// <summary>"12 sur 20", or "&lt; 11" when suppressed.</summary>
    public string Ratio => Masked ? IndicatorReport.MaskedLabel : $"{Numerator.Shown} sur {Denominator.Shown}";

    public string ScoreShown => Masked ? IndicatorReport.MaskedLabel : Score.Value is { } score ? score.ToString("0.#", PortalPage.French) + " " + Score.Unit : "—";
}

/// <summary>One group of a MeasureReport: its totals and its strata by stratifier code (mois, usmp, type-sortie).</summary>
public sealed record IndicatorGroup(string Label, IndicatorRow Total, IReadOnlyDictionary<string, IReadOnlyList<IndicatorRow>> Strata);

/// <summary>
/// A summary MeasureReport of <c>Measure/{id}/$evaluate-measure</c> read for display: counts only (the report holds no
/// person), suppressed counts kept as such, months labelled in French. Nothing here guesses a suppressed value.
/// </summary>
public sealed record IndicatorReport(string MeasureId, string? PeriodStart, string? PeriodEnd, IReadOnlyList<IndicatorGroup> Groups)
{
    public const string DataAbsentReason = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
    public const string MaskedLabel = "< 11";
    public const string Month = "mois";
    public const string Prison = "usmp";
    public const string ExitKind = "type-sortie";

    public static IndicatorReport Of(string measureId, MeasureReport report) =>
        new(measureId, report.Period?.Start, report.Period?.End, [.. report.Group.Select((g, i) => Group(g, i, report.Group.Count))]);

    private static IndicatorGroup Group(MeasureReport.GroupComponent group, int index, int count)
    {
        var label = group.Code?.Text ?? group.Code?.Coding.FirstOrDefault()?.Display ?? group.Code?.Coding.FirstOrDefault()?.Code ?? (count > 1 ? $"Groupe {index + 1}" : "Ensemble");
        var total = Row("total", "Ensemble", group.Population.Select(p => (p.Code, p.CountElement)), group.MeasureScore);
        var strata = new Dictionary<string, IReadOnlyList<IndicatorRow>>(StringComparer.Ordinal);
        foreach (var stratifier in group.Stratifier)
        {
            var code = stratifier.Code.SelectMany(c => c.Coding).Select(c => c.Code).FirstOrDefault(c => c is not null) ?? stratifier.Code.FirstOrDefault()?.Text;
            if (code is null) continue;
            var rows = stratifier.Stratum.Select(s => Row(KeyOf(s.Value), LabelOf(code, s.Value), s.Population.Select(p => (p.Code, p.CountElement)), s.MeasureScore)).ToList();
            // Months in time order, the rest by label.
            strata[code] = code == Month ? [.. rows.OrderBy(r => r.Key, StringComparer.Ordinal)] : [.. rows.OrderBy(r => r.Label, StringComparer.Create(PortalPage.French, false))];
        }
        return new IndicatorGroup(label, total, strata);
    }

    /// <summary>A row from populations (the group's or a stratum's: two FHIR types of the same shape, code and count).</summary>
    private static IndicatorRow Row(string key, string label, IEnumerable<(CodeableConcept? Code, Integer? Count)> populations, Quantity? score)
    {
        var list = populations.ToList();
        IndicatorCount Find(string code) => list.FirstOrDefault(p => p.Code?.Coding.Any(c => c.Code == code) == true) is { Code: not null } p ? IndicatorCount.Of(p.Count, true) : IndicatorCount.None;
        return new IndicatorRow(key, label, Find("initial-population"), Find("denominator"), Find("numerator"), IndicatorScore.Of(score));
    }

    private static string KeyOf(CodeableConcept? value) => value?.Coding.FirstOrDefault()?.Code ?? value?.Text ?? "";

    private static string LabelOf(string stratifier, CodeableConcept? value)
    {
        var key = KeyOf(value);
        if (stratifier == Month && DateTime.TryParseExact(key, "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.None, out var month))
            return month.ToString("MMMM yyyy", PortalPage.French);
        return value?.Text ?? value?.Coding.FirstOrDefault()?.Display ?? ExitKindLabel(key) ?? key;
    }

    // The exit-kind CodeSystem (profiles/), shortened for a chart's axis.
    private static string? ExitKindLabel(string code) => code switch
    {
        "fin-de-peine" => "Fin de peine (sans aménagement)",
        "transfert" => "Transfert",
        "placement-exterieur" => "Placement extérieur",
        "semi-liberte" => "Semi-liberté",
        "surveillance-electronique" => "Surveillance électronique",
        "liberation-conditionnelle" => "Libération conditionnelle",
        "suspension-peine-medicale" => "Suspension de peine médicale",
        _ => null,
    };
}
