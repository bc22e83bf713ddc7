using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>The one place where OperationOutcomes are built.</summary>
public static class Outcomes
{
    public static OperationOutcome Single(OperationOutcome.IssueSeverity severity, OperationOutcome.IssueType code, string diagnostics, params string[] expression)
    {
        var outcome = new OperationOutcome();
        outcome.Issue.Add(Issue(severity, code, diagnostics, expression));
        return outcome;
    }

    public static OperationOutcome.IssueComponent Issue(OperationOutcome.IssueSeverity severity, OperationOutcome.IssueType code, string diagnostics, params string[] expression)
    {
        var issue = new OperationOutcome.IssueComponent { Severity = severity, Code = code, Diagnostics = diagnostics };
        if (expression.Length > 0) issue.Expression = expression;
        return issue;
    }

    public static OperationOutcome Information(string diagnostics) =>
        Single(OperationOutcome.IssueSeverity.Information, OperationOutcome.IssueType.Informational, diagnostics);
}
