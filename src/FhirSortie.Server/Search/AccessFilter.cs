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

    public bool IsUnrestricted => ResourceTypes is null && PatientIds is null && (DeniedLabels is null || DeniedLabels.Count == 0);

    public bool AllowsType(string type) => ResourceTypes is null || ResourceTypes.Contains(type);
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
