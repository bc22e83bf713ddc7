using Hl7.Fhir.Model;
using FhirSortie.Server.Consents;

namespace FhirSortie.Tests.Consents;

/// <summary>Consents as a USMP records them in tests: deny by default, one nested permit for one organisation.</summary>
public static class TestConsents
{
    /// <summary>An active Consent (since yesterday) permitting the organisation of <paramref name="finess"/> to see these resource types without sensitivity labels.</summary>
    public static Hl7.Fhir.Model.Consent Permit(string patientId, string finess, params string[] classes) => new()
    {
        Status = Hl7.Fhir.Model.Consent.ConsentState.Active,
        Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
        Category = [new CodeableConcept("http://loinc.org", "59284-0")],
        Patient = new ResourceReference("Patient/" + patientId),
        DateTime = DateTimeOffset.UtcNow.AddDays(-1).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
        Policy = [new Hl7.Fhir.Model.Consent.PolicyComponent { Uri = "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031927568" }],
        Provision = new Hl7.Fhir.Model.Consent.provisionComponent
        {
            Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny,
            Provision =
            [
                new Hl7.Fhir.Model.Consent.provisionComponent
                {
                    Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit,
                    Actor = [new Hl7.Fhir.Model.Consent.provisionActorComponent
                    {
                        Role = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
                        Reference = new ResourceReference { Identifier = new Identifier(Search.Domain.Finess, finess) },
                    }],
                    Class = [.. classes.Select(c => new Coding(ConsentGrants.ResourceTypes, c))],
                },
            ],
        },
    };

    /// <summary>
    /// <see cref="Permit"/> plus the person's masking of every sensitivity category (a deny naming ETH, PSY, HIV, SDV):
    /// the organisation sees the unlabelled resources of these types only (a permit alone covers labelled ones too).
    /// </summary>
    public static Hl7.Fhir.Model.Consent PermitMasking(string patientId, string finess, params string[] classes)
    {
        var consent = Permit(patientId, finess, classes);
        consent.Provision!.Provision.Add(new Hl7.Fhir.Model.Consent.provisionComponent
        {
            Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny,
            SecurityLabel = [.. SecurityLabels.Sensitivities.Select(l => new Coding(SecurityLabels.ActCode, l))],
        });
        return consent;
    }
}
