#nullable disable warnings
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// The audit queue (audit_log) on a gateway whose own materialiser is switched off, so that the tests see the rows
/// the requests left and run materialisers themselves, as the next process or another node would.
/// </summary>
public abstract class AuditQueueTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));

    public static Dictionary<string, string> Paused => new() { ["FhirSortie:Audit:Materialise"] = "false" };

    private StorageDialect Dialect => gateway.Services.GetRequiredService<StorageDialect>();

    /// <summary>A materialiser as a freshly started process (or another node) builds it, with default settings.</summary>
    private AuditMaterialiser NewMaterialiser() => new(gateway.Services.GetRequiredService<ResourceStore>(), Dialect,
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string> { ["FhirSortie:Audit:FlushMilliseconds"] = "50" }).Build(),
        NullLogger<AuditMaterialiser>.Instance);

    private async Task<long> CountAsync(string sql, string like)
    {
        await using var connection = Dialect.CreateConnection();
        await connection.OpenAsync();
        await using var cmd = Sql.Command(connection, null, sql).With("@like", like);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private Task<long> QueuedAsync(string mention) => CountAsync("SELECT COUNT(*) FROM audit_log WHERE entry LIKE @like", $"%{mention}%");

    private async Task<List<AuditEvent>> AuditsOf(string patientId) =>
        (await Search.SearchHttp.SearchAsync(_auditor, $"AuditEvent?patient={patientId}&_count=100")).Entry.Select(e => (AuditEvent)e.Resource).ToList();

    [Fact]
    public async Task A_reads_audit_row_is_committed_when_the_response_arrives()
    {
        var patient = await Search.SearchHttp.CreateAsync(_fhir, new Patient { Meta = Tagged(NewRun()), Name = [new HumanName { Family = "Queue" }] });
        Assert.Equal(1, await QueuedAsync(patient.Id)); // the create's row, committed with the write

        var read = await _fhir.GetAsync($"Patient/{patient.Id}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        // Read on another connection as soon as the response is here: committed, not waiting in memory.
        Assert.Equal(2, await QueuedAsync(patient.Id));
        var denied = await gateway.Fhir(TestAuthenticationHandler.Describe("csapa-x", ActorKind.Csapa, "750000028", "system/Observation.rs", patient: null)).GetAsync($"Patient/{patient.Id}");
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Equal(3, await QueuedAsync(patient.Id));
    }

    [Fact]
    public async Task Rows_left_by_a_stopped_process_are_materialised_on_next_start()
    {
        var patient = await Search.SearchHttp.CreateAsync(_fhir, new Patient { Meta = Tagged(NewRun()), Name = [new HumanName { Family = "Restart" }] });
        Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
        Assert.Empty(await AuditsOf(patient.Id)); // this gateway does not materialise: the rows wait

        var next = NewMaterialiser();
        await next.StartAsync(CancellationToken.None);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while ((await AuditsOf(patient.Id)).Count(a => a.Subtype.Single().Code != "search-type") < 2 && DateTime.UtcNow < deadline) await Task.Delay(50);
        }
        finally
        {
            await next.StopAsync(CancellationToken.None); // flushes: nothing left queued
            next.Dispose();
        }
        Assert.Equal(0, await QueuedAsync(patient.Id));
        // The auditor's own searches above are audited too (search-type): the create and the read are what we look for.
        var audits = (await AuditsOf(patient.Id)).Where(a => a.Subtype.Single().Code != "search-type");
        Assert.Equal(["create", "read"], audits.Select(a => a.Subtype.Single().Code).Order().ToArray());
    }

    [Fact]
    public async Task Two_materialisers_on_one_database_never_produce_duplicates()
    {
        var prefix = "dup" + NewRun();
        const int rows = 600;
        await using (var unit = await Dialect.BeginWriteAsync(CancellationToken.None))
        {
            for (var i = 0; i < rows; i++)
            {
                var entry = new AuditEntry { Id = $"{prefix}-{i}", Recorded = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), Interaction = "read", Status = 200, ClientId = "usmp-test", Entities = [$"Patient/{prefix}"] };
                await AuditTrail.AppendAsync(unit.Connection, unit.Transaction, entry, CancellationToken.None);
            }
            await unit.CommitAsync(CancellationToken.None);
        }

        var (a, b) = (NewMaterialiser(), NewMaterialiser());
        await Task.WhenAll(Task.Run(() => a.FlushAsync(CancellationToken.None)), Task.Run(() => b.FlushAsync(CancellationToken.None)));
        a.Dispose();
        b.Dispose();

        Assert.Equal(rows, await CountAsync("SELECT COUNT(*) FROM resources WHERE type = 'AuditEvent' AND id LIKE @like", prefix + "-%"));
        Assert.Equal(rows, await CountAsync("SELECT COUNT(*) FROM resource_versions WHERE type = 'AuditEvent' AND id LIKE @like", prefix + "-%"));
        Assert.Equal(0, await QueuedAsync(prefix));
    }
}

public sealed class PausedSqliteGateway : IDisposable
{
    public SqliteGateway Gateway { get; } = new();

    public PausedSqliteGateway()
    {
        foreach (var (key, value) in AuditQueueTests.Paused) Gateway.Settings[key] = value;
    }

    public void Dispose() => Gateway.Dispose();
}

public sealed class PausedPostgresGateway : IDisposable
{
    public PostgresGateway Gateway { get; } = new();

    public PausedPostgresGateway()
    {
        foreach (var (key, value) in AuditQueueTests.Paused) Gateway.Settings[key] = value;
    }

    public void Dispose() => Gateway.Dispose();
}

public sealed class SqliteAuditQueueTests(PausedSqliteGateway paused) : AuditQueueTests(paused.Gateway), IClassFixture<PausedSqliteGateway>;
public sealed class PostgresAuditQueueTests(PausedPostgresGateway paused) : AuditQueueTests(paused.Gateway), IClassFixture<PausedPostgresGateway>;
