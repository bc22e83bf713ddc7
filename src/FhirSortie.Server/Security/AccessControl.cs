using FhirSortie.Server.Search;

namespace FhirSortie.Server.Security;

public static class AccessControl
{
    /// <summary>
    /// Registers the access rules (SMART scopes) and the search filter they give. Another rule set (consent) is one
    /// more <c>services.AddSingleton&lt;IAccessRule, ...&gt;()</c>: the interactions already ask every rule.
    /// </summary>
    public static IServiceCollection AddAccessControl(this IServiceCollection services)
    {
        services.AddSingleton<IAccessRule, ScopeRule>();
        services.AddSingleton<IAccessRule, Consents.ConsentRule>();
        services.AddSingleton<AccessFilterResolver>(AccessPoint.FilterOf);
        return services;
    }
}
