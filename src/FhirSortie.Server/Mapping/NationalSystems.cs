namespace FhirSortie.Server.Mapping;

/// <summary>
/// The national identifier and code systems, and the other spellings USMP software and CDA documents use for them.
/// Sources: FR Core 2.1.0 (INS OIDs 1.2.250.1.213.1.4.8/.9/.10/.11, RPPS and FINESS URLs, idNatPs/idNatSt OIDs, as in
/// profiles/StructureDefinition-fr-core-*.json); CI-SIS CDA schematrons and FR Core for the code system OIDs
/// (ATC 2.16.840.1.113883.6.73, CIS 1.2.250.1.213.2.3.1, LOINC 2.16.840.1.113883.6.1, v3 Confidentiality
/// 2.16.840.1.113883.5.25). CIP13 and UCD OIDs are not mapped: we could not confirm them from a public source.
/// </summary>
public static class NationalSystems
{
    public const string InsNir = "urn:oid:1.2.250.1.213.1.4.8";
    public const string InsNia = "urn:oid:1.2.250.1.213.1.4.9";
    public const string InsNirTest = "urn:oid:1.2.250.1.213.1.4.10";
    public const string InsNirDemo = "urn:oid:1.2.250.1.213.1.4.11";
    public const string IdNatPs = "urn:oid:1.2.250.1.71.4.2.1";
    public const string Rpps = "https://rpps.esante.gouv.fr";
    public const string IdNatSt = "urn:oid:1.2.250.1.71.4.2.2";
    public const string Finess = "https://finess.esante.gouv.fr";

    public const string Atc = "http://www.whocc.no/atc";
    public const string Cis = "http://data.esante.gouv.fr/ansm/medicament/SpecialitePharmaceutique";
    public const string Cip13 = "http://data.esante.gouv.fr/ansm/medicament/Presentation";
    public const string Ucd = "http://data.esante.gouv.fr/ansm/medicament/UCD";
    public const string Loinc = "http://loinc.org";
    public const string Confidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
    public const string Ucum = "http://unitsofmeasure.org";

    /// <summary>EDQM Standard Terms (routes, dose forms): OID 0.4.0.127.0.16.1.1.2.1 in CI-SIS CDA documents.</summary>
    public const string Edqm = "http://standardterms.edqm.eu";

    /// <summary>The national medicine code systems an ExitPrescription accepts (constraint fs-exit-1).</summary>
    public static readonly IReadOnlySet<string> Medicines = new HashSet<string>(StringComparer.Ordinal) { Atc, Cis, Cip13, Ucd };

    public static readonly IReadOnlySet<string> Ins = new HashSet<string>(StringComparer.Ordinal) { InsNir, InsNia, InsNirTest, InsNirDemo };

    /// <summary>Identifier systems as OIDs (what a CDA id/@root or an HL7 v2-minded system sends) → FR Core systems.</summary>
    private static readonly Dictionary<string, string> IdentifierOids = new(StringComparer.Ordinal)
    {
        ["1.2.250.1.213.1.4.8"] = InsNir,
        ["1.2.250.1.213.1.4.9"] = InsNia,
        ["1.2.250.1.213.1.4.10"] = InsNirTest,
        ["1.2.250.1.213.1.4.11"] = InsNirDemo,
        ["1.2.250.1.71.4.2.1"] = IdNatPs,
        ["1.2.250.1.71.4.2.2"] = IdNatSt,
    };

    /// <summary>Code systems as OIDs (CDA @codeSystem, or urn:oid: in FHIR) → the FHIR URIs the profiles bind to.</summary>
    private static readonly Dictionary<string, string> CodeSystemOids = new(StringComparer.Ordinal)
    {
        ["2.16.840.1.113883.6.73"] = Atc,
        ["1.2.250.1.213.2.3.1"] = Cis,
        ["2.16.840.1.113883.6.1"] = Loinc,
        ["2.16.840.1.113883.5.25"] = Confidentiality,
        ["2.16.840.1.113883.6.8"] = Ucum,
        ["0.4.0.127.0.16.1.1.2.1"] = Edqm,
    };

    /// <summary>The national URL spelt another way (http instead of https, trailing slash, case).</summary>
    private static readonly string[] NationalUrls = [Rpps, Finess];

    /// <summary>
    /// The FR Core identifier system for <paramref name="system"/> when it is another spelling of one
    /// (bare OID, urn:oid: in another case, http:// or a trailing slash on the national URLs); null when it is not.
    /// </summary>
    public static string? NationalIdentifierSystem(string system)
    {
        var trimmed = system.Trim();
        var oid = StripOid(trimmed);
        if (oid is not null && IdentifierOids.TryGetValue(oid, out var national)) return national == system ? null : national;
        var url = trimmed.TrimEnd('/');
        foreach (var candidate in NationalUrls)
        {
            var bare = candidate["https://".Length..];
            if (url.Equals(candidate, StringComparison.OrdinalIgnoreCase) || url.Equals("http://" + bare, StringComparison.OrdinalIgnoreCase))
                return candidate == system ? null : candidate;
        }
        return null;
    }

    /// <summary>The FHIR URI of a code system given as an OID (bare or urn:oid:), or null.</summary>
    public static string? CodeSystemFromOid(string? system)
    {
        if (system is null) return null;
        var oid = StripOid(system.Trim());
        return oid is not null && CodeSystemOids.TryGetValue(oid, out var uri) ? uri : null;
    }

    /// <summary>The identifier system for a CDA id/@root: the national one, else urn:oid:root.</summary>
    public static string FromCdaRoot(string root) =>
        IdentifierOids.TryGetValue(root, out var national) ? national : "urn:oid:" + root;

    private static string? StripOid(string value)
    {
        var oid = value.StartsWith("urn:oid:", StringComparison.OrdinalIgnoreCase) ? value["urn:oid:".Length..] : value;
        return oid.Length > 0 && oid.All(c => char.IsAsciiDigit(c) || c == '.') && oid.Contains('.') ? oid : null;
    }
}
