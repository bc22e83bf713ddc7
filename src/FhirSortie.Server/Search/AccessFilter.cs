namespace FhirSortie.Server.Search;

/// <summary>
/// What the caller may see, applied inside every search query (so paging and totals never count hidden resources).
/// Null members mean "no restriction". Filled per request by security and consent; the core applies it.
/// </summary>
/// <param name="ResourceTypes">Resource types the caller may see.</param>
/// <param name="PatientIds">Patients whose compartment the caller is restricted to (resources outside any patient compartment are hidden).</param>
/// <param name="DeniedLabels">Security labels (system, code) that hide a resource carrying them in meta.security.</param>
public sealed record AccessFilter(
    IReadOnlySet<string>? ResourceTypes = null,
    IReadOnlySet<string>? PatientIds = null,
    IReadOnlyList<(string System, string Code)>? DeniedLabels = null)
{
    public static readonly AccessFilter None = new();

    /// <summary>The consent and medical-secrecy restriction (issue 5), applied per resource in SQL; null: none.</summary>
    public ConsentRestriction? Consent { get; init; }

    public bool IsUnrestricted => ResourceTypes is null && PatientIds is null && (DeniedLabels is null || DeniedLabels.Count == 0) && Consent is null;

    public bool AllowsType(string type) => ResourceTypes is null || ResourceTypes.Contains(type);
}

/// <summary>
/// The consent and medical-secrecy restriction of issue 5 in SQL form (the same rules as <c>AccessRules.Decide</c>).
/// A resource in no patient compartment is not restricted by it. One in patient compartments is visible when
/// <see cref="AuthorSees"/> and <paramref name="Finess"/> wrote it, or when every patient of it allows it: an unexpired
/// break-the-glass grant of <paramref name="ClientId"/> with purpose ETREAT; otherwise no deny provision of the patient
/// matches (<see cref="HonourDenies"/>) and either <paramref name="Finess"/> is in the patient's care team
/// (<see cref="CareTeam"/>) or an active permit names <paramref name="Finess"/>, the type and the purpose and covers the
/// resource's labels (no securityLabel: every resource of the type; a securityLabel: those carrying it; a resource carrying
/// one of <see cref="SensitiveLabels"/> only by a permit naming that label); without <see cref="RequireConsent"/> the patient's consent is not asked.
/// A null <paramref name="Finess"/> sees no patient data. <see cref="OnlyDocumentCategory"/>: DocumentReferences
/// are visible only with that category code (attendance attestations for justice and social actors).
/// </summary>
public sealed record ConsentRestriction(string? Finess, string Purpose, long Now, string ClientId)
{
    public bool AuthorSees { get; init; } = true;
    public bool CareTeam { get; init; } = true;
    public bool HonourDenies { get; init; } = true;
    public bool RequireConsent { get; init; } = true;
    public IReadOnlyList<string> SensitiveLabels { get; init; } = [];
    public (string System, string Code)? OnlyDocumentCategory { get; init; }
    public string BreakGlassPurpose { get; init; } = "ETREAT";
    /// <summary>The Patient the caller is in person (fhirUser): it also sees that patient's Consents.</summary>
    public string? Person { get; init; }
}

/// <summary>
/// Gives the access filter of a request. Security and consent register one in DI when they exist;
/// until then every request is unrestricted. Tests register one to check that searches honour it.
/// </summary>
public delegate AccessFilter AccessFilterResolver(HttpContext context);

public static class AccessFilters
{
    public static AccessFilter For(HttpContext context) =>
        context.RequestServices.GetService<AccessFilterResolver>()?.Invoke(context) ?? AccessFilter.None;
}
