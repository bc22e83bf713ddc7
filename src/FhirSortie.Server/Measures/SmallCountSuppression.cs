namespace FhirSortie.Server.Measures;

/// <summary>
/// Statistical secrecy for the continuity indicators: which counts of a <see cref="CountTable"/> are published as
/// "&lt; 11" (masked) instead of their value. The rule is the one the CNIL and the SNDS apply to health data (no count
/// of 1 to 10 people is disclosed), with complementary suppression so that no masked count can be recovered by
/// subtraction:
/// <list type="number">
/// <item>Primary: every count of 1 to 10 is masked. Zeros are published (they describe nobody).</item>
/// <item>Nesting (numerator inside denominator, disjoint numerators inside a denominator): what a reader can derive,
/// the outer count minus the published inner ones, must not be 1 to 10; otherwise the smallest non-zero published inner
/// count is masked too (the outer one if none is left). Inside a masked outer count every inner count is masked
/// (a masked cell must not be described by its parts: "0 of the &lt; 11 had a package" discloses their situation).</item>
/// <item>Partitions (each stratifier's strata add up to the total): with the total known, a stratifier never has
/// exactly one masked stratum (it would be the total minus the others), and its masked strata never add up to 1 to 10;
/// otherwise the smallest non-zero published stratum is masked too (the total if none is left, unless it is 0: a zero
/// total says every stratum is 0, which describes nobody). A masked total is not
/// left derivable either: a stratifier whose strata are all published gets one masked.</item>
/// </list>
/// Repeated until nothing changes (each step only adds masks). With one-dimensional stratifiers that share only the
/// total, this leaves no masked count that is a linear function of the published ones: a masked stratum needs the
/// total and the other strata of its stratifier, and a masked total needs one complete stratifier (tested by solving
/// the published system in SmallCountSuppressionTests).
/// </summary>
public static class SmallCountSuppression
{
    public const int Threshold = 11;

    public static bool IsSmall(long count) => count is > 0 and < Threshold;

    public static HashSet<(string Population, Stratum Stratum)> Masked(CountTable table)
    {
        var masked = new HashSet<(string, Stratum)>();
        bool changed;
        do
        {
            changed = false;
            foreach (var population in table.Populations)
            {
                foreach (var stratum in table.AllStrata)
                {
                    if (IsSmall(table.Count(population, stratum))) changed |= masked.Add((population, stratum));
                }
            }
            foreach (var nesting in table.Nestings)
            {
                foreach (var stratum in table.AllStrata) changed |= ProtectNesting(table, masked, nesting, stratum);
            }
            foreach (var population in table.Populations)
            {
                foreach (var stratifier in CountTable.Stratifiers) changed |= ProtectPartition(table, masked, population, stratifier);
            }
        }
        while (changed);
        return masked;
    }

    private static bool ProtectNesting(CountTable table, HashSet<(string, Stratum)> masked, Nesting nesting, Stratum stratum)
    {
        if (masked.Contains((nesting.Outer, stratum)))
        {
            var added = false;
            foreach (var inner in nesting.Inner) added |= masked.Add((inner, stratum));
            return added;
        }
        var derived = table.Count(nesting.Outer, stratum) - nesting.Inner.Where(i => !masked.Contains((i, stratum))).Sum(i => table.Count(i, stratum));
        if (!IsSmall(derived)) return false;
        var candidate = nesting.Inner.Where(i => !masked.Contains((i, stratum)) && table.Count(i, stratum) > 0)
            .OrderBy(i => table.Count(i, stratum)).ThenBy(i => i, StringComparer.Ordinal).FirstOrDefault();
        return masked.Add((candidate ?? nesting.Outer, stratum));
    }

    private static bool ProtectPartition(CountTable table, HashSet<(string, Stratum)> masked, string population, string stratifier)
    {
        var strata = table.Strata(stratifier).ToList();
        var hidden = strata.Where(s => masked.Contains((population, s))).ToList();
        var totalMasked = masked.Contains((population, Stratum.Total));
        bool exposed;
        if (totalMasked) exposed = hidden.Count == 0 && table.Count(population, Stratum.Total) > 0; // the total is the sum of the strata
        else exposed = hidden.Count == 1 || (hidden.Count > 1 && IsSmall(hidden.Sum(s => table.Count(population, s))));
        if (!exposed) return false;
        var candidate = strata.Where(s => !masked.Contains((population, s)) && table.Count(population, s) > 0)
            .OrderBy(s => table.Count(population, s)).ThenBy(s => s.Value, StringComparer.Ordinal).FirstOrDefault();
        if (candidate is not null) return masked.Add((population, candidate));
        // A total of 0 publishes that every stratum is 0: there is nobody to protect, and masking it would hide nothing.
        return !totalMasked && table.Count(population, Stratum.Total) > 0 && masked.Add((population, Stratum.Total));
    }
}
