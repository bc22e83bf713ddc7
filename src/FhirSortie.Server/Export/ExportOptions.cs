namespace FhirSortie.Server.Export;

/// <summary>Bulk export settings (section "FhirSortie:Export").</summary>
public sealed class ExportOptions
{
    public const string Section = "FhirSortie:Export";

    /// <summary>False on a node that must not run exports (it still accepts kick-offs, answers status and serves files).</summary>
    public bool Run { get; set; } = true;

    /// <summary>How often the worker looks for an export to run, and for expired ones to remove.</summary>
    public int PollMilliseconds { get; set; } = 1_000;

    /// <summary>
    /// How long a running export is reserved for the node that claimed it without a sign of life. The node renews it
    /// after every batch of resources; a node that dies leaves the export to another node once the lease has passed.
    /// </summary>
    public int LeaseMilliseconds { get; set; } = 30_000;

    /// <summary>Attempts (claims) after which an export whose nodes keep dying fails instead of starting again.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Resources read per query (keyset pages on rkey: the cost of a page does not grow with the export).</summary>
    public int BatchSize { get; set; } = 500;

    /// <summary>Bytes of NDJSON kept in memory before they are written to the database as one chunk of a file.</summary>
    public int ChunkBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// How long the output files (and the status) of a finished export stay downloadable; then they are 404 and removed
    /// from the database at the next worker round. Fractions are allowed (0.05 = 3 s).
    /// </summary>
    public double FileLifetimeMinutes { get; set; } = 60;

    /// <summary>The Retry-After (seconds) a client polling an unfinished export is told.</summary>
    public int RetryAfterSeconds { get; set; } = 2;

    /// <summary>Patients named per AuditEvent of an export (an export of 100,000 patients is 500 records of 200).</summary>
    public int PatientsPerAuditRecord { get; set; } = 200;
}
