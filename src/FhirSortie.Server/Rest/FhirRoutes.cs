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
        fhir.MapOperation("/{type}/$validate", Profiles.Validate.Handle, byGet: false); // its input is a resource
        fhir.MapOperation("/{type}/{id}/$validate", Profiles.Validate.Handle, byGet: false);

        // Mapping: CDA liaison letters in, terminology translation over the ConceptMaps of profiles/.
        fhir.MapOperation("/DocumentReference/$import-cda", Mapping.ImportCda.Handle, byGet: false) // affects state
            .WithMetadata(new Capabilities.OperationDefinition(Mapping.ImportCda.Definition));
        fhir.MapOperation("/ConceptMap/$translate", Mapping.Translate.Handle, byGet: true);
        fhir.MapOperation("/ConceptMap/{id}/$translate", Mapping.Translate.Handle, byGet: true);

        // Literal segments outrank the {type}/{id}/{type} compartment route.
        Export.ExportRoutes.MapExport(fhir); // Bulk Data $export, its status URL and files (Export/)
        fhir.MapOperation("/Patient/{id}/$everything", Everything.Handle, byGet: true)
            .WithMetadata(new Capabilities.OperationDefinition("http://hl7.org/fhir/OperationDefinition/Patient-everything"));
        fhir.MapOperation("/Patient/{id}/$patient-context", PatientContext.Handle, byGet: true).WithMetadata(new Capabilities.OperationDefinition(PatientContext.Definition));
        fhir.MapOperation("/Patient/{id}/$access-report", Consents.AccessReport.Handle, byGet: true)
            .WithMetadata(new Capabilities.OperationDefinition(Consents.AccessReport.OperationUrl));
        fhir.MapOperation("/Encounter/{id}/$set-release-date", Exit.SetReleaseDate.Handle, byGet: false) // affects state
            .WithMetadata(new Capabilities.OperationDefinition(Exit.SetReleaseDate.Definition));
        fhir.MapOperation("/Measure/{id}/$evaluate-measure", Measures.EvaluateMeasure.Handle, byGet: true) // continuity indicators (issue 24)
            .WithMetadata(new Capabilities.OperationDefinition(Measures.EvaluateMeasure.Definition));
        fhir.MapOperation("/Subscription/{id}/$status", Notifications.SubscriptionStatusOperation.Handle, byGet: true)
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
    /// <summary>
    /// An operation (R4 operations.html): POST always, and GET (with HEAD) only when it does not affect state and its
    /// inputs are all primitive (<paramref name="byGet"/>), as its OperationDefinition in conformance/operations says.
    /// </summary>
    private static RouteHandlerBuilder MapOperation(this IEndpointRouteBuilder routes, string pattern, Delegate handler, bool byGet) =>
        routes.MapMethods(pattern, byGet ? [HttpMethods.Get, HttpMethods.Head, HttpMethods.Post] : [HttpMethods.Post], handler);

    private static RouteHandlerBuilder MapGetAndHead(this IEndpointRouteBuilder routes, string pattern, Delegate handler) =>
        routes.MapMethods(pattern, [HttpMethods.Get, HttpMethods.Head], handler);
}
