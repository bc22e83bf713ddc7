using System.Net;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// search-compartment: GET [base]/Patient/{id}/{type}?params and GET [base]/Patient/{id}/*, using the
/// resource_compartment rows written with each resource (from compartment-patient.json).
/// </summary>
public static class SearchCompartment
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        if (UnknownOperation.Named(context) is not null) throw UnknownOperation.Refusal(context); // [type]/[id]/$name
        var compartment = (string)context.Request.RouteValues["compartment"]!;
        if (compartment != "Patient")
        {
            if (!ModelInfo.IsKnownResource(compartment)) throw FhirException.Error(HttpStatusCode.NotFound, OperationOutcome.IssueType.NotSupported, $"Unknown resource type '{compartment}'.");
            throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported, $"Only the Patient compartment can be searched, not {compartment}.");
        }
        var id = FhirRequest.Id(context);
        var rawType = (string)context.Request.RouteValues["type"]!;
        string? type = null;
        if (rawType != "*")
        {
            type = FhirRequest.RequireType(rawType);
            var compartments = context.RequestServices.GetRequiredService<Compartments>();
            if (!compartments.IsInPatientCompartment(type))
                throw FhirException.BadRequest($"{type} is not in the Patient compartment.");
        }
        var query = await Search.QueryAsync(context);
        await Search.RespondAsync(context, Search.RequestFor(context, type, query) with { PatientCompartment = id });
    }
}
