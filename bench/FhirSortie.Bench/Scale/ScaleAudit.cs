extern alias server;
using System.Diagnostics;
using System.Globalization;
using server::FhirSortie.Server.Audit;
using AccessDecision = server::FhirSortie.Server.Consents.AccessDecision;
using server::FhirSortie.Server.Security;
using server::FhirSortie.Server.Storage;
using server::FhirSortie.Server.Storage.Postgres;
using server::FhirSortie.Server.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Bench.Scale;

/// <summary>
/// scale-audit: tops the audit store up to <c>records</c> rows for the people of <c>people.tsv</c> (what a year of
/// reads, searches, operations, transactions and refusals by their USMPs and receivers leaves), written with the
/// gateway's own <see cref="AuditStore.AppendAsync"/> in large write units: the statement the PostgreSQL request path
/// runs for each group of records, and the rows the SQLite audit journal's mover writes (AuditJournalInserts; the
/// test <c>AuditBulkRowsTests</c> compares the two row for row). The records themselves are built by
/// <see cref="AuditEntry.Of"/> from a caller and an access decision, as the audit middleware builds them. Resumable:
/// it counts the rows already there and writes only the difference.
/// </summary>
public static class ScaleAudit
{
    /// <summary>Records per write unit (one commit), and per INSERT statement (well under the parameter limits).</summary>
    private const int PerUnit = 4096;
    private const int PerStatement = 256;

    public static async Task<int> RunAsync(string storage, string outDir, long records, int workers)
    {
        StorageDialect dialect = ScaleGateway.IsPostgres(storage) ? new PostgresDialect(storage) : new SqliteDialect(storage);
        await Migrator.MigrateAsync(dialect, NullLogger.Instance, CancellationToken.None);
        var people = File.ReadLines(Path.Combine(outDir, ScaleLoad.PeopleFile)).Select(l => l.Split('\t')).ToArray();
        long existing;
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync();
            await using var count = Sql.Command(connection, null, "SELECT count(*) FROM audit_events");
            existing = Convert.ToInt64(await count.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }
        var todo = records - existing;
        Console.WriteLine($"{existing} audit records there, {Math.Max(0, todo)} to add for {people.Length} people");
        if (todo <= 0) return 0;

        var next = -1L;
        var units = (todo + PerUnit - 1) / PerUnit;
        var clock = Stopwatch.StartNew();
        long written = 0;
        await System.Threading.Tasks.Task.WhenAll(Enumerable.Range(0, workers).Select(_ => System.Threading.Tasks.Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) is var u && u < units)
            {
                var first = existing + u * PerUnit;
                var count = (int)Math.Min(PerUnit, records - first);
                var random = new Random((int)u);
                var entries = Enumerable.Range(0, count).Select(i => Record(random, people, (first + i) / (double)records)).ToList();
                if (dialect is PostgresDialect && Environment.GetEnvironmentVariable("SCALE_AUDIT_INSERT") != "1") await CopyAsync(dialect, entries);
                else
                {
                    await using var unit = await dialect.BeginWriteAsync(CancellationToken.None);
                    for (var i = 0; i < entries.Count; i += PerStatement)
                        await AuditStore.AppendAsync(unit.Connection, unit.Transaction, entries.GetRange(i, Math.Min(PerStatement, entries.Count - i)), CancellationToken.None);
                    await unit.CommitAsync(CancellationToken.None);
                }
                var w = Interlocked.Add(ref written, count);
                if (w / 500_000 != (w - count) / 500_000)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {w} records in {clock.Elapsed.TotalSeconds:0} s ({w / clock.Elapsed.TotalSeconds:0}/s)"));
            }
        })));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {written} audit records in {clock.Elapsed.TotalSeconds:0} s ({written / clock.Elapsed.TotalSeconds:0} records/s, {workers} workers)"));
        return 0;
    }

    /// <summary>
    /// PostgreSQL: the same rows as <see cref="AuditStore.AppendAsync"/> (its columns, <see cref="AuditStore.Keys"/>, the
    /// action and outcome codes), by binary COPY: about four times the INSERT's rate, which matters for 20 M records.
    /// SCALE_AUDIT_INSERT=1 writes with AppendAsync instead.
    /// </summary>
    public static async System.Threading.Tasks.Task CopyAsync(StorageDialect dialect, IReadOnlyList<AuditEntry> entries)
    {
        await using var connection = (Npgsql.NpgsqlConnection)dialect.CreateConnection();
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var events = await connection.BeginBinaryImportAsync("COPY audit_events (id, recorded, interaction, action, outcome, entry) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var e in entries)
            {
                await events.StartRowAsync();
                await events.WriteAsync(e.Id, NpgsqlTypes.NpgsqlDbType.Text);
                await events.WriteAsync(e.Recorded, NpgsqlTypes.NpgsqlDbType.Bigint);
                await events.WriteAsync(e.Interaction, NpgsqlTypes.NpgsqlDbType.Text);
                await events.WriteAsync(AuditEventRows.ActionCode(e.Interaction), NpgsqlTypes.NpgsqlDbType.Text);
                await events.WriteAsync(AuditEventRows.OutcomeCode(e.Status), NpgsqlTypes.NpgsqlDbType.Text);
                await events.WriteAsync(e.ToJson(), NpgsqlTypes.NpgsqlDbType.Text);
            }
            await events.CompleteAsync();
        }
        await using (var keys = await connection.BeginBinaryImportAsync("COPY audit_keys (audit_id, param, sys, value) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var e in entries)
            {
                foreach (var key in AuditStore.Keys(e))
                {
                    await keys.StartRowAsync();
                    await keys.WriteAsync(e.Id, NpgsqlTypes.NpgsqlDbType.Text);
                    await keys.WriteAsync(key.Param, NpgsqlTypes.NpgsqlDbType.Text);
                    await keys.WriteAsync(key.System, NpgsqlTypes.NpgsqlDbType.Text);
                    await keys.WriteAsync(key.Value, NpgsqlTypes.NpgsqlDbType.Text);
                }
            }
            await keys.CompleteAsync();
        }
        await transaction.CommitAsync();
    }

    /// <summary>
    /// One interaction of the year, at <paramref name="at"/> (0..1) of it: 55 % reads of a Patient by its USMP, 25 % searches
    /// by the receiver the person consented to, 8 % $patient-context, 8 % exit-package transactions, 4 % refusals
    /// (another receiver, no consent).
    /// </summary>
    public static AuditEntry Record(Random random, string[][] people, double at)
    {
        var person = people[random.Next(people.Length)];
        var (patient, prison, receiver) = (person[1], int.Parse(person[3], CultureInfo.InvariantCulture), int.Parse(person[4], CultureInfo.InvariantCulture));
        var when = new DateTimeOffset(ScaleWorld.YearStart).AddSeconds(at * (ScaleWorld.Now - ScaleWorld.YearStart).TotalSeconds);
        var usmp = new Caller(ScaleWorld.UsmpClient(prison), ActorKind.Usmp, ScaleWorld.UsmpFiness(prison), ["system/*.cruds"], null, null);
        var centre = new Caller(ScaleWorld.ReceiverClient(receiver), ScaleWorld.IsCsapa(receiver) ? ActorKind.Csapa : ActorKind.Act,
            ScaleWorld.ReceiverFiness(receiver), ["system/*.rs", "system/Task.u"], null, null);
        var address = string.Create(CultureInfo.InvariantCulture, $"10.{prison}.{receiver}.{1 + random.Next(250)}");
        var note = new AuditNote();
        note.Patients.Add(patient);
        var k = random.Next(100);
        if (k < 55)
        {
            note.Decision = AccessDecision.Permit("same organisation");
            note.Entities.Add("Patient/" + patient);
            return AuditEntry.Of(usmp, "read", 200, when, note, null, address);
        }
        if (k < 80)
        {
            note.Decision = AccessDecision.Permit("consent", "c" + person[0]);
            return AuditEntry.Of(centre, "search-type", 200, when, note, "patient=" + patient, address);
        }
        if (k < 88)
        {
            note.Decision = AccessDecision.Permit("consent", "c" + person[0]);
            note.Entities.Add("Patient/" + patient);
            return AuditEntry.Of(centre, "operation", 200, when, note, null, address);
        }
        if (k < 96)
        {
            note.Decision = AccessDecision.Permit("same organisation");
            note.Entities.Add("Patient/" + patient);
            return AuditEntry.Of(usmp, "transaction", 200, when, note, null, address);
        }
        var other = (receiver + 1) % ScaleWorld.Receivers;
        var stranger = new Caller(ScaleWorld.ReceiverClient(other), ScaleWorld.IsCsapa(other) ? ActorKind.Csapa : ActorKind.Act,
            ScaleWorld.ReceiverFiness(other), ["system/*.rs"], null, null);
        note.Decision = AccessDecision.Deny("no consent names this organisation");
        note.Entities.Add("Patient/" + patient);
        return AuditEntry.Of(stranger, "read", 403, when, note, null, address);
    }
}
