using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>The label systems and codes consent decisions work with (v3 ActCode sensitivity, v3 Confidentiality).</summary>
public static class SecurityLabels
{
    public const string ActCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
    public const string Confidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
    public const string ActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

    /// <summary>The sensitivity categories a consent can permit or deny (the information categories of the domain).</summary>
    public static readonly IReadOnlyList<string> Sensitivities = ["ETH", "PSY", "HIV", "SDV"];

    /// <summary>
    /// Very restricted (v3 Confidentiality V): a consent must name it; a permit without security labels does not cover it.
    /// </summary>
    public const string VeryRestricted = "V";

    /// <summary>Confidentiality codes from least to most restricted.</summary>
    private static readonly string[] ConfidentialityOrder = ["U", "L", "M", "N", "R", "V"];

    public static int ConfidentialityRank(string code) => Array.IndexOf(ConfidentialityOrder, code);

    /// <summary>The sensitivity codes (v3 ActCode) a resource carries.</summary>
    public static IReadOnlyList<string> SensitivitiesOf(Resource resource) =>
        resource.Meta?.Security.Where(c => c.System == ActCode && c.Code is not null).Select(c => c.Code!).Distinct(StringComparer.Ordinal).ToArray() ?? [];

    /// <summary>The highest confidentiality code a resource carries, or null.</summary>
    public static string? ConfidentialityOf(Resource resource) =>
        resource.Meta?.Security.Where(c => c.System == Confidentiality && c.Code is not null)
            .Select(c => c.Code!).OrderByDescending(ConfidentialityRank).FirstOrDefault();
}
