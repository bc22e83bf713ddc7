using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// How the writer learns what the normalisation changed: an OperationOutcome of information issues, returned with
/// Prefer: return=OperationOutcome on a single write, and in Bundle.entry.response.outcome of a batch or transaction
/// whatever Prefer says (an entry has room for both the resource and its outcome). The stored resource itself,
/// returned with return=representation, shows the result.
/// </summary>
public static class NormalisationOutcome
{
    public static OperationOutcome? Of(StoredResource stored)
    {
        if (stored.Normalised is not { Count: > 0 } issues) return null;
        var outcome = new OperationOutcome();
        outcome.Issue.AddRange(issues.Select(i => (OperationOutcome.IssueComponent)i.DeepCopy()));
        return outcome;
    }
}
