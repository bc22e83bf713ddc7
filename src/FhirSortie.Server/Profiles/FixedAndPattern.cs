using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// fixed[x]: the instance value must be exactly the fixed one. pattern[x]: every element the pattern gives must
/// be in the instance (extra elements allowed; each pattern list item must match some instance item).
/// </summary>
public static class FixedAndPattern
{
    public static void Check(ValidationRun run, ElementRule rule, Base value, string path)
    {
        if (rule.Fixed is { } fixedValue && !Matches(fixedValue, value, exact: true))
            run.Error(OperationOutcome.IssueType.Value, path, $"{rule.Id}: value must be exactly {Describe(fixedValue)}");
        if (rule.Pattern is { } pattern && !Matches(pattern, value, exact: false))
            run.Error(OperationOutcome.IssueType.Value, path, $"{rule.Id}: value must match the pattern {Describe(pattern)}");
    }

    public static bool Matches(Base pattern, Base value, bool exact)
    {
        if (pattern is PrimitiveType p)
            return value is PrimitiveType v && string.Equals(p.ToString(), v.ToString(), StringComparison.Ordinal);
        if (pattern.TypeName != value.TypeName && !(pattern is Quantity && value is Quantity)) return false;
        foreach (var (name, expected) in pattern.EnumerateElements())
        {
            if (!value.TryGetValue(name, out var actual) || actual is null) return false;
            if (!MatchesElement(expected, actual, exact)) return false;
        }
        if (exact)
        {
            foreach (var (name, _) in value.EnumerateElements())
            {
                if (!pattern.TryGetValue(name, out var present) || present is null) return false;
            }
        }
        return true;
    }

    private static bool MatchesElement(object expected, object actual, bool exact)
    {
        if (expected is Base one) return actual is Base a && Matches(one, a, exact);
        if (expected is IEnumerable<Base> list && actual is IEnumerable<Base> values)
        {
            var items = values.ToList();
            var wanted = list.ToList();
            if (exact && items.Count != wanted.Count) return false;
            return exact
                ? wanted.Zip(items).All(pair => Matches(pair.First, pair.Second, exact))
                : wanted.All(w => items.Any(i => Matches(w, i, exact)));
        }
        return Equals(expected, actual);
    }

    public static string Describe(Base value) => value switch
    {
        PrimitiveType p => $"'{p}'",
        Coding c => $"{c.System}#{c.Code}",
        CodeableConcept cc => string.Join(" or ", cc.Coding.Select(c => $"{c.System}#{c.Code}")),
        _ => value.TypeName,
    };
}
