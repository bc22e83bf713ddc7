using System.Net;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// What an interaction produced, independent of how it is sent: as an HTTP response for a single request,
/// or as a Bundle.entry.response inside a batch/transaction response.
/// </summary>
public sealed record FhirResult(HttpStatusCode Status)
{
    /// <summary>The stored version (its JSON is served as is when no reshaping is asked).</summary>
    public StoredResource? Stored { get; init; }

    /// <summary>A resource built for this response (a search Bundle, a CapabilityStatement, an OperationOutcome...).</summary>
    public Resource? Resource { get; init; }

    /// <summary>Information or warnings to return with Prefer: return=OperationOutcome (or inside batch entries).</summary>
    public OperationOutcome? Outcome { get; init; }

    /// <summary>True when the resource is new (Location header, 201).</summary>
    public bool IncludeLocation { get; init; }

    public static FhirResult Of(HttpStatusCode status, StoredResource stored, bool location = false) =>
        new(status) { Stored = stored, IncludeLocation = location, Outcome = Mapping.NormalisationOutcome.Of(stored) };

    public static FhirResult Of(HttpStatusCode status, Resource resource) => new(status) { Resource = resource };
}
