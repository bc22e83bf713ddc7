using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// What the CapabilityStatement says about profiles: the ones we validate per type. $validate itself is listed from its
/// routes (Rest/Capabilities.cs), like every other operation.
/// </summary>
public static class ProfileCapabilities
{
    public static void Describe(CapabilityStatement statement, ProfileRegistry registry)
    {
        var byType = registry.Profiles.Where(p => p.Type != "Extension").ToLookup(p => p.Type);
        foreach (var resource in statement.Rest.SelectMany(r => r.Resource))
        {
            if (resource.Type is not { } type) continue;
            resource.SupportedProfile = [.. byType[type].Select(p => p.Url).Order(StringComparer.Ordinal)];
        }
    }
}
