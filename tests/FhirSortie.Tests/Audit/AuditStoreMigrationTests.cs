#nullable disable warnings
using System.Data.Common;
using System.Globalization;
using System.Net;
using System.Text;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;
using FhirSortie.Server.Storage.Sqlite;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// A database an older build left, at the schema before the audit store: AuditEvents materialised as generic resources
/// (resource, version, index rows) and audit_log rows not yet materialised. After the upgrade both are served by the
/// audit store: read byte for byte as before (materialised ones) or as the materialiser would have built them (queued
/// ones), found by the auditor's parameters; nothing of them is left in the generic tables or the queue.
/// </summary>
public abstract class AuditStoreMigrationTests
{
    protected abstract StorageDialect OldDatabase();

    /// <summary>A gateway started on the database <see cref="OldDatabase"/> made.</summary>
    protected abstract Gateway GatewayOn(StorageDialect database);

    private static readonly Compartments Compartments = Compartments.Load(Path.Combine(AppContext.BaseDirectory, "conformance"));

    /// <summary>The schema as an older build left it: every migration before the audit store's.</summary>
    private sealed class OlderSchema(StorageDialect inner) : StorageDialect
    {
        public override string Name => inner.Name;
        public override DbConnection CreateConnection() => inner.CreateConnection();
        public override Task<WriteUnit> BeginWriteAsync(CancellationToken ct) => inner.BeginWriteAsync(ct);
        public override IReadOnlyList<string> Migrations => inner.Migrations.TakeWhile(m => !m.Contains("CREATE TABLE audit_events", StringComparison.Ordinal)).ToList();
        public override Task<IAsyncDisposable> LockForMigrationAsync(DbConnection connection, CancellationToken ct) => inner.LockForMigrationAsync(connection, ct);
        public override bool IsUniqueViolation(DbException e) => inner.IsUniqueViolation(e);
        public override bool IsTransient(DbException e) => inner.IsTransient(e);
        public override string ForUpdate => inner.ForUpdate;
        public override string ILike => inner.ILike;
    }

    private static AuditEntry Entry(string interaction, int status, string client, string finess, string patient, long recorded) => new()
    {
        Id = Server.Rest.FhirRequest.NewId(),
        Recorded = recorded,
        Interaction = interaction,
        Status = status,
        ClientId = client,
        Kind = "Usmp",
        Finess = finess,
        Permitted = status < 400,
        Reason = status < 400 ? "same organisation" : "no consent",
        Entities = [$"Patient/{patient}"],
        Patients = [patient],
    };

    /// <summary>What the removed materialiser stored for an entry: version 1 in resources and resource_versions, and its index rows.</summary>
    private static async Task<byte[]> MaterialiseAsOlderBuildDidAsync(WriteUnit unit, AuditEntry entry, DateTimeOffset materialisedAt)
    {
        var json = AuditEventRows.Json(entry, materialisedAt);
        long key;
        await using (var insert = Sql.Command(unit.Connection, unit.Transaction,
            "INSERT INTO resources (type, id, version, last_updated, deleted, json) VALUES ('AuditEvent', @i, 1, @u, 0, @j) RETURNING rkey")
            .With("@i", entry.Id).With("@u", materialisedAt.ToUnixTimeMilliseconds()).With("@j", json))
            key = Convert.ToInt64(await insert.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        await using (var version = Sql.Command(unit.Connection, unit.Transaction,
            "INSERT INTO resource_versions (rkey, type, id, version, last_updated, method, json) VALUES (@k, 'AuditEvent', @i, 1, @u, 'POST', @j)")
            .With("@k", key).With("@i", entry.Id).With("@u", materialisedAt.ToUnixTimeMilliseconds()).With("@j", json))
            await version.ExecuteNonQueryAsync();
        await IndexWriter.ReplaceAsync(unit.Connection, unit.Transaction, key, "AuditEvent", AuditEventRows.Index(entry, Compartments), existed: false, CancellationToken.None);
        return json;
    }

    private static async Task<long> CountAsync(StorageDialect dialect, string sql)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        await using var cmd = Sql.Command(connection, null, sql);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Materialised_and_queued_AuditEvents_of_an_older_build_stay_readable_and_searchable()
    {
        var patient = "mig" + Domain.NewRun();
        var recorded = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds();
        var materialised = Entry("read", 200, "usmp-old", "690000012", patient, recorded);
        var refused = Entry("read", 403, "csapa-old", "750000028", patient, recorded + 1000);
        var queued = Entry("search-type", 200, "usmp-old", "690000012", patient, recorded + 2000) with { Query = $"patient={patient}" };

        var database = OldDatabase();
        var older = new OlderSchema(database);
        await Migrator.MigrateAsync(older, NullLogger.Instance, CancellationToken.None);
        byte[] materialisedJson;
        await using (var unit = await database.BeginWriteAsync(CancellationToken.None))
        {
            materialisedJson = await MaterialiseAsOlderBuildDidAsync(unit, materialised, DateTimeOffset.FromUnixTimeMilliseconds(recorded + 250));
            await MaterialiseAsOlderBuildDidAsync(unit, refused, DateTimeOffset.FromUnixTimeMilliseconds(recorded + 1250));
            await using (var insert = Sql.Command(unit.Connection, unit.Transaction, "INSERT INTO audit_log (audit_id, recorded, entry) VALUES (@i, @r, @e)")
                .With("@i", queued.Id).With("@r", queued.Recorded).With("@e", queued.ToJson()))
                await insert.ExecuteNonQueryAsync();
            await unit.CommitAsync(CancellationToken.None);
        }

        using var gateway = GatewayOn(database);
        var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo-mig", ActorKind.Auditor, null, "system/AuditEvent.rs"));
        var search = await auditor.SearchAsync($"AuditEvent?patient={patient}&_sort=date");
        Assert.Equal([materialised.Id, refused.Id, queued.Id], search.Matches());

        // The materialised one: its stored JSON, byte for byte (lastUpdated = when it was materialised).
        using (var read = await auditor.GetAsync($"AuditEvent/{materialised.Id}"))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            Assert.Equal(Encoding.UTF8.GetString(materialisedJson), await read.Content.ReadAsStringAsync());
        }
        // The queued one: what the materialiser would have built, last updated when recorded.
        using (var read = await auditor.GetAsync($"AuditEvent/{queued.Id}"))
            Assert.Equal(Encoding.UTF8.GetString(AuditEventRows.Json(queued, DateTimeOffset.FromUnixTimeMilliseconds(queued.Recorded))), await read.Content.ReadAsStringAsync());

        // The old index values came along: agent, entity, outcome, action, subtype, date.
        Assert.Equal([materialised.Id, queued.Id], (await auditor.SearchAsync($"AuditEvent?agent:identifier=https://fhirsortie.fr/fhir/sid/client-id|usmp-old&_sort=date")).Matches());
        Assert.Equal([refused.Id], (await auditor.SearchAsync($"AuditEvent?agent:identifier=https://finess.esante.gouv.fr|750000028")).Matches());
        Assert.Equal([refused.Id], (await auditor.SearchAsync($"AuditEvent?entity=Patient/{patient}&outcome=4")).Matches());
        Assert.Equal([materialised.Id, refused.Id], (await auditor.SearchAsync($"AuditEvent?patient={patient}&subtype=read&action=R&_sort=date")).Matches());
        var at = DateTimeOffset.FromUnixTimeMilliseconds(recorded + 500).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
        Assert.Equal([materialised.Id], (await auditor.SearchAsync($"AuditEvent?patient={patient}&date=lt{at}")).Matches());

        // Nothing left in the generic tables or the queue.
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM resources WHERE type = 'AuditEvent'"));
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM resource_versions WHERE type = 'AuditEvent'"));
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM search_token WHERE type = 'AuditEvent'"));
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM audit_log"));
    }
}

public sealed class SqliteAuditStoreMigrationTests : AuditStoreMigrationTests, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "fhirsortie-tests", Guid.NewGuid().ToString("N"));

    protected override StorageDialect OldDatabase()
    {
        Directory.CreateDirectory(_directory);
        var dialect = new SqliteDialect(_directory);
        // What Migrator does first on SQLite, outside any transaction (the older-schema wrapper is no SqliteDialect).
        using var connection = dialect.CreateConnection();
        connection.Open();
        using var wal = Sql.Command(connection, null, "PRAGMA journal_mode=WAL;");
        wal.ExecuteNonQuery();
        return dialect;
    }

    protected override Gateway GatewayOn(StorageDialect database) => new SqliteGateway { Settings = { ["FhirSortie:DataDirectory"] = _directory } };

    public void Dispose()
    {
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public sealed class PostgresAuditStoreMigrationTests : AuditStoreMigrationTests
{
    private readonly string _connectionString = TestPostgres.CreateDatabase();

    protected override StorageDialect OldDatabase() => new PostgresDialect(_connectionString);

    protected override Gateway GatewayOn(StorageDialect database) => new PostgresGateway { Settings = { ["FhirSortie:Storage:ConnectionString"] = _connectionString } };
}
