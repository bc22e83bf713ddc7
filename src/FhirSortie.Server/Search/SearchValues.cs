using System.Globalization;
using System.Text;
using FhirSortie.Server.Rest;

namespace FhirSortie.Server.Search;

public enum Prefix { Eq, Ne, Gt, Lt, Ge, Le, Sa, Eb, Ap }

/// <summary>A search value turned into the range its precision covers: "2024-03" is all of March, "5.4" is [5.35, 5.45).</summary>
/// <param name="Low">Inclusive lower bound.</param>
/// <param name="High">Exclusive upper bound for numbers; inclusive for dates (the last millisecond covered).</param>
/// <param name="Exact">The value as written (numbers), for gt/lt comparisons against the value itself.</param>
public sealed record RangeValue(Prefix Prefix, double Low, double High, double Exact);

/// <summary>Parsing of search values: escapes, prefixes, dates, numbers, quantities. Bad values are 400 in every handling mode.</summary>
public static class SearchValues
{
    /// <summary>
    /// 400 when a search value holds a NUL (%00): no FHIR string may contain one, and PostgreSQL refuses it in any text
    /// parameter, so the search would fail there instead of finding nothing (found by fuzzing, 2026-12-06).
    /// </summary>
    public static void RefuseNul(string name, string value)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
            throw FhirException.BadRequest($"The value of '{name}' contains a NUL character (%00), which no FHIR value can hold.", name);
    }

    /// <summary>Comma-separated values one parameter may list: each becomes a branch of the query (SQLite takes 500 at most).</summary>
    public const int MaxValues = 100;

    /// <summary>400 when <paramref name="value"/> lists more than <see cref="MaxValues"/> values (commas not escaped).</summary>
    public static void RefuseTooMany(string name, string value)
    {
        if (value.AsSpan().Count(',') >= MaxValues && Split(value, ',').Count > MaxValues)
            throw FhirException.Error(System.Net.HttpStatusCode.BadRequest, Hl7.Fhir.Model.OperationOutcome.IssueType.TooCostly,
                $"'{name}' lists more than {MaxValues} values; split the search.", name);
    }

    /// <summary>Splits on <paramref name="separator"/> unless escaped with a backslash (FHIR escaping of , | $ and \).</summary>
    public static List<string> Split(string value, char separator)
    {
        var parts = new List<string>();
        var current = new StringBuilder();
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\\' && i + 1 < value.Length)
            {
                current.Append(c).Append(value[++i]);
                continue;
            }
            if (c == separator)
            {
                parts.Add(current.ToString());
                current.Clear();
                continue;
            }
            current.Append(c);
        }
        parts.Add(current.ToString());
        return parts;
    }

    public static string Unescape(string value) =>
        value.Contains('\\') ? value.Replace("\\,", ",").Replace("\\|", "|").Replace("\\$", "$").Replace("\\\\", "\\") : value;

    /// <summary>Token "system|code" (either side may be empty), or a bare code (System is null then).</summary>
    public static (string? System, string? Code) Token(string value)
    {
        var parts = Split(value, '|');
        if (parts.Count == 1) return (null, Unescape(parts[0]));
        return (Unescape(parts[0]), parts.Count > 1 ? Unescape(string.Join('|', parts.Skip(1))) : null);
    }

    public static (Prefix Prefix, string Value) SplitPrefix(string value)
    {
        if (value.Length > 2 && char.IsLetter(value[0]) && char.IsLetter(value[1]))
        {
            Prefix? p = value[..2] switch
            {
                "eq" => Prefix.Eq, "ne" => Prefix.Ne, "gt" => Prefix.Gt, "lt" => Prefix.Lt, "ge" => Prefix.Ge,
                "le" => Prefix.Le, "sa" => Prefix.Sa, "eb" => Prefix.Eb, "ap" => Prefix.Ap, _ => null,
            };
            if (p is { } prefix) return (prefix, value[2..]);
        }
        return (Prefix.Eq, value);
    }

    /// <summary>A date search value ("ge2024-03", "2024-03-01T10:00:00+01:00") as an inclusive millisecond range.</summary>
    public static RangeValue Date(string parameter, string value)
    {
        var (prefix, rest) = SplitPrefix(value);
        if (ResourceIndexer.DateRange(rest) is not { } range)
            throw FhirException.BadRequest($"'{value}' is not a valid date search value for '{parameter}' (expected [prefix]YYYY[-MM[-DD[Thh:mm:ss[zone]]]]).", parameter);
        return new RangeValue(prefix, range.Low, range.High, range.Low);
    }

    /// <summary>A number search value; its precision defines the range (spec: "100" means [99.5, 100.5)).</summary>
    public static RangeValue Number(string parameter, string value)
    {
        var (prefix, rest) = SplitPrefix(value);
        if (!decimal.TryParse(rest, NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
            throw FhirException.BadRequest($"'{value}' is not a valid number search value for '{parameter}'.", parameter);
        var mantissa = rest.Split('e', 'E')[0];
        var exponent = 0;
        // decimal takes 0e99999999999 (zero) or 1e-99999999999 (rounded to zero), whose exponent is past an int.
        if ((rest.Contains('e') || rest.Contains('E'))
            && (!int.TryParse(rest.Split('e', 'E')[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out exponent) || Math.Abs(exponent) > 400))
            throw FhirException.BadRequest($"'{value}' is not a usable number search value for '{parameter}' (its exponent is out of range).", parameter);
        var dot = mantissa.IndexOf('.');
        var decimals = dot < 0 ? 0 : mantissa.Length - dot - 1;
        var half = 0.5 * Math.Pow(10, exponent - decimals);
        var d = (double)number;
        return new RangeValue(prefix, d - half, d + half, d);
    }

    /// <summary>Quantity "[prefix]number|system|code" or "number||code" or "number".</summary>
    public static (RangeValue Number, string? System, string? Code) Quantity(string parameter, string value)
    {
        var parts = Split(value, '|');
        var number = Number(parameter, parts[0]);
        if (parts.Count == 1) return (number, null, null);
        if (parts.Count != 3)
            throw FhirException.BadRequest($"'{value}' is not a valid quantity search value for '{parameter}' (expected [prefix]number|system|code).", parameter);
        return (number, parts[1].Length == 0 ? null : Unescape(parts[1]), parts[2].Length == 0 ? null : Unescape(parts[2]));
    }
}
