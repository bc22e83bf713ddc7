namespace FhirSortie.Server.Measures;

/// <summary>One cell row of a report: the total (<see cref="Stratifier"/> null) or one value of one stratifier.</summary>
public sealed record Stratum(string? Stratifier, string Value)
{
    public static readonly Stratum Total = new(null, "");
}

/// <summary>
/// A nesting the reader of a report can rely on: every member of each inner population is a member of the outer one,
/// and the inner ones are disjoint (numerator inside denominator; delivered on time and delivered late inside releases).
/// What is left (outer minus the inner ones) is never published, but is derivable from published counts.
/// </summary>
public sealed record Nesting(string Outer, IReadOnlyList<string> Inner);

/// <summary>
/// The counts of a measure's population sets, in the total and in every stratum of every stratifier, summed from the
/// database's aggregate rows (month × USMP × kind of exit × outcome). A population set is one set of releases (or
/// hand-offs...), named by a key: two groups that count the same set share it, so that they are masked alike.
/// Observations (delays in days) are kept as per-stratum histograms for medians.
/// </summary>
public sealed class CountTable
{
    public const string Month = "mois";
    public const string Usmp = "usmp";
    public const string ExitKind = "type-sortie";
    public const string Unknown = "non-renseigne";

    public static readonly IReadOnlyList<string> Stratifiers = [Month, Usmp, ExitKind];

    private readonly Dictionary<string, Dictionary<Stratum, long>> _counts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<Stratum, SortedDictionary<long, long>>> _observations = new(StringComparer.Ordinal);

    public CountTable(IEnumerable<string> populations, IReadOnlyList<Nesting> nestings, IEnumerable<string> months)
    {
        foreach (var population in populations) _counts[population] = [];
        Nestings = nestings;
        foreach (var month in months) Values[Month].Add(month);
    }

    public IReadOnlyList<Nesting> Nestings { get; }

    /// <summary>The values of each stratifier, in report order (months of the period, then USMPs and kinds as found).</summary>
    public Dictionary<string, SortedSet<string>> Values { get; } = new(StringComparer.Ordinal)
    {
        [Month] = new(StringComparer.Ordinal),
        [Usmp] = new(StringComparer.Ordinal),
        [ExitKind] = new(StringComparer.Ordinal),
    };

    public IEnumerable<string> Populations => _counts.Keys;

    public IEnumerable<Stratum> Strata(string stratifier) => Values[stratifier].Select(v => new Stratum(stratifier, v));

    /// <summary>The total and every stratum.</summary>
    public IEnumerable<Stratum> AllStrata => Stratifiers.SelectMany(Strata).Prepend(Stratum.Total);

    public long Count(string population, Stratum stratum) => _counts[population].GetValueOrDefault(stratum);

    /// <summary>Adds <paramref name="count"/> members of <paramref name="population"/> released in this month, USMP and kind.</summary>
    public void Add(string population, string month, string usmp, string kind, long count, long? observation = null)
    {
        Values[Usmp].Add(usmp);
        Values[ExitKind].Add(kind);
        foreach (var stratum in new[] { Stratum.Total, new Stratum(Month, month), new Stratum(Usmp, usmp), new Stratum(ExitKind, kind) })
        {
            var counts = _counts[population];
            counts[stratum] = counts.GetValueOrDefault(stratum) + count;
            if (observation is not { } value) continue;
            if (!_observations.TryGetValue(population, out var byStratum)) _observations[population] = byStratum = [];
            if (!byStratum.TryGetValue(stratum, out var histogram)) byStratum[stratum] = histogram = [];
            histogram[value] = histogram.GetValueOrDefault(value) + count;
        }
    }

    /// <summary>The median of the observations of <paramref name="population"/> in this stratum (lower median), or null.</summary>
    public long? Median(string population, Stratum stratum)
    {
        if (!_observations.TryGetValue(population, out var byStratum) || !byStratum.TryGetValue(stratum, out var histogram)) return null;
        var total = histogram.Values.Sum();
        if (total == 0) return null;
        var rank = (total + 1) / 2;
        long seen = 0;
        foreach (var (value, count) in histogram)
        {
            seen += count;
            if (seen >= rank) return value;
        }
        return null;
    }
}
