using System.Net;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>capabilities: GET [base]/metadata, generated from what the server implements.</summary>
public static class Capabilities
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var parameters = context.RequestServices.GetRequiredService<SearchParameters>();
        var statement = Build(FhirBase.Of(context), parameters);
        Profiles.ProfileCapabilities.Describe(statement, context.RequestServices.GetRequiredService<Profiles.ProfileRegistry>());
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, statement));
    }

    public static CapabilityStatement Build(string baseUrl, SearchParameters parameters)
    {
        var statement = new CapabilityStatement
        {
            Status = PublicationStatus.Active,
            Date = "2026-11-23",
            Kind = CapabilityStatementKind.Instance,
            FhirVersion = FHIRVersion.N4_0_1,
            Format = ["application/fhir+json", "application/fhir+xml"],
            Software = new CapabilityStatement.SoftwareComponent { Name = "FhirSortie" },
            Implementation = new CapabilityStatement.ImplementationComponent { Description = "FhirSortie gateway", Url = baseUrl },
        };
        var rest = new CapabilityStatement.RestComponent { Mode = CapabilityStatement.RestfulCapabilityMode.Server };
        foreach (var type in ModelInfo.SupportedResources.Order(StringComparer.Ordinal))
        {
            var component = new CapabilityStatement.ResourceComponent
            {
                Type = type,
                Versioning = CapabilityStatement.ResourceVersionPolicy.Versioned,
                ReadHistory = true,
                UpdateCreate = true,
                ConditionalCreate = true,
                ConditionalUpdate = true,
                ConditionalDelete = CapabilityStatement.ConditionalDeleteStatus.Single,
                Interaction =
                [
                    new() { Code = CapabilityStatement.TypeRestfulInteraction.Read },
                    new() { Code = CapabilityStatement.TypeRestfulInteraction.Vread },
                    new() { Code = CapabilityStatement.TypeRestfulInteraction.Create },
                    new() { Code = CapabilityStatement.TypeRestfulInteraction.Update },
                    new() { Code = CapabilityStatement.TypeRestfulInteraction.Delete },
                    new() { Code = CapabilityStatement.TypeRestfulInteraction.SearchType },
                ],
            };
            foreach (var p in parameters.For(type).OrderBy(p => p.Code, StringComparer.Ordinal))
            {
                component.SearchParam.Add(new CapabilityStatement.SearchParamComponent { Name = p.Code ?? p.Name, Definition = p.Url, Type = p.Type });
            }
            rest.Resource.Add(component);
        }
        statement.Rest.Add(rest);
        return statement;
    }
}
