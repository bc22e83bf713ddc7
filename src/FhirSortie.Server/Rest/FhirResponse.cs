using System.Net;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Server.Rest;

/// <summary>Sends a <see cref="FhirResult"/> as an HTTP response: headers, Prefer, format and reshaping.</summary>
public static class FhirResponse
{
    // Stored JSON was written by us; parse it back without strictness so a later SDK upgrade can never make a read fail.
    private static readonly FhirJsonDeserializer StoredJson = new(new DeserializerSettings().UsingMode(DeserializationMode.Recoverable));

    private static readonly Coding Subsetted = new("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED");

    public static async System.Threading.Tasks.Task WriteAsync(HttpContext context, FhirResult result, bool isWrite = false)
    {
        var request = context.Request;
        var response = context.Response;
        var format = FhirFormat.ResponseFormat(request);
        response.StatusCode = (int)result.Status;
        if (result.Stored is { } stored)
        {
            response.Headers.ETag = stored.ETag;
            response.Headers.LastModified = stored.LastUpdated.ToString("R");
            if (result.IncludeLocation)
                response.Headers.Location = $"{FhirBase.Of(context)}/{stored.Type}/{stored.Id}/_history/{stored.Version}";
        }
        var prefer = isWrite ? Prefer.From(request).Return : PreferReturn.Representation;
        if (prefer == PreferReturn.Minimal || result.Status is HttpStatusCode.NoContent or HttpStatusCode.NotModified) return;

        if (prefer == PreferReturn.OperationOutcome)
        {
            var outcome = result.Outcome ?? Outcomes.Information($"{request.Method} {request.Path} succeeded.");
            await WriteBodyAsync(response, FhirFormat.Serialize(outcome, format, FhirFormat.IsPretty(request)), format);
            return;
        }

        var summary = FhirFormat.Summary(request);
        var elements = FhirFormat.Elements(request);
        var pretty = FhirFormat.IsPretty(request);
        if (result.Stored is { Json: { } json } && result.Resource is null)
        {
            if (format == WireFormat.Json && !pretty && summary == SummaryType.False && elements is null)
            {
                await WriteBodyAsync(response, json, format); // the fast path: bytes exactly as stored
                return;
            }
            var resource = ParseStored(json);
            if (summary != SummaryType.False || elements is not null) MarkSubsetted(resource);
            await WriteBodyAsync(response, FhirFormat.Serialize(resource, format, pretty, summary, elements), format);
            return;
        }
        if (result.Resource is { } built)
        {
            // Bundles carry _summary/_elements down to their entries (done when the bundle is built), not on themselves.
            var body = built is Bundle
                ? FhirFormat.Serialize(built, format, pretty)
                : FhirFormat.Serialize(built, format, pretty, summary, elements);
            await WriteBodyAsync(response, body, format);
            return;
        }
        if (result.Outcome is { } onlyOutcome)
        {
            await WriteBodyAsync(response, FhirFormat.Serialize(onlyOutcome, format, pretty), format);
        }
    }

    public static Resource ParseStored(byte[] json)
    {
        var reader = new System.Text.Json.Utf8JsonReader(json);
        return StoredJson.DeserializeResource(ref reader);
    }

    public static void MarkSubsetted(Resource resource)
    {
        resource.Meta ??= new Meta();
        if (!resource.Meta.Tag.Any(t => t.System == Subsetted.System && t.Code == Subsetted.Code))
            resource.Meta.Tag.Add((Coding)Subsetted.DeepCopy());
    }

    public static async System.Threading.Tasks.Task WriteErrorAsync(HttpContext context, HttpStatusCode status, OperationOutcome outcome)
    {
        WireFormat format;
        try
        {
            format = FhirFormat.ResponseFormat(context.Request);
        }
        catch (FhirException)
        {
            format = WireFormat.Json;
        }
        context.Response.StatusCode = (int)status;
        await WriteBodyAsync(context.Response, FhirFormat.Serialize(outcome, format, FhirFormat.IsPretty(context.Request)), format);
    }

    private static async System.Threading.Tasks.Task WriteBodyAsync(HttpResponse response, byte[] body, WireFormat format)
    {
        response.ContentType = FhirFormat.ContentType(format);
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body);
    }
}
