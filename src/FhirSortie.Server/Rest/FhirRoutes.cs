namespace FhirSortie.Server.Rest;

/// <summary>The routing table: every FHIR interaction and the handler that serves it.</summary>
public static class FhirRoutes
{
    public static void MapFhir(this IEndpointRouteBuilder app)
    {
        // Every FHIR interaction needs a valid access token, except the two discovery documents.
        var fhir = app.MapGroup(FhirBase.Path).RequireAuthorization();
        fhir.MapGet("/metadata", Capabilities.Handle).AllowAnonymous();
        fhir.MapGet("/.well-known/smart-configuration", Security.SmartConfiguration.Handle).AllowAnonymous();
        fhir.MapGet("", SearchSystem.Handle);
        fhir.MapPost("/_search", SearchSystem.Handle);
        fhir.MapPost("", Transaction.Handle);
        fhir.MapGet("/_history", History.HandleSystem);

        fhir.MapGet("/{type}", Search.Handle);
        fhir.MapPost("/{type}/_search", Search.Handle);
        fhir.MapPost("/{type}", Create.Handle);
        fhir.MapPut("/{type}", Update.HandleConditional);
        fhir.MapDelete("/{type}", Delete.HandleConditional);
        fhir.MapPatch("/{type}", Patch.HandleConditional).WithMetadata(new Capabilities.PatchFormats(Patch.JsonPatchContentType, FhirFormat.JsonContentType, FhirFormat.XmlContentType));
        fhir.MapGet("/{type}/_history", History.HandleType);

        // Literal "$validate" segments outrank the {id} parameter, so these never reach read/update.
        fhir.MapPost("/{type}/$validate", Profiles.Validate.Handle);
        fhir.MapPost("/{type}/{id}/$validate", Profiles.Validate.Handle);

        // Mapping: CDA liaison letters in, terminology translation over the ConceptMaps of profiles/.
        fhir.MapPost("/DocumentReference/$import-cda", Mapping.ImportCda.Handle)
            .WithMetadata(new Capabilities.OperationDefinition("https://fhirsortie.fr/fhir/OperationDefinition/DocumentReference-import-cda"));
        fhir.MapGet("/ConceptMap/$translate", Mapping.Translate.Handle);
        fhir.MapPost("/ConceptMap/$translate", Mapping.Translate.Handle);
        fhir.MapGet("/ConceptMap/{id}/$translate", Mapping.Translate.Handle);
        fhir.MapPost("/ConceptMap/{id}/$translate", Mapping.Translate.Handle);

        // Literal segments outrank the {type}/{id}/{type} compartment route.
        fhir.MapGet("/Patient/{id}/$everything", Everything.Handle)
            .WithMetadata(new Capabilities.OperationDefinition("http://hl7.org/fhir/OperationDefinition/Patient-everything"));
        fhir.MapGet("/Patient/{id}/$patient-context", PatientContext.Handle).WithMetadata(new Capabilities.OperationDefinition(PatientContext.Definition));
        fhir.MapGet("/Patient/{id}/$access-report", Consents.AccessReport.Handle)
            .WithMetadata(new Capabilities.OperationDefinition(Consents.AccessReport.OperationUrl));
        fhir.MapGet("/Subscription/{id}/$status", Notifications.SubscriptionStatusOperation.Handle)
            .WithMetadata(new Capabilities.OperationDefinition(Notifications.SubscriptionStatusOperation.Definition));
        fhir.MapGet("/{type}/{id}", Read.Handle);
        fhir.MapPut("/{type}/{id}", Update.Handle);
        fhir.MapDelete("/{type}/{id}", Delete.Handle);
        fhir.MapPatch("/{type}/{id}", Patch.Handle).WithMetadata(new Capabilities.PatchFormats(Patch.JsonPatchContentType, FhirFormat.JsonContentType, FhirFormat.XmlContentType));
        fhir.MapGet("/{type}/{id}/_history", History.HandleInstance);

        fhir.MapGet("/{type}/{id}/_history/{vid}", VRead.Handle);
        fhir.MapGet("/{compartment}/{id}/{type}", SearchCompartment.Handle);
    }
}
