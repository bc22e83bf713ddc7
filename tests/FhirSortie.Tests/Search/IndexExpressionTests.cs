using FhirSortie.Server.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Search;

/// <summary>Shared R4 expressions are cut down to the branches of the resource's own type before indexing.</summary>
public sealed class IndexExpressionTests
{
    [Fact]
    public void Shared_patient_expression_keeps_only_the_branch_of_the_type()
    {
        var shared = ModelInfo.SearchParameters.First(p => p.Resource == "MedicationRequest" && p.Code == "patient").Expression!;
        Assert.Contains(" | ", shared);
        Assert.Equal("MedicationRequest.subject.where(resolve() is Patient)", ResourceIndexer.ForType(shared, "MedicationRequest"));
    }

    [Theory]
    [InlineData("Patient.name | Practitioner.name", "Patient", "Patient.name")]
    [InlineData("(Patient.name | Practitioner.name)", "Patient", "(Patient.name | Practitioner.name)")]
    [InlineData("Observation.code | Observation.component.code", "Observation", "Observation.code | Observation.component.code")]
    [InlineData("name | alias", "Organization", "name | alias")]
    [InlineData("PatientX.name | Patient.name", "Patient", "Patient.name")]
    [InlineData("Patient.name.where(use = 'a|b') | Group.name", "Patient", "Patient.name.where(use = 'a|b')")]
    public void Unions_are_split_only_at_top_level(string expression, string type, string expected) =>
        Assert.Equal(expected, ResourceIndexer.ForType(expression, type));
}
