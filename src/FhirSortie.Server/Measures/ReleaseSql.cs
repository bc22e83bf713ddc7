using System.Globalization;
using System.Text;

namespace FhirSortie.Server.Measures;

/// <summary>
/// The SQL shared by the measures, over the index tables only (search_date, search_token, search_reference, resources'
/// keys and resource_versions' first versions; no resource is loaded): the releases of the period, one row per
/// DetentionStay whose status is finished and whose release-date (period.end) falls in the period, Paris time, with its
/// month, the FINESS of its USMP (serviceProvider) and its kind of exit (exit-kind). The same text runs on SQLite and
/// PostgreSQL; values are bound as parameters (@from, @to, @finess, @s0...).
/// </summary>
public sealed class ReleaseSql(DateOnly periodStart, DateOnly periodEnd, IReadOnlyList<string>? usmps)
{
    public const string FinessSystem = Security.Finess.System;

    public DateOnly PeriodStart { get; } = periodStart;
    public DateOnly PeriodEnd { get; } = periodEnd;

    /// <summary>The FINESS of the USMPs evaluated, or null for all.</summary>
    public IReadOnlyList<string>? Usmps { get; } = usmps;

    /// <summary>UTC milliseconds: midnight Paris time at the start of periodStart, and after periodEnd.</summary>
    public long From => ParisTime.StartOfDay(PeriodStart);
    public long To => ParisTime.StartOfDay(PeriodEnd.AddDays(1));

    /// <summary>The months of the period, YYYY-MM.</summary>
    public IReadOnlyList<string> Months
    {
        get
        {
            var months = new List<string>();
            for (var m = new DateOnly(PeriodStart.Year, PeriodStart.Month, 1); m <= PeriodEnd; m = m.AddMonths(1))
                months.Add(m.ToString("yyyy-MM", CultureInfo.InvariantCulture));
            return months;
        }
    }

    /// <summary>Paris wall-clock milliseconds of a UTC-milliseconds expression (exact one year around the period).</summary>
    public string Local(string utcMs) => ParisTime.Local(utcMs, PeriodStart.Year - 1, PeriodEnd.Year + 1);

    /// <summary>The Paris calendar day number of a UTC-milliseconds expression.</summary>
    public string Day(string utcMs) => $"({Local(utcMs)} / {ParisTime.DayMs})";

    /// <summary>YYYY-MM of a UTC-milliseconds expression known to lie in the period.</summary>
    public string MonthOf(string utcMs)
    {
        var months = Months;
        if (months.Count == 1) return $"'{months[0]}'";
        var local = Local(utcMs);
        var sql = new StringBuilder("(CASE");
        for (var i = 0; i < months.Count - 1; i++)
        {
            var next = DateOnly.ParseExact(months[i + 1] + "-01", "yyyy-MM-dd", CultureInfo.InvariantCulture);
            sql.Append(CultureInfo.InvariantCulture, $" WHEN {local} < {ParisTime.LocalMs(next)} THEN '{months[i]}'");
        }
        sql.Append(CultureInfo.InvariantCulture, $" ELSE '{months[^1]}' END)");
        return sql.ToString();
    }

    /// <summary>
    /// The releases of the period as a derived table: rkey and id of the stay, released (UTC ms), month, usmp (FINESS),
    /// kind (exit-kind code), patient (the stay's subject) and started (UTC ms of period.start, the 'date' low).
    /// </summary>
    public string Releases => $"""
        (SELECT d.rkey AS rkey, r.id AS stay, d.low AS released, {MonthOf("d.low")} AS month,
            (SELECT MIN(ft.code) FROM search_reference sp
                JOIN resources o ON o.type = 'Organization' AND o.id = sp.target_id AND o.deleted = 0
                JOIN search_token ft ON ft.rkey = o.rkey AND ft.param = 'identifier' AND ft.system = @finess
             WHERE sp.rkey = d.rkey AND sp.param = 'service-provider') AS usmp,
            (SELECT MIN(k.code) FROM search_token k WHERE k.rkey = d.rkey AND k.param = 'exit-kind') AS kind,
            (SELECT MIN(ps.target_id) FROM search_reference ps WHERE ps.rkey = d.rkey AND ps.param = 'subject' AND ps.target_type = 'Patient') AS patient,
            (SELECT MIN(sd.low) FROM search_date sd WHERE sd.rkey = d.rkey AND sd.param = 'date') AS started
         FROM search_date d
         JOIN resources r ON r.rkey = d.rkey AND r.deleted = 0
         WHERE d.type = 'Encounter' AND d.param = 'release-date' AND d.low >= @from AND d.low < @to
           AND EXISTS (SELECT 1 FROM search_token st WHERE st.rkey = d.rkey AND st.param = 'status' AND st.code = 'finished'))
        """;

    /// <summary>The releases of the USMPs evaluated (all when <see cref="Usmps"/> is null), as a derived table aliased <paramref name="alias"/>.</summary>
    public string ReleasesOfSubject(string alias) => Usmps is null
        ? $"{Releases} {alias}"
        : $"(SELECT * FROM {Releases} rel WHERE rel.usmp IN ({string.Join(", ", Usmps.Select((_, i) => "@s" + i.ToString(CultureInfo.InvariantCulture)))})) {alias}";

    public IEnumerable<(string Name, object Value)> Parameters()
    {
        yield return ("@from", From);
        yield return ("@to", To);
        yield return ("@finess", FinessSystem);
        if (Usmps is null) yield break;
        for (var i = 0; i < Usmps.Count; i++) yield return ("@s" + i.ToString(CultureInfo.InvariantCulture), Usmps[i]);
    }
}
