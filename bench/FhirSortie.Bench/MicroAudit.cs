using System.Diagnostics;
using System.Globalization;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Profiles;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;
using FhirSortie.Server.Storage.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Bench;

/// <summary>
/// In-process cost of the audit trail alone, without HTTP or the read itself:
/// <list type="number">
/// <item>record: what a read pays on its request path, <see cref="AuditTrail.CommitAsync"/> of one row, from
/// <c>workers</c> concurrent callers (like wrk -c10): CPU µs per row, rows/s, commits per row;</item>
/// <item>move (SQLite): the audit journal's rows into the audit store (<see cref="AuditJournal.DrainAsync"/>, what
/// the background mover does): CPU µs per row;</item>
/// <item>search: <c>AuditEvent?patient=pN</c> served by the audit store (<see cref="AuditSearch"/>), one match each:
/// CPU µs per search.</item>
/// </list>
/// CPU time is the whole process's (GC and pool threads count): what to compare on the shared machine.
/// </summary>
public static class MicroAudit
{
    public static async Task<int> RunAsync(string storage, int rows, int workers)
    {
        var root = Repository.Root();
        StorageDialect dialect = storage.StartsWith("Host=", StringComparison.Ordinal) ? new PostgresDialect(storage) : new SqliteDialect(storage);
        await Migrator.MigrateAsync(dialect, NullLogger.Instance, CancellationToken.None);
        var journal = new AuditJournal(dialect);
        var trail = new AuditTrail(dialect, TimeProvider.System, journal);

        if (Environment.GetEnvironmentVariable("MICRO_AUDIT_UNITS") == "1") PerRowUnits = dialect;
        Console.WriteLine($"request path: {(PerRowUnits is null ? "rows grouped (AuditTrail.CommitAsync)" : "one write unit per row")}");
        // Warm-up: JIT tiers, pools, the first index pages.
        await RecordAsync(trail, Math.Min(rows, 2000), workers);

        var process = Process.GetCurrentProcess();
        var commits0 = trail.Batches;
        var cpu0 = process.TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        await RecordAsync(trail, rows, workers);
        var recordWall = wall.Elapsed;
        process.Refresh();
        var recordCpu = process.TotalProcessorTime - cpu0;
        var commits = trail.Batches - commits0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{dialect.Name} record x{rows}, {workers} workers: {rows / recordWall.TotalSeconds:0} rows/s, {recordCpu.TotalMicroseconds / rows:0.0} µs CPU per row, {(double)rows / Math.Max(1, commits):0.0} rows per commit{(journal.Enabled ? " (audit journal)" : "")}"));

        // SQLite: what the background mover pays to bring the journal's rows into the store (the warm-up's rows included).
        if (journal.Enabled)
        {
            var pending = journal.Backlog;
            cpu0 = process.TotalProcessorTime;
            wall.Restart();
            await journal.DrainAsync(CancellationToken.None);
            process.Refresh();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{dialect.Name} move x{pending}: {pending / wall.Elapsed.TotalSeconds:0} rows/s, {(process.TotalProcessorTime - cpu0).TotalMicroseconds / Math.Max(1, pending):0.0} µs CPU per row"));
        }

        // Search: AuditEvent?patient=pN (one match each, JSON built on demand), as an auditor's look-up or the access report.
        var searches = Math.Min(rows, 2000);
        var options = new FhirSortie.Server.FhirSortieOptions();
        await SearchAsync(dialect, options, Math.Min(searches, 200)); // warm-up
        cpu0 = process.TotalProcessorTime;
        wall.Restart();
        await SearchAsync(dialect, options, searches);
        var searchWall = wall.Elapsed;
        process.Refresh();
        var searchCpu = process.TotalProcessorTime - cpu0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{dialect.Name} search AuditEvent?patient= x{searches}: {searches / searchWall.TotalSeconds:0} searches/s, {searchCpu.TotalMicroseconds / searches:0.0} µs CPU per search"));
        return 0;
    }

    private static async Task SearchAsync(StorageDialect dialect, FhirSortie.Server.FhirSortieOptions options, int searches)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        for (var i = 1; i <= searches; i++)
        {
            var request = new FhirSortie.Server.Rest.SearchRequest("http://localhost/fhir", "AuditEvent", [new("patient", "p" + i.ToString(CultureInfo.InvariantCulture))]);
            var json = await AuditSearch.ExecuteJsonAsync(request, options, connection, null, DateTimeOffset.UtcNow, CancellationToken.None);
            if (json.Length < 500) throw new InvalidOperationException("AuditEvent?patient=p" + i.ToString(CultureInfo.InvariantCulture) + " found nothing");
        }
    }

    private static async Task RecordAsync(AuditTrail trail, int rows, int workers)
    {
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) is var n && n <= rows)
            {
                if (PerRowUnits is { } dialect) await OwnUnitAsync(dialect, ReadOf(n));
                else await trail.CommitAsync(ReadOf(n));
            }
        })));
    }

    /// <summary>MICRO_AUDIT_UNITS=1: each row in its own write unit, as the request path did before rows were grouped.</summary>
    private static StorageDialect? PerRowUnits;

    private static async Task OwnUnitAsync(StorageDialect dialect, AuditEntry entry)
    {
        await using var unit = await dialect.BeginWriteAsync(CancellationToken.None);
        await AuditTrail.AppendAsync(unit.Connection, unit.Transaction, entry, CancellationToken.None);
        await unit.CommitAsync(CancellationToken.None);
    }

    /// <summary>What a USMP client's read of a Patient leaves (the bench's read scenario).</summary>
    private static AuditEntry ReadOf(int n)
    {
        var patient = "p" + n.ToString(CultureInfo.InvariantCulture);
        var note = new AuditNote { Decision = FhirSortie.Server.Consents.AccessDecision.Permit("same organisation") };
        note.Entities.Add("Patient/" + patient);
        note.Patients.Add(patient);
        var caller = new Caller("usmp-demo", ActorKind.Usmp, "690000012", ["system/*.cruds"], null, null);
        return AuditEntry.Of(caller, "read", 200, DateTimeOffset.UtcNow, note, null);
    }
}
