using FhirSortie.Server.Consents;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Portal;

/// <summary>One category of information the person may share: French words for the resource types a SharingConsent names in provision.class.</summary>
public sealed record InformationCategory(string Key, string Label, string Explanation, IReadOnlyList<string> Classes);

/// <summary>One sensitivity label (v3 ActCode) the person may share or mask, in French.</summary>
public sealed record SensitiveCategory(string Code, string Label, string Explanation);

/// <summary>
/// What a SharingConsent can say, in the person's words, and the Consent the form makes of it. The gateway reads a
/// Consent as FHIR does (Consent/README.md): a permit naming classes and no label covers every resource of those classes,
/// ETH/PSY/HIV/SDV-labelled ones included; a nested deny naming a label masks what carries it; V (very restricted) is
/// covered only by a permit naming it. So a sensitive category is shared unless masked, and the form asks for each.
/// </summary>
public static class ConsentCategories
{
    public const string Profile = "https://fhirsortie.fr/fhir/StructureDefinition/SharingConsent";
    public const string PrivacyConsentLoinc = "59284-0";
    private const string Participation = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
    private const string PublicHealthCode = "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031927568";

    public static readonly IReadOnlyList<InformationCategory> Information =
    [
        new("identite", "Identité et coordonnées", "nom, date de naissance, INS, adresse et téléphone : nécessaire pour que la structure reconnaisse la personne", ["Patient"]),
        new("traitements", "Traitements de sortie", "ordonnances de sortie, dépannage remis, kit de naloxone, dernières prises supervisées", ["MedicationRequest", "MedicationDispense", "MedicationAdministration", "MedicationStatement"]),
        new("projet", "Projet de soins et équipe de soins", "objectifs de soins après la sortie, professionnels qui suivent la personne", ["CarePlan", "CareTeam", "Goal"]),
        new("documents", "Lettre de liaison et documents de sortie", "lettre de liaison du médecin de l'unité sanitaire et autres documents", ["DocumentReference", "Composition"]),
        new("rendez-vous", "Rendez-vous et demandes de prise en charge", "rendez-vous prévus, adressages et leur suivi", ["Appointment", "ServiceRequest", "Task"]),
        new("sante", "Problèmes de santé, allergies et résultats", "diagnostics, allergies, résultats d'examens", ["Condition", "AllergyIntolerance", "Observation"]),
        new("sejour", "Séjour en détention", "dates d'entrée et de sortie, mode de sortie", ["Encounter"]),
    ];

    public static readonly IReadOnlyList<SensitiveCategory> Sensitive =
    [
        new("ETH", "Addictions", "consommation de substances, traitement de substitution aux opiacés (TSO)"),
        new("PSY", "Santé mentale", "suivi psychiatrique, traitements psychotropes"),
        new("HIV", "VIH", "infection par le VIH et son traitement"),
        new("SDV", "Violences sexuelles ou conjugales", "violences subies ou agressions sexuelles"),
    ];

    /// <summary>What the person said, as the form carries it (before it becomes a Consent).</summary>
    public sealed record Choice(IReadOnlyList<(string Reference, string Name)> Recipients, IReadOnlyList<string> Categories,
        IReadOnlyList<string> Masked, bool VeryRestricted, DateOnly Start, DateOnly End);

    /// <summary>
    /// The SharingConsent (profiles/StructureDefinition-SharingConsent.json) of a choice: a root permit naming the
    /// recipients (IRCP), the classes, purpose TREAT and the period; one nested deny per masked label; a nested permit
    /// naming V when the person shares very restricted information too.
    /// </summary>
    public static Hl7.Fhir.Model.Consent Build(Choice choice, string patientId, string organization, DateTimeOffset now)
    {
        var period = new Period { Start = Day(choice.Start), End = Day(choice.End) };
        var provision = new Hl7.Fhir.Model.Consent.provisionComponent
        {
            Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit,
            Period = period,
            Actor = [.. choice.Recipients.Select(r => new Hl7.Fhir.Model.Consent.provisionActorComponent
            {
                Role = new CodeableConcept(Participation, "IRCP"),
                Reference = new ResourceReference(r.Reference, r.Name),
            })],
            Purpose = [new Coding(SecurityLabels.ActReason, AccessRules.Treatment)],
            Class = [.. Information.Where(c => choice.Categories.Contains(c.Key)).SelectMany(c => c.Classes).Select(t => new Coding(ConsentGrants.ResourceTypes, t))],
        };
        foreach (var code in choice.Masked)
            provision.Provision.Add(new Hl7.Fhir.Model.Consent.provisionComponent
            {
                Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny,
                SecurityLabel = [new Coding(SecurityLabels.ActCode, code)],
            });
        if (choice.VeryRestricted)
            provision.Provision.Add(new Hl7.Fhir.Model.Consent.provisionComponent
            {
                Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit,
                SecurityLabel = [new Coding(SecurityLabels.Confidentiality, SecurityLabels.VeryRestricted)],
            });
        return new Hl7.Fhir.Model.Consent
        {
            Meta = new Meta { Profile = [Profile] },
            Status = Hl7.Fhir.Model.Consent.ConsentState.Active,
            Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            Category = [new CodeableConcept(Mapping.NationalSystems.Loinc, PrivacyConsentLoinc)],
            Patient = new ResourceReference("Patient/" + patientId),
            DateTime = now.ToString("yyyy-MM-ddTHH:mm:ssK", System.Globalization.CultureInfo.InvariantCulture),
            // The person agrees; the organisation that collected it keeps the record.
            Performer = [new ResourceReference("Patient/" + patientId)],
            Organization = [new ResourceReference(organization)],
            Policy = [new Hl7.Fhir.Model.Consent.PolicyComponent { Uri = PublicHealthCode }],
            PolicyRule = new CodeableConcept(SecurityLabels.ActCode, "OPTIN"),
            Provision = provision,
        };
    }

    /// <summary>A stored Consent read back into the person's words (for the list and the printable sheet).</summary>
    public sealed record Reading(IReadOnlyList<string> Recipients, IReadOnlyList<InformationCategory> Categories, IReadOnlyList<string> OtherClasses,
        IReadOnlyList<SensitiveCategory> Masked, IReadOnlyList<SensitiveCategory> Shared, bool VeryRestricted, string? Start, string? End);

    public static Reading Read(Hl7.Fhir.Model.Consent consent)
    {
        var root = consent.Provision ?? new Hl7.Fhir.Model.Consent.provisionComponent();
        // A demo- or software-made Consent may put its permit one level down (a root deny by default): read the first permit.
        var permit = root.Type == Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit ? root
            : root.Provision.FirstOrDefault(p => p.Type != Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny) ?? root;
        var classes = permit.Class.Select(c => c.Code).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var categories = Information.Where(c => c.Classes.Any(classes.Contains)).ToList();
        var masked = permit.Provision.Concat(root == permit ? [] : root.Provision)
            .Where(p => p.Type == Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny).SelectMany(p => p.SecurityLabel).Select(l => l.Code).ToHashSet(StringComparer.Ordinal);
        var veryRestricted = permit.Provision.Any(p => p.Type != Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny && p.SecurityLabel.Any(l => l.Code == SecurityLabels.VeryRestricted));
        return new Reading(
            [.. permit.Actor.Select(a => a.Reference?.Display ?? a.Reference?.Reference ?? a.Reference?.Identifier?.Value ?? "Structure")],
            categories,
            [.. classes.Where(c => !Information.Any(i => i.Classes.Contains(c))).Order(StringComparer.Ordinal)],
            [.. Sensitive.Where(s => masked.Contains(s.Code))],
            [.. Sensitive.Where(s => !masked.Contains(s.Code))],
            veryRestricted,
            permit.Period?.Start, permit.Period?.End);
    }

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
}
