using FhirSortie.Tests.Profiles;
using FhirSortie.Tests.Rest;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Tests.Exit;

/// <summary>The two exit package scenarios, without a server: what they claim, and how a resubmission treats each entry.</summary>
public sealed class ExitScenarioFilesTests
{
    private const string Fs = "https://fhirsortie.fr/fhir/";

    private static Bundle Scenario(string file) =>
        new FhirJsonDeserializer(new DeserializerSettings()).Deserialize<Bundle>(File.ReadAllText(TransactionTests.ScenarioFile(file)));

    [Theory]
    [InlineData("exit-package-transaction.json", "complete")]
    [InlineData("exit-package-reduced-transaction.json", "incomplete")]
    public void Every_resource_conforms_and_the_stay_says_whether_the_package_is_complete(string file, string completeness)
    {
        var bundle = Scenario(file);
        foreach (var resource in bundle.Entry.Select(e => e.Resource!))
        {
            var run = ProfileFixture.Validate(resource);
            Assert.False(run.HasErrors, $"{resource.TypeName}: {ProfileFixture.Describe(run)}");
        }
        var stay = bundle.Entry.Select(e => e.Resource).OfType<Encounter>().Single();
        Assert.Contains(Fs + "StructureDefinition/DetentionStay", stay.Meta!.Profile);
        Assert.Equal(completeness, stay.Meta.Tag.Single(t => t.System == Fs + "CodeSystem/exit-package-status").Code);
    }

    [Fact]
    public void Resubmission_updates_what_the_USMP_may_correct_and_never_resets_the_handoff()
    {
        var entries = Scenario("exit-package-transaction.json").Entry;
        // Identities and the hand-off: conditional create.
        foreach (var type in new[] { "Patient", "Organization", "Practitioner", "Task" })
            Assert.All(entries.Where(e => e.Resource!.TypeName == type), e => Assert.Equal(Bundle.HTTPVerb.POST, e.Request!.Method));
        // What may change between two postings: conditional update by identifier.
        foreach (var type in new[] { "Encounter", "MedicationRequest", "MedicationDispense", "Composition", "CarePlan", "ServiceRequest", "Appointment", "Consent" })
        {
            Assert.All(entries.Where(e => e.Resource!.TypeName == type), e =>
            {
                Assert.Equal(Bundle.HTTPVerb.PUT, e.Request!.Method);
                Assert.StartsWith(type + "?identifier=", e.Request.Url, StringComparison.Ordinal);
            });
        }
    }

    [Fact]
    public void Reduced_package_shares_nothing_and_asks_the_referent_for_consent()
    {
        var entries = Scenario("exit-package-reduced-transaction.json").Entry;
        var resources = entries.Select(e => e.Resource!).ToList();
        Assert.DoesNotContain(resources, r => r is Hl7.Fhir.Model.Consent or ServiceRequest);
        var stay = resources.OfType<Encounter>().Single();
        Assert.Equal(Encounter.EncounterStatus.Finished, stay.Status);
        Assert.NotNull(stay.Period!.End);
        var tasks = resources.OfType<Hl7.Fhir.Model.Task>().ToList();
        Assert.Equal(["collect-consent", "complete-package"], tasks.Select(t => t.Code!.Coding.Single().Code).Order());
        // The référent inside the USMP (its physician), not an outside organisation.
        var referent = entries.Single(e => e.Resource is Practitioner).FullUrl;
        Assert.All(tasks, t => Assert.Equal(referent, t.Owner!.Reference));
    }
}
