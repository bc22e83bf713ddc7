using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Measures;

/// <summary>
/// What an attacker can do with a published MeasureReport, done independently of the gateway's suppression code: read
/// the counts, subtract the published strata of each stratifier from the total, subtract numerator from denominator.
/// Any count of 1 to 10 so obtained (or published) is a failure, and so is a masked count that subtraction recovers.
/// </summary>
internal static class ReportChecks
{
    private const string Masked = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

    public static long? Count(Integer? element) =>
        element?.Value is { } value ? value : element?.Extension.Any(e => e.Url == Masked && e.Value is Code { Value: "masked" }) == true ? null
        : throw new InvalidOperationException("a count with neither a value nor data-absent-reason masked");

    public static long? Count(MeasureReport.GroupComponent group, string population) =>
        Count(group.Population.Single(p => CodeOf(p.Code) == population).CountElement);

    public static long? Count(MeasureReport.StratifierGroupComponent stratum, string population) =>
        Count(stratum.Population.Single(p => CodeOf(p.Code) == population).CountElement);

    public static MeasureReport.StratifierGroupComponent Stratum(MeasureReport.GroupComponent group, string stratifier, string value) =>
        group.Stratifier.Single(s => CodeOf(s.Code[0]) == stratifier).Stratum
            .Single(s => s.Value?.Text == value || s.Value?.Coding.Any(c => c.Code == value) == true);

    public static string CodeOf(CodeableConcept? concept) => concept?.Coding.FirstOrDefault()?.Code ?? "";

    public static List<string> Disclosures(MeasureReport report)
    {
        var problems = new List<string>();
        foreach (var group in report.Group)
        {
            var name = CodeOf(group.Code);
            var codes = group.Population.Select(p => CodeOf(p.Code)).ToList();
            foreach (var code in codes)
            {
                var total = Count(group, code);
                if (total is > 0 and < 11) problems.Add($"{name}/{code}: total {total} published");
                foreach (var stratifier in group.Stratifier)
                {
                    var values = stratifier.Stratum.Select(s => (Label: s.Value?.Text ?? "", Count: Count(s, code))).ToList();
                    foreach (var (label, count) in values)
                        if (count is > 0 and < 11) problems.Add($"{name}/{code}/{label}: {count} published");
                    var unknown = values.Where(v => v.Count is null).ToList();
                    if (total == 0) continue; // a zero total publishes that every stratum is 0: nobody to find
                    if (total is { } t)
                    {
                        var derived = t - values.Sum(v => v.Count ?? 0);
                        if (unknown.Count == 1) problems.Add($"{name}/{code}/{unknown[0].Label}: recovered as {derived} from the total");
                        else if (unknown.Count > 1 && derived is > 0 and < 11) problems.Add($"{name}/{code}/{CodeOf(stratifier.Code[0])}: masked strata add up to {derived}");
                    }
                    else if (unknown.Count == 0 && values.Count > 0) problems.Add($"{name}/{code}: masked total recovered from {CodeOf(stratifier.Code[0])}");
                }
            }
            // Numerator inside denominator, measure-population inside initial-population, in the total and every stratum.
            var pairs = new[] { ("denominator", "numerator"), ("initial-population", "measure-population") }.Where(p => codes.Contains(p.Item1) && codes.Contains(p.Item2));
            foreach (var (outer, inner) in pairs)
            {
                void Check(string where, long? o, long? i)
                {
                    if (o is { } a && i is { } b && a - b is > 0 and < 11) problems.Add($"{name}/{where}: {outer} - {inner} = {a - b}");
                }
                Check("total", Count(group, outer), Count(group, inner));
                foreach (var stratum in group.Stratifier.SelectMany(s => s.Stratum)) Check(stratum.Value?.Text ?? "", Count(stratum, outer), Count(stratum, inner));
            }
        }
        return problems;
    }
}
