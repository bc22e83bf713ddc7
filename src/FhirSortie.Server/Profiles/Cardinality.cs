namespace FhirSortie.Server.Profiles;

/// <summary>min/max of a profiled element (or slice), counted within one parent element.</summary>
public static class Cardinality
{
    public static void Check(ValidationRun run, ElementRule rule, int count, string path)
    {
        if (rule.Min is { } min && count < min)
        {
            run.Error(Hl7.Fhir.Model.OperationOutcome.IssueType.Required, path,
                $"{rule.Id}: minimum cardinality is {min}, found {count}");
        }
        if (count > rule.MaxValue)
        {
            run.Error(Hl7.Fhir.Model.OperationOutcome.IssueType.Structure, path,
                rule.MaxValue == 0 ? $"{rule.Id}: not allowed by the profile, found {count}" : $"{rule.Id}: maximum cardinality is {rule.Max}, found {count}");
        }
    }
}
