namespace FhirSortie.Server.Export;

/// <summary>
/// The bulk export tables (one migration step, appended to both dialects' lists). export_jobs: one row per kick-off;
/// spec is the <see cref="ExportSpec"/> JSON (what to export, for which caller); status accepted → running → completed
/// or failed; a running job belongs to lease_owner until lease_until, and attempts (incremented by every claim) fences
/// a node that lost its lease: each of its writes names the attempt and does nothing once another node claimed the job.
/// export_chunks: the NDJSON output, file by file, in chunks of about ExportOptions.ChunkBytes, in the database so
/// that every node serves every file. export_patients: the patients whose data an export holds (for its audit).
/// </summary>
public static class ExportSchema
{
    public const string V1 = """
        CREATE TABLE export_jobs (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, spec TEXT NOT NULL, status TEXT NOT NULL,
            created {BIGINT} NOT NULL, lease_owner TEXT, lease_until {BIGINT}, attempts INTEGER NOT NULL, progress TEXT,
            transaction_time {BIGINT}, manifest TEXT, error TEXT, expires {BIGINT});
        CREATE INDEX export_jobs_due ON export_jobs (status, lease_until);
        CREATE TABLE export_chunks (job_id TEXT NOT NULL, file_no INTEGER NOT NULL, chunk_no INTEGER NOT NULL, data {BLOB} NOT NULL,
            PRIMARY KEY (job_id, file_no, chunk_no));
        CREATE TABLE export_patients (job_id TEXT NOT NULL, patient_id TEXT NOT NULL, PRIMARY KEY (job_id, patient_id));
        """;
}
