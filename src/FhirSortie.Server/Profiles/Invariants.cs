using Hl7.Fhir.Model;
using Hl7.FhirPath;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// Constraints (constraint.expression) evaluated with the SDK's FHIRPath engine on each element they are
/// declared on, plus the native identifier key checks some constraints ask for.
/// </summary>
public static class Invariants
{
    public static void Check(ValidationRun run, ElementRule rule, PocoNode node, string path)
    {
        // Whatever an expression does on odd data, the answer is an issue, never a 500.
        foreach (var invariant in rule.Invariants)
        {
            bool ok;
            try
            {
                ok = invariant.Compiled.Predicate(node, run.Context);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                run.Error(OperationOutcome.IssueType.Exception, path, $"{invariant.Key}: the constraint could not be evaluated ({e.GetType().Name})");
                continue;
            }
            if (!ok) Report(run, invariant, path, invariant.Human);
            else if (invariant.KeyCheck is { } kind && node.Poco is Identifier { Value: { } value } && IdentifierKeys.Check(kind, value) is { } problem)
                Report(run, invariant, path + ".value", problem);
        }
    }

    private static void Report(ValidationRun run, InvariantRule invariant, string path, string message)
    {
        var text = $"{invariant.Key}: {message}";
        if (invariant.Severity == IssueSeverity.Warning) run.Warning(OperationOutcome.IssueType.Invariant, path, text);
        else run.Error(OperationOutcome.IssueType.Invariant, path, text);
    }
}
