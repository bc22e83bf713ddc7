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

    /// <summary>The schema as an older build left it: every migration before this one.</summary>
    private sealed class OlderSchema(StorageDialect inner) : StorageDialect
    {
        public override string Name => inner.Name;
        public override DbConnection CreateConnection() => inner.CreateConnection();
        public override Task<WriteUnit> BeginWriteAsync(CancellationToken ct) => inner.BeginWriteAsync(ct);
        public override IReadOnlyList<string> Migrations => inner.Migrations.TakeWhile(m => m != Schema.SearchIndexesSqliteV2).ToList();
        public override Task<IAsyncDisposable> LockForMigrationAsync(DbConnection connection, CancellationToken ct) => inner.LockForMigrationAsync(connection, ct);
        public override bool IsUniqueViolation(DbException e) => inner.IsUniqueViolation(e);
        public override bool IsTransient(DbException e) => inner.IsTransient(e);
        public override string ForUpdate => inner.ForUpdate;
        public override string ILike => inner.ILike;
    }

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

    private static async Task<long> ScalarAsync(StorageDialect dialect, string sql)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        await using var cmd = Sql.Command(connection, null, sql);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

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
        await Migrator.MigrateAsync(new OlderSchema(database), NullLogger.Instance, CancellationToken.None);

        // Written by the older schema: a patient whose given name repeats (two identical search_string rows), and a
        // prescription that points at it (reference, date, compartment rows).
        var patient = Domain.Patient(run, ins, "Ancienschema", "Jean");
        patient.Id = "old" + run;
        patient.Name.Add(new HumanName { Family = "Ancienschema", Given = ["Jean"] });
        var prescription = Domain.Buprenorphine(run, patient.Id);
        prescription.Id = "oldmr" + run;
        var conformance = Path.Combine(AppContext.BaseDirectory, "conformance");
        await using (var store = new ResourceStore(database, new ResourceIndexer(new SearchParameters([]), Compartments.Load(conformance)), TimeProvider.System))
        {
            await store.WriteAsync(async session =>
            {
                await session.SaveAsync(patient, null, "PUT", CancellationToken.None);
                await session.SaveAsync(prescription, null, "PUT", CancellationToken.None);
                return 0;
            }, CancellationToken.None);
        }
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

        // Old rows: by value (string, token, date, reference), chain, _revinclude, compartment.
        Assert.Equal([patient.Id], (await fhir.SearchAsync($"Patient?given=jean&family=ancienschema&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([patient.Id], (await fhir.SearchAsync($"Patient?identifier={Domain.Ins}|{ins}")).Matches());
        Assert.Equal([patient.Id], (await fhir.SearchAsync($"Patient?birthdate=1980-02-14&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([prescription.Id], (await fhir.SearchAsync($"MedicationRequest?subject=Patient/{patient.Id}")).Matches());
        Assert.Equal([prescription.Id], (await fhir.SearchAsync($"MedicationRequest?authoredon=2026-11-02&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([prescription.Id], (await fhir.SearchAsync($"MedicationRequest?subject:Patient.identifier={Domain.Ins}|{ins}")).Matches());
        Assert.Equal([patient.Id], (await fhir.SearchAsync($"Patient?_has:MedicationRequest:subject:code={Domain.Atc}|N07BC01&_tag={Domain.RunTag}|{run}")).Matches());
        var withRevinclude = await fhir.SearchAsync($"Patient?_id={patient.Id}&_revinclude=MedicationRequest:subject");
        Assert.Equal([$"MedicationRequest/{prescription.Id}"], withRevinclude.Included());
        var any = await fhir.SearchAsync($"Patient?_id={patient.Id}&_revinclude=*");
        Assert.Equal([$"MedicationRequest/{prescription.Id}"], any.Included());
        Assert.Equal([prescription.Id], (await fhir.SearchAsync($"Patient/{patient.Id}/MedicationRequest")).Matches());

        // After the upgrade: an update replaces the old rows (deleted by rkey), the repeated given name is stored once.
        patient.Name = [new HumanName { Family = "Nouveauschema", Given = ["Paul", "Paul"] }];
        using (var put = await fhir.PutAsync($"Patient/{patient.Id}", FhirHttp.Json(patient)))
            Assert.Equal(System.Net.HttpStatusCode.OK, put.StatusCode);
        Assert.Empty((await fhir.SearchAsync($"Patient?family=ancienschema&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([patient.Id], (await fhir.SearchAsync($"Patient?given=paul&family=nouveauschema&_tag={Domain.RunTag}|{run}")).Matches());
        Assert.Equal([patient.Id], (await fhir.SearchAsync($"Patient?identifier={Domain.Ins}|{ins}")).Matches());
        Assert.Equal([prescription.Id], (await fhir.SearchAsync($"Patient/{patient.Id}/MedicationRequest")).Matches());
        Assert.Equal(1, await ScalarAsync(database, $"SELECT COUNT(*) FROM search_string s JOIN resources r ON r.rkey = s.rkey WHERE r.id = 'old{run}' AND s.param = 'given'"));
    }
}
