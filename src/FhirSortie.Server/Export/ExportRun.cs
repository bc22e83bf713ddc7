using System.Globalization;
using System.Text.Json;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Export;

/// <summary>
/// Runs one attempt of an export: for each type, the caller's consent-filtered search (<see cref="SearchEngine.AppendWhere"/>
/// with the caller's <see cref="AccessFilter"/>, decided now by every access rule as for any search), read in keyset pages
/// on rkey and written as NDJSON chunks of about <see cref="ExportOptions.ChunkBytes"/>: memory holds one page and one
/// chunk whatever the size of the export. Each page renews the lease; a lost lease (cancelled, or claimed by another node
/// after this one stalled) stops the attempt without writing. Before the job is marked completed every patient of the
/// output is named in AuditEvents (one per <see cref="ExportOptions.PatientsPerAuditRecord"/> patients), so each person's
/// access report shows the export.
/// </summary>
public sealed class ExportRun(ExportJobs jobs, SearchEngine engine, StorageDialect dialect, AuditTrail audit, IServiceProvider services, TimeProvider clock, ExportOptions options)
{
    /// <summary>Runs the claimed attempt to its end: completed, failed, or stopped because it lost the job.</summary>
    public async Task RunAsync(ExportJob job, CancellationToken ct)
    {
        var lease = TimeSpan.FromMilliseconds(options.LeaseMilliseconds);
        var spec = job.Spec;
        var access = AccessPoint.For(spec.Caller, services);
        var files = new List<ExportFile>();
        long total = 0;
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        for (var fileNo = 0; fileNo < spec.Types.Count; fileNo++)
        {
            var type = spec.Types[fileNo];
            var filter = access.Filter(type);
            var chunk = new MemoryStream();
            var chunkNo = 0;
            long count = 0;
            long after = 0;
            var patients = new HashSet<string>(StringComparer.Ordinal);
            while (true)
            {
                var q = Page(type, spec, filter, after);
                var db = SearchDb.On(connection, null);
                var rows = await db.StoredAsync(q, ct);
                if (rows.Count == 0) break;
                foreach (var row in rows)
                {
                    chunk.Write(row.Json);
                    chunk.WriteByte((byte)'\n');
                }
                count += rows.Count;
                after = rows[^1].Key;
                await AddPatientsAsync(connection, rows, patients, ct);
                (int, int, byte[])? full = null;
                if (chunk.Length >= options.ChunkBytes)
                {
                    full = (fileNo, chunkNo++, chunk.ToArray());
                    chunk = new MemoryStream();
                }
                var progress = $"{type}: {count.ToString(CultureInfo.InvariantCulture)} resources ({(fileNo + 1).ToString(CultureInfo.InvariantCulture)} of {spec.Types.Count.ToString(CultureInfo.InvariantCulture)} types)";
                if (!await jobs.StepAsync(job, lease, progress, full, patients, ct)) return;
                patients.Clear();
                if (rows.Count < options.BatchSize) break;
            }
            if (chunk.Length > 0 && !await jobs.StepAsync(job, lease, $"{type}: {count.ToString(CultureInfo.InvariantCulture)} resources", (fileNo, chunkNo, chunk.ToArray()), patients, ct)) return;
            if (count > 0) files.Add(new ExportFile(type, fileNo, count));
            total += count;
        }
        await AuditAsync(job, ct);
        await jobs.CompleteAsync(job, Manifest(job, files), ct);
    }

    /// <summary>One keyset page of <paramref name="type"/>: the export's search (each _typeFilter an alternative), after rkey <paramref name="after"/>.</summary>
    public SqlQuery Page(string type, ExportSpec spec, AccessFilter filter, long after)
    {
        var q = new SqlQuery();
        // SQLite (no statistics) would drive each page by the (type, last_updated) index and sort every resource of the
        // type to find the next 500 by rkey: a sort of the whole type (JSON included, in memory) per page, so memory and
        // time grew with the export (bench/results/2026-12-07-export-rss.md). NOT INDEXED keeps it on the rowid range:
        // each page walks on from the last key and stops at the 500th match.
        var notIndexed = dialect is Storage.Postgres.PostgresDialect ? "" : " NOT INDEXED";
        q.Append($"SELECT {Sql.StoredColumns("r")} FROM resources r{notIndexed} WHERE r.rkey > {after.ToString(CultureInfo.InvariantCulture)} AND (");
        var alternatives = spec.TypeFilters.TryGetValue(type, out var filters) && filters.Count > 0 ? filters : [[]];
        for (var i = 0; i < alternatives.Count; i++)
        {
            if (i > 0) q.Append(" OR ");
            q.Append("(");
            var query = new List<KeyValuePair<string, string>>(alternatives[i]);
            if (spec.Since is { } since) query.Add(new("_lastUpdated", FhirRequest.DateSearchValue("ge", since)));
            engine.AppendWhere(q, "r", type, query, filter, strict: true);
            q.Append(")");
        }
        q.Append(")");
        // Correlated (one index probe per row), not "rkey IN (SELECT ...)": that list of every compartment row was built
        // again for each page.
        switch (spec.Level)
        {
            case ExportLevel.Patient:
                q.Append(" AND EXISTS (SELECT 1 FROM resource_compartment ec WHERE ec.rkey = r.rkey AND ec.compartment_type = 'Patient')");
                break;
            case ExportLevel.Group:
                var members = spec.Members.Count == 0 ? "NULL" : string.Join(", ", spec.Members.Select(m => q.Param(m)));
                q.Append($" AND EXISTS (SELECT 1 FROM resource_compartment ec WHERE ec.rkey = r.rkey AND ec.compartment_type = 'Patient' AND ec.compartment_id IN ({members}))");
                break;
        }
        q.Append($" ORDER BY r.rkey LIMIT {options.BatchSize.ToString(CultureInfo.InvariantCulture)}");
        return q;
    }

    /// <summary>The patients whose compartment holds one of <paramref name="rows"/> (a Patient is in its own).</summary>
    private static async Task AddPatientsAsync(System.Data.Common.DbConnection connection, List<StoredResource> rows, HashSet<string> patients, CancellationToken ct)
    {
        // rkeys are the database's own integers: inlined, so that a page of 500 is one statement without 500 parameters.
        var keys = string.Join(",", rows.Select(r => r.Key.ToString(CultureInfo.InvariantCulture)));
        await using var select = Sql.Command(connection, null,
            $"SELECT DISTINCT compartment_id FROM resource_compartment WHERE compartment_type = 'Patient' AND rkey IN ({keys})");
        await using var reader = await select.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) patients.Add(reader.GetString(0));
    }

    /// <summary>AuditEvents of the export (interaction "operation", entity the export, and the Group), naming its patients.</summary>
    private async Task AuditAsync(ExportJob job, CancellationToken ct)
    {
        var spec = job.Spec;
        var now = clock.GetUtcNow();
        var records = new List<AuditEntry>();
        AuditEntry Record(IEnumerable<string> patients)
        {
            var note = new AuditNote { Decision = Consents.AccessDecision.Permit("bulk export, consent-filtered") };
            note.Entities.Add(spec.GroupId is { } group ? "Group/" + group : "$export");
            note.Patients.UnionWith(patients);
            return AuditEntry.Of(spec.Caller, "operation", 200, now, note, spec.Query);
        }
        await foreach (var page in jobs.PatientsAsync(job.Id, options.PatientsPerAuditRecord, ct)) records.Add(Record(page));
        if (records.Count == 0) records.Add(Record([]));
        // Durable before the job says completed: no file is served whose patients the audit does not name.
        foreach (var record in records) await audit.CommitAsync(record);
    }

    private string Manifest(ExportJob job, List<ExportFile> files)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteString("transactionTime", (job.TransactionTime ?? clock.GetUtcNow()).ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
            w.WriteString("request", job.Spec.RequestUrl);
            w.WriteBoolean("requiresAccessToken", true);
            w.WriteStartArray("output");
            foreach (var file in files)
            {
                w.WriteStartObject();
                w.WriteString("type", file.Type);
                // Relative: the status answer makes it absolute with the base URL of the node that answers (the kick-off's
                // node may be gone, or reached under another name).
                w.WriteString("url", ExportRoutes.FilePath(job.Id, file.FileNo));
                w.WriteNumber("count", file.Count);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("error");
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
