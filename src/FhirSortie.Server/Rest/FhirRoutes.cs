namespace FhirSortie.Server.Rest;

/// <summary>The routing table: every FHIR interaction and the handler that serves it.</summary>
public static class FhirRoutes
{
    public static void MapFhir(this IEndpointRouteBuilder app)
    {
        // Every FHIR interaction needs a valid access token, except the two discovery documents.
        var fhir = app.MapGroup(FhirBase.Path).RequireAuthorization();
        fhir.MapGetAndHead("/metadata", Capabilities.Handle).AllowAnonymous();
        fhir.MapGetAndHead("/.well-known/smart-configuration", Security.SmartConfiguration.Handle).AllowAnonymous();
        fhir.MapGetAndHead("", SearchSystem.Handle);
        fhir.MapPost("/_search", SearchSystem.Handle);
        fhir.MapPost("", Transaction.Handle);
        fhir.MapGetAndHead("/_history", History.HandleSystem);

        fhir.MapGetAndHead("/{type}", Search.Handle);
        fhir.MapPost("/{type}/_search", Search.Handle);
        fhir.MapPost("/{type}", Create.Handle);
        fhir.MapPut("/{type}", Update.HandleConditional);
        fhir.MapDelete("/{type}", Delete.HandleConditional);
        fhir.MapPatch("/{type}", Patch.HandleConditional).WithMetadata(new Capabilities.PatchFormats(Patch.JsonPatchContentType, FhirFormat.JsonContentType, FhirFormat.XmlContentType));
        fhir.MapGetAndHead("/{type}/_history", History.HandleType);

        // Literal "$validate" segments outrank the {id} parameter, so these never reach read/update.
        fhir.MapPost("/{type}/$validate", Profiles.Validate.Handle);
        fhir.MapPost("/{type}/{id}/$validate", Profiles.Validate.Handle);

        // Mapping: CDA liaison letters in, terminology translation over the ConceptMaps of profiles/.
        fhir.MapPost("/DocumentReference/$import-cda", Mapping.ImportCda.Handle)
            .WithMetadata(new Capabilities.OperationDefinition("https://fhirsortie.fr/fhir/OperationDefinition/DocumentReference-import-cda"));
        fhir.MapGetAndHead("/ConceptMap/$translate", Mapping.Translate.Handle);
        fhir.MapPost("/ConceptMap/$translate", Mapping.Translate.Handle);
        fhir.MapGetAndHead("/ConceptMap/{id}/$translate", Mapping.Translate.Handle);
        fhir.MapPost("/ConceptMap/{id}/$translate", Mapping.Translate.Handle);

        // Literal segments outrank the {type}/{id}/{type} compartment route.
        Export.ExportRoutes.MapExport(fhir); // Bulk Data $export, its status URL and files (Export/)
        fhir.MapGetAndHead("/Patient/{id}/$everything", Everything.Handle)
            .WithMetadata(new Capabilities.OperationDefinition("http://hl7.org/fhir/OperationDefinition/Patient-everything"));
        fhir.MapGetAndHead("/Patient/{id}/$patient-context", PatientContext.Handle).WithMetadata(new Capabilities.OperationDefinition(PatientContext.Definition));
        fhir.MapGetAndHead("/Patient/{id}/$access-report", Consents.AccessReport.Handle)
            .WithMetadata(new Capabilities.OperationDefinition(Consents.AccessReport.OperationUrl));
        fhir.MapGetAndHead("/Subscription/{id}/$status", Notifications.SubscriptionStatusOperation.Handle)
            .WithMetadata(new Capabilities.OperationDefinition(Notifications.SubscriptionStatusOperation.Definition));
        fhir.MapGetAndHead("/{type}/{id}", Read.Handle);
        fhir.MapPut("/{type}/{id}", Update.Handle);
        fhir.MapDelete("/{type}/{id}", Delete.Handle);
        fhir.MapPatch("/{type}/{id}", Patch.Handle).WithMetadata(new Capabilities.PatchFormats(Patch.JsonPatchContentType, FhirFormat.JsonContentType, FhirFormat.XmlContentType));
        fhir.MapGetAndHead("/{type}/{id}/_history", History.HandleInstance);

        fhir.MapGetAndHead("/{type}/{id}/_history/{vid}", VRead.Handle);
        fhir.MapGetAndHead("/{compartment}/{id}/{type}", SearchCompartment.Handle);
    }

    /// <summary>
    /// Every GET answers HEAD too (RFC 9110 9.3.2: the same status and headers, ETag and Last-Modified included, without
    /// the body, which Kestrel drops): caches and monitors check a resource's version without fetching it. A HEAD is
    /// decided, audited and counted as the GET it mirrors.
    /// </summary>
    private static RouteHandlerBuilder MapGetAndHead(this IEndpointRouteBuilder routes, string pattern, Delegate handler) =>
        routes.MapMethods(pattern, [HttpMethods.Get, HttpMethods.Head], handler);
}
