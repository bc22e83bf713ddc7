using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Security;

/// <summary>
/// Demo mode: one Organization per demo client (identifier = its FINESS), created only when none with that
/// identifier exists, so restarts and several nodes seed once.
/// </summary>
public static class DemoSeeding
{
    public static async Task SeedOrganizationsAsync(IServiceProvider services, CancellationToken ct)
    {
        var registry = services.GetRequiredService<ClientRegistry>();
        var search = services.GetRequiredService<FhirSortie.Server.Search.SearchEngine>();
        var store = services.GetRequiredService<ResourceStore>();
        foreach (var client in registry.All.Where(c => c.OrganizationFiness is not null && c.OrganizationName is not null))
        {
            var organization = new Organization
            {
                Active = true,
                Name = client.OrganizationName,
                Identifier = [new Identifier(Finess.System, client.OrganizationFiness)],
            };
            var condition = $"identifier={Finess.System}|{client.OrganizationFiness}";
            await store.WriteAsync(session => Rest.Create.ExecuteAsync(session, search, "Organization", organization, condition, ct), ct);
        }
    }
}
