using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// An error that crosses the HTTP boundary as an OperationOutcome with a given status.
/// Thrown anywhere below the endpoints; <see cref="FhirErrorMiddleware"/> turns it into the response.
/// </summary>
public sealed class FhirException(HttpStatusCode status, OperationOutcome outcome) : Exception(Describe(outcome))
{
    public HttpStatusCode Status { get; } = status;
    public OperationOutcome Outcome { get; } = outcome;

    /// <summary>The Allow header of a 405 (the methods served at that URL).</summary>
    public string? Allow { get; init; }

    public static FhirException Error(HttpStatusCode status, OperationOutcome.IssueType code, string diagnostics, params string[] expression) =>
        new(status, Outcomes.Single(OperationOutcome.IssueSeverity.Error, code, diagnostics, expression));

    public static FhirException BadRequest(string diagnostics, params string[] expression) =>
        Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.Invalid, diagnostics, expression);

    public static FhirException NotFound(string diagnostics) =>
        Error(HttpStatusCode.NotFound, OperationOutcome.IssueType.NotFound, diagnostics);

    private static string Describe(OperationOutcome outcome) =>
        string.Join("; ", outcome.Issue.Select(i => $"{i.Code}: {i.Diagnostics}"));
}
