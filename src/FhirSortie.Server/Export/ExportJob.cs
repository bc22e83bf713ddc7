namespace FhirSortie.Server.Export;

/// <summary>The states of an export (export_jobs.status). A cancelled export is deleted, not kept in a state.</summary>
public static class ExportStatus
{
    public const string Accepted = "accepted";
    public const string Running = "running";
    public const string Completed = "completed";
    public const string Failed = "failed";
}

/// <summary>One export_jobs row.</summary>
/// <param name="Attempts">Claims so far: the fencing token of the node that runs it now.</param>
/// <param name="Progress">What X-Progress says while it runs (counts only, never patient data).</param>
/// <param name="Manifest">The completion manifest JSON, once completed.</param>
public sealed record ExportJob(
    string Id,
    string ClientId,
    ExportSpec Spec,
    string Status,
    DateTimeOffset Created,
    string? LeaseOwner,
    DateTimeOffset? LeaseUntil,
    int Attempts,
    string? Progress,
    DateTimeOffset? TransactionTime,
    string? Manifest,
    string? Error,
    DateTimeOffset? Expires);

/// <summary>One output file of a completed export, as the manifest lists it.</summary>
public sealed record ExportFile(string Type, int FileNo, long Count);
