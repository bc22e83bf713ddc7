namespace FhirSortie.Server.Storage;

/// <summary>One version of a resource as stored: the JSON is exactly what a read serves.</summary>
/// <param name="Key">Surrogate key of the resource (all its versions share it); index rows point to it.</param>
/// <param name="Method">The interaction that produced this version: POST, PUT, PATCH or DELETE (for history).</param>
public sealed record StoredResource(long Key, string Type, string Id, int Version, DateTimeOffset LastUpdated, bool Deleted, byte[]? Json, string Method = "PUT")
{
    public string ETag => $"W/\"{Version}\"";

    /// <summary>What the normalisation changed in this version before it was stored (null: nothing); reported to the writer.</summary>
    public IReadOnlyList<Hl7.Fhir.Model.OperationOutcome.IssueComponent>? Normalised { get; init; }
}
