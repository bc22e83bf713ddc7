using System.Data.Common;
using System.Globalization;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Tests.Storage;

/// <summary>
/// SQLite: the index tables an older build left (rowid tables, one index per look-up) are rebuilt at start as
/// Schema.SearchIndexesSqliteV2 lays them out. What was written before stays found by every kind of search (value,
/// chain, _revinclude, compartment), and writes after the upgrade (an update replaces its rows, a repeated value is
/// stored once) are found the same way.
/// </summary>
public sealed class SqliteSearchIndexMigrationTests : IAsyncLifetime
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "fhirsortie-tests", Guid.NewGuid().ToString("N"));

    public System.Threading.Tasks.Task InitializeAsync()
    {
        Directory.CreateDirectory(_folder);
        return System.Threading.Tasks.Task.CompletedTask;
    }

    public System.Threading.Tasks.Task DisposeAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return System.Threading.Tasks.Task.CompletedTask;
    }

    private static Task<long> ScalarAsync(StorageDialect dialect, string sql) => OlderSchema.ScalarAsync(dialect, sql);

    private static async Task<string> PlanAsync(StorageDialect dialect, string sql)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        await using var cmd = Sql.Command(connection, null, "EXPLAIN QUERY PLAN " + sql);
        await using var reader = await cmd.ExecuteReaderAsync();
        var plan = new System.Text.StringBuilder();
        while (await reader.ReadAsync()) plan.AppendLine(reader.GetString(3));
        return plan.ToString();
    }

    [Fact]
    public async System.Threading.Tasks.Task Rows_written_before_the_upgrade_stay_searchable_and_repeated_values_are_stored_once()
    {
        var run = Domain.NewRun();
        var ins = "1800299" + Random.Shared.NextInt64(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);
        var database = new SqliteDialect(_folder);
        // What Migrator does first on SQLite, outside any transaction (the older-schema wrapper is no SqliteDialect).
        await using (var connection = database.CreateConnection())
        {
            await connection.OpenAsync();
            await using var wal = Sql.Command(connection, null, "PRAGMA journal_mode=WAL;");
            await wal.ExecuteNonQueryAsync();
        }
        await Migrator.MigrateAsync(new OlderSchema(database, Schema.SearchIndexesSqliteV2), NullLogger.Instance, CancellationToken.None);

        var (patient, prescription) = await OlderSchema.WriteAsync(database, run, ins);
        // Written by the test caller's organisation, as the gateway would have recorded (its access filter reads it).
        await ScalarAsync(database, $"INSERT INTO resource_origin (type, id, finess) VALUES ('Patient', '{patient.Id}', '750000010'), ('MedicationRequest', '{prescription.Id}', '750000010') RETURNING 0");
        Assert.True(await ScalarAsync(database, $"SELECT COUNT(*) FROM search_string s JOIN resources r ON r.rkey = s.rkey WHERE r.id = 'old{run}' AND s.param = 'given'") >= 2);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();

        using var gateway = new SqliteGateway { Settings = { ["FhirSortie:DataDirectory"] = _folder } };
        var fhir = gateway.Fhir();

        // The tables were rebuilt: keyed by their rows, duplicates once.
        Assert.Equal(1, await ScalarAsync(database, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'search_string' AND sql LIKE '%WITHOUT ROWID%'"));
        Assert.Equal(1, await ScalarAsync(database, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'resource_compartment' AND sql LIKE '%WITHOUT ROWID%'"));
        Assert.Equal(0, await ScalarAsync(database, "SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('search_token_label', 'search_reference_reverse')"));
        Assert.Equal(1, await ScalarAsync(database, $"SELECT COUNT(*) FROM search_string s JOIN resources r ON r.rkey = s.rkey WHERE r.id = 'old{run}' AND s.param = 'given'"));

        // A per-resource look-up naming a system (ConsentGrants: an organisation's FINESS) stays on the rkey-led index
        // instead of walking every identifier of every resource (SQLite has no statistics to tell them apart).
        Assert.Contains("search_token_resource (rkey=? AND param=?", await PlanAsync(database,
            "SELECT st.code FROM resources o JOIN search_token st ON st.rkey = o.rkey AND st.param = 'identifier' AND st.system = 'https://finess.esante.gouv.fr' " +
            "WHERE o.type = 'Organization' AND o.id = 'x' AND o.deleted = 0"));

        await OlderSchema.AssertFoundAsync(fhir, patient, prescription, run, ins);

        // After the upgrade: an update replaces the old rows (deleted by rkey), the repeated given name is stored once.
        patient.Name = [new HumanName { Family = "Nouveauschema", Given = ["Paul", "Paul"] }];
        using (var put = await fhir.PutAsync($"Patient/{patient.Id}", FhirHttp.Json(patient)))
            Assert.Equal(System.Net.HttpStatusCode.OK, put.StatusCode);
        Assert.Empty((await fhir.SearchAsync($"Patient?family=ancienschema&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([patient.Id!], (await fhir.SearchAsync($"Patient?given=paul&family=nouveauschema&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([patient.Id!], (await fhir.SearchAsync($"Patient?identifier={Domain.Ins}|{ins}")).Matches());
        Assert.Equal([prescription.Id!], (await fhir.SearchAsync($"Patient/{patient.Id}/MedicationRequest")).Matches());
        Assert.Equal(1, await ScalarAsync(database, $"SELECT COUNT(*) FROM search_string s JOIN resources r ON r.rkey = s.rkey WHERE r.id = 'old{run}' AND s.param = 'given'"));
    }
}

/// <summary>
/// PostgreSQL: the index part of the same upgrade (Schema.SearchIndexesPostgresV2) on rows an older schema wrote.
/// </summary>
public sealed class PostgresSearchIndexMigrationTests
{
    [Fact]
    public async System.Threading.Tasks.Task Rows_written_before_the_index_upgrade_stay_searchable()
    {
        var run = Domain.NewRun();
        var ins = "1800299" + Random.Shared.NextInt64(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);
        var connectionString = TestPostgres.CreateDatabase();
        var database = new FhirSortie.Server.Storage.Postgres.PostgresDialect(connectionString);
        await Migrator.MigrateAsync(new OlderSchema(database, Schema.SearchIndexesPostgresV2), NullLogger.Instance, CancellationToken.None);
        var (patient, prescription) = await OlderSchema.WriteAsync(database, run, ins);
        await OlderSchema.ScalarAsync(database, $"INSERT INTO resource_origin (type, id, finess) VALUES ('Patient', '{patient.Id}', '750000010'), ('MedicationRequest', '{prescription.Id}', '750000010') RETURNING 0");

        using var gateway = new PostgresGateway { Settings = { ["FhirSortie:Storage:ConnectionString"] = connectionString } };
        var fhir = gateway.Fhir();

        Assert.Equal(0, await OlderSchema.ScalarAsync(database,
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname IN ('search_token_code', 'search_token_label', 'search_reference_reverse')"));
        Assert.Equal(2, await OlderSchema.ScalarAsync(database,
            "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'search_token'"));
        await OlderSchema.AssertFoundAsync(fhir, patient, prescription, run, ins);

        // After the upgrade: an update replaces the rows (deleted by rkey through the new rkey-led index).
        patient.Name = [new HumanName { Family = "Nouveauschema", Given = ["Paul"] }];
        using (var put = await fhir.PutAsync($"Patient/{patient.Id}", FhirHttp.Json(patient)))
            Assert.Equal(System.Net.HttpStatusCode.OK, put.StatusCode);
        Assert.Empty((await fhir.SearchAsync($"Patient?family=ancienschema&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([patient.Id!], (await fhir.SearchAsync($"Patient?given=paul&family=nouveauschema&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([patient.Id!], (await fhir.SearchAsync($"Patient?identifier={Domain.Ins}|{ins}")).Matches());
    }
}

/// <summary>The schema as an older build left it (every migration before <paramref name="firstMissing"/>), and what it wrote.</summary>
internal sealed class OlderSchema(StorageDialect inner, string firstMissing) : StorageDialect
{
    public override string Name => inner.Name;
    public override DbConnection CreateConnection() => inner.CreateConnection();
    public override Task<WriteUnit> BeginWriteAsync(CancellationToken ct) => inner.BeginWriteAsync(ct);
    public override IReadOnlyList<string> Migrations => inner.Migrations.TakeWhile(m => m != firstMissing).ToList();
    public override Task<IAsyncDisposable> LockForMigrationAsync(DbConnection connection, CancellationToken ct) => inner.LockForMigrationAsync(connection, ct);
    public override bool IsUniqueViolation(DbException e) => inner.IsUniqueViolation(e);
    public override bool IsTransient(DbException e) => inner.IsTransient(e);
    public override string ForUpdate => inner.ForUpdate;
    public override string ILike => inner.ILike;

    public static async Task<long> ScalarAsync(StorageDialect dialect, string sql)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        await using var cmd = Sql.Command(connection, null, sql);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Written by the older schema: a patient whose given name repeats (two identical search_string rows), and a
    /// prescription that points at it (reference, date, compartment rows).
    /// </summary>
    public static async Task<(Patient Patient, MedicationRequest Prescription)> WriteAsync(StorageDialect database, string run, string ins)
    {
        var patient = Domain.Patient(run, ins, "Ancienschema", "Jean");
        patient.Id = "old" + run;
        patient.Name.Add(new HumanName { Family = "Ancienschema", Given = ["Jean"] });
        var prescription = Domain.Buprenorphine(run, patient.Id);
        prescription.Id = "oldmr" + run;
        var conformance = Path.Combine(AppContext.BaseDirectory, "conformance");
        await using var store = new ResourceStore(database, new ResourceIndexer(new SearchParameters([]), Compartments.Load(conformance)), TimeProvider.System);
        await store.WriteAsync(async session =>
        {
            await session.SaveAsync(patient, null, "PUT", CancellationToken.None);
            await session.SaveAsync(prescription, null, "PUT", CancellationToken.None);
            return 0;
        }, CancellationToken.None);
        return (patient, prescription);
    }

    /// <summary>The old rows, by value (string, token, date, reference), chain, _has, _revinclude, compartment.</summary>
    public static async System.Threading.Tasks.Task AssertFoundAsync(HttpClient fhir, Patient patient, MedicationRequest prescription, string run, string ins)
    {
        Assert.Equal([patient.Id!], (await fhir.SearchAsync($"Patient?given=jean&family=ancienschema&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([patient.Id!], (await fhir.SearchAsync($"Patient?identifier={Domain.Ins}|{ins}")).Matches());
        Assert.Equal([patient.Id!], (await fhir.SearchAsync($"Patient?birthdate=1980-02-14&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([prescription.Id!], (await fhir.SearchAsync($"MedicationRequest?subject=Patient/{patient.Id}")).Matches());
        Assert.Equal([prescription.Id!], (await fhir.SearchAsync($"MedicationRequest?authoredon=2026-11-02&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([prescription.Id!], (await fhir.SearchAsync($"MedicationRequest?subject:Patient.identifier={Domain.Ins}|{ins}")).Matches());
        Assert.Equal([patient.Id!], (await fhir.SearchAsync($"Patient?_has:MedicationRequest:subject:code={Domain.Atc}|N07BC01&_tag={Domain.RunTag}|{run}")).Matches());
        var withRevinclude = await fhir.SearchAsync($"Patient?_id={patient.Id}&_revinclude=MedicationRequest:subject");
        Assert.Equal([$"MedicationRequest/{prescription.Id}"], withRevinclude.Included());
        var any = await fhir.SearchAsync($"Patient?_id={patient.Id}&_revinclude=*");
        Assert.Equal([$"MedicationRequest/{prescription.Id}"], any.Included());
        Assert.Equal([prescription.Id!], (await fhir.SearchAsync($"Patient/{patient.Id}/MedicationRequest")).Matches());
    }
}
