using System.Globalization;
using System.Text;

namespace FhirSortie.Server.Measures;

/// <summary>
/// Calendar days and months as people in France count them (Europe/Paris), in SQL: a release at 00:30 on the 1st of
/// the month, Paris time, is a release of that day and month, not of the previous UTC day. The stored instants are UTC
/// milliseconds; <see cref="Local"/> adds the offset of the EU rule in force since 1996 (UTC+1, UTC+2 from the last
/// Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC) as a CASE over the transitions of the years
/// concerned. The rule is written out because the counting happens in SQL, and SQLite has no time zone database
/// (PostgreSQL's AT TIME ZONE would be a second, dialect-specific path); the C# boundaries below use the same rule so
/// that a period's first and last day agree with the SQL's local days.
/// </summary>
public static class ParisTime
{
    public const long DayMs = 86_400_000;
    private const long HourMs = 3_600_000;

    /// <summary>UTC milliseconds of midnight Paris time at the start of <paramref name="day"/>.</summary>
    public static long StartOfDay(DateOnly day)
    {
        var local = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero).ToUnixTimeMilliseconds();
        // The offset in force at local midnight (transitions happen at 02:00 or 03:00 local time, never at midnight).
        var guess = local - HourMs;
        return local - OffsetAt(guess);
    }

    /// <summary>The offset of Paris time from UTC at the UTC instant <paramref name="utcMs"/>.</summary>
    public static long OffsetAt(long utcMs)
    {
        var year = DateTimeOffset.FromUnixTimeMilliseconds(utcMs).Year;
        var (summer, winter) = Transitions(year);
        return utcMs >= summer && utcMs < winter ? 2 * HourMs : HourMs;
    }

    /// <summary>
    /// SQL giving the Paris wall-clock time of <paramref name="utcMs"/> (a column or expression of UTC milliseconds), as
    /// milliseconds since 1970-01-01 00:00 local: divided by <see cref="DayMs"/> it is the local day number, compared
    /// with <see cref="LocalMs"/> of a date it is the local month. Exact for the years <paramref name="fromYear"/> to
    /// <paramref name="toYear"/> (outside: UTC+1, off by an hour in summer only).
    /// </summary>
    public static string Local(string utcMs, int fromYear, int toYear)
    {
        var sql = new StringBuilder("(CASE");
        for (var year = fromYear; year <= toYear; year++)
        {
            var (summer, winter) = Transitions(year);
            sql.Append(CultureInfo.InvariantCulture, $" WHEN {utcMs} >= {summer} AND {utcMs} < {winter} THEN {utcMs} + {2 * HourMs}");
        }
        sql.Append(CultureInfo.InvariantCulture, $" ELSE {utcMs} + {HourMs} END)");
        return sql.ToString();
    }

    /// <summary>Local milliseconds (as <see cref="Local"/> counts them) of midnight at the start of <paramref name="day"/>.</summary>
    public static long LocalMs(DateOnly day) => new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero).ToUnixTimeMilliseconds();

    private static (long Summer, long Winter) Transitions(int year) =>
        (LastSundayAt1Utc(year, 3), LastSundayAt1Utc(year, 10));

    private static long LastSundayAt1Utc(int year, int month)
    {
        var last = new DateTime(year, month, DateTime.DaysInMonth(year, month), 1, 0, 0, DateTimeKind.Utc);
        while (last.DayOfWeek != DayOfWeek.Sunday) last = last.AddDays(-1);
        return new DateTimeOffset(last).ToUnixTimeMilliseconds();
    }
}
