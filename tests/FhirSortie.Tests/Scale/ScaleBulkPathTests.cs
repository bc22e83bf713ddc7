extern alias bench;
using System.Data.Common;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using bench::FhirSortie.Bench.Scale;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;
using FhirSortie.Server.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Tests.Scale;

/// <summary>
/// The scale bench's bulk paths (bench/FhirSortie.Bench/Scale) write what the gateway writes: audit records as the
/// request path and the SQLite audit journal do, and cloned people that the gateway serves exactly as the people
/// posted through it (their rows table by table, identifier search, consent-filtered search, $everything).
/// </summary>
public sealed class ScaleBulkPathTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "fhirsortie-scale-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static List<AuditEntry> Records(int count)
    {
        string[][] people = [["1", "pat-a", "task-a", "0", "0", "Planned", "1", "x", "Requested"], ["2", "pat-b", "task-b", "5", "7", "Transfer", "1", "y", "Accepted"]];
        var random = new Random(3);
        return Enumerable.Range(0, count).Select(i => ScaleAudit.Record(random, people, i / (double)count)).ToList();
    }

    private static async Task<List<string>> RowsAsync(StorageDialect dialect)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        var rows = new List<string>();
        foreach (var sql in new[]
        {
            "SELECT id, recorded, interaction, action, outcome, entry, json, last_updated FROM audit_events",
            "SELECT audit_id, param, sys, value FROM audit_keys",
        })
        {
            await using var select = Sql.Command(connection, null, sql);
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                rows.Add(string.Join("|", Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "null" : Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture))));
        }
        rows.Sort(StringComparer.Ordinal);
        return rows;
    }

    [Fact]
    public async Task Sqlite_bulk_audit_rows_are_the_rows_the_audit_journal_moves_into_the_store()
    {
        var entries = Records(300);
        var journaled = new SqliteDialect(Path.Combine(_directory, "journal"));
        await Migrator.MigrateAsync(journaled, NullLogger.Instance, CancellationToken.None);
        using (var journal = new AuditJournal(journaled))
        {
            var trail = new AuditTrail(journaled, TimeProvider.System, journal);
            await System.Threading.Tasks.Task.WhenAll(entries.Select(trail.CommitAsync));
            await journal.DrainAsync(CancellationToken.None);
        }
        var bulk = new SqliteDialect(Path.Combine(_directory, "bulk"));
        await Migrator.MigrateAsync(bulk, NullLogger.Instance, CancellationToken.None);
        await using (var unit = await bulk.BeginWriteAsync(CancellationToken.None))
        {
            await AuditStore.AppendAsync(unit.Connection, unit.Transaction, entries, CancellationToken.None);
            await unit.CommitAsync(CancellationToken.None);
        }
        var expected = await RowsAsync(journaled);
        Assert.True(expected.Count > 600, $"only {expected.Count} rows");
        Assert.Equal(expected, await RowsAsync(bulk));
    }

    [Fact]
    public async Task Postgres_bulk_audit_copy_writes_the_rows_of_the_request_path_insert()
    {
        var entries = Records(300);
        var inserted = new PostgresDialect(TestPostgres.CreateDatabase());
        await Migrator.MigrateAsync(inserted, NullLogger.Instance, CancellationToken.None);
        var trail = new AuditTrail(inserted, TimeProvider.System);
        await System.Threading.Tasks.Task.WhenAll(entries.Select(trail.CommitAsync));
        var copied = new PostgresDialect(TestPostgres.CreateDatabase());
        await Migrator.MigrateAsync(copied, NullLogger.Instance, CancellationToken.None);
        await ScaleAudit.CopyAsync(copied, entries);
        var expected = await RowsAsync(inserted);
        Assert.True(expected.Count > 600, $"only {expected.Count} rows");
        Assert.Equal(expected, await RowsAsync(copied));
    }

    /// <summary>Rows per table of one person: the Patient and its compartment, their index rows, grants and origins.</summary>
    private static async Task<Dictionary<string, long>> PersonRowsAsync(DbConnection connection, string patient)
    {
        const string Keys = "(SELECT rkey FROM resource_compartment WHERE compartment_type = 'Patient' AND compartment_id = @p UNION SELECT rkey FROM resources WHERE type = 'Patient' AND id = @p)";
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var table in new[] { "resources", "resource_versions", "search_string", "search_token", "search_reference", "search_date", "search_quantity", "search_uri", "resource_compartment", "conditional_keys" })
        {
            await using var count = Sql.Command(connection, null, $"SELECT count(*) FROM {table} WHERE rkey IN {Keys}").With("@p", patient);
            counts[table] = Convert.ToInt64(await count.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }
        await using (var grants = Sql.Command(connection, null, "SELECT count(*) FROM consent_grants WHERE patient_id = @p").With("@p", patient))
            counts["consent_grants"] = Convert.ToInt64(await grants.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        await using (var origins = Sql.Command(connection, null,
            $"SELECT count(*) FROM resource_origin o JOIN resources r ON r.type = o.type AND r.id = o.id WHERE r.rkey IN {Keys}").With("@p", patient))
            counts["resource_origin"] = Convert.ToInt64(await origins.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        return counts;
    }

    private static async Task<int> EntriesAsync(HttpClient http, string path)
    {
        using var response = await http.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {body}");
        using var document = JsonDocument.Parse(body);
        return document.RootElement.TryGetProperty("entry", out var entry) ? entry.GetArrayLength() : 0;
    }

    [Fact]
    public async Task Sqlite_cloned_people_have_the_rows_and_answers_of_the_people_posted_through_the_gateway()
    {
        var data = Path.Combine(_directory, "db");
        var output = Path.Combine(_directory, "out");
        Assert.Equal(0, await ScaleLoad.RunAsync(data, output, 4, 2));
        Assert.Equal(0, await ScaleClone.RunAsync(data, output, 12, 5));
        var people = File.ReadAllLines(Path.Combine(output, ScaleLoad.PeopleFile)).Select(l => l.Split('\t')).ToDictionary(l => l[0]);
        Assert.Equal(12, people.Count);

        var dialect = new SqliteDialect(data);
        await using var gateway = new ScaleGateway(data, data);
        foreach (var clone in people.Values.Where(p => p.Length >= 10))
        {
            var template = people[clone[9]["clone-of-".Length..]];
            Assert.NotEqual(template[1], clone[1]);
            await using (var connection = dialect.CreateConnection())
            {
                await connection.OpenAsync();
                var rows = await PersonRowsAsync(connection, clone[1]);
                Assert.True(rows["search_token"] > 50, $"clone {clone[0]}: {rows["search_token"]} token rows");
                Assert.Equal(await PersonRowsAsync(connection, template[1]), rows);
            }
            using var usmp = gateway.Client(ScaleWorld.UsmpClient(int.Parse(clone[3], CultureInfo.InvariantCulture)), "system/*.cruds");
            Assert.Equal(1, await EntriesAsync(usmp, "Patient?identifier=" + Uri.EscapeDataString(ScaleWorld.InsSystem + "|" + clone[7])));
            Assert.Equal(await EntriesAsync(usmp, $"Patient/{template[1]}/$everything"), await EntriesAsync(usmp, $"Patient/{clone[1]}/$everything"));
            using var receiver = gateway.Client(ScaleWorld.ReceiverClient(int.Parse(clone[4], CultureInfo.InvariantCulture)), "system/*.rs system/Task.u");
            var seen = await EntriesAsync(receiver, "MedicationRequest?patient=" + clone[1]);
            Assert.Equal(await EntriesAsync(receiver, "MedicationRequest?patient=" + template[1]), seen);
            // The consent grants came along: a person who consented is visible to the receiver they named, the others not.
            Assert.Equal(clone[6] == "1", seen > 0);
        }
    }
}
