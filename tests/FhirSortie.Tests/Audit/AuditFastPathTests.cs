#nullable disable warnings
using System.Data.Common;
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// The audited read path as a client and an auditor see it: records durable in the audit store when the answer
/// arrives, also when many requests share a commit; a failed audit write fails every request of its batch; the
/// AuditEvent of a read is found by the auditor's search parameters and read by id as the search gave it.
/// </summary>
public abstract class AuditFastPathTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();
    private readonly HttpClient _auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));

    private StorageDialect Dialect => gateway.Services.GetRequiredService<StorageDialect>();

    private async Task<long> QueuedAsync(string auditId) => await DurableAuditRecords.ExistsAsync(Dialect, auditId) ? 1 : 0;

    private static AuditEntry ReadOf(string patient) => new()
    {
        Id = Server.Rest.FhirRequest.NewId(),
        Recorded = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        Interaction = "read",
        Status = 200,
        ClientId = "usmp-test",
        Entities = [$"Patient/{patient}"],
        Patients = [patient],
    };

    [Fact]
    public async Task Every_row_of_concurrent_requests_is_committed_when_its_call_returns()
    {
        var trail = gateway.Services.GetRequiredService<AuditTrail>();
        var batches = trail.Batches;
        var entries = Enumerable.Range(0, 100).Select(i => ReadOf($"grp{i}")).ToList();
        var missing = await Task.WhenAll(entries.Select(entry => Task.Run(async () =>
        {
            await trail.CommitAsync(entry);
            return await QueuedAsync(entry.Id); // on another connection, right away: committed, not waiting in memory
        })));
        Assert.All(missing, count => Assert.Equal(1, count));
        // Rows share transactions (PostgreSQL: the audit store's; SQLite: those of the audit journal's lanes).
        Assert.True(trail.Batches - batches < 100, $"{trail.Batches - batches} transactions for 100 concurrent rows");
    }

    [Fact]
    public async Task A_failed_audit_write_fails_every_request_of_its_batch_and_the_next_ones_still_get_written()
    {
        var failing = new FailingDialect(Dialect) { Failing = true };
        var trail = new AuditTrail(failing, TimeProvider.System);
        var first = Enumerable.Range(0, 20).Select(i => ReadOf($"fail{i}")).ToList();
        var calls = first.Select(trail.CommitAsync).ToList();
        foreach (var call in calls) await Assert.ThrowsAsync<InvalidOperationException>(() => call);
        foreach (var entry in first) Assert.Equal(0, await QueuedAsync(entry.Id));

        failing.Failing = false;
        var next = ReadOf("fail-after");
        await trail.CommitAsync(next);
        Assert.Equal(1, await QueuedAsync(next.Id));
    }

    [Fact]
    public async Task An_auditor_finds_and_reads_the_AuditEvent_of_a_read_by_each_parameter()
    {
        var before = DateTimeOffset.UtcNow.AddSeconds(-1).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        var patient = await _fhir.CreateAsync(new Patient { Meta = Tagged(NewRun()), Name = [new HumanName { Family = "Fast" }] });
        var reader = gateway.Fhir(TestAuthenticationHandler.Describe("usmp-fast", ActorKind.Usmp, "750000010", "system/*.rs", patient: null));
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync($"Patient/{patient.Id}")).StatusCode);

        var all = (await _auditor.SearchAsync($"AuditEvent?patient={patient.Id}&_count=100")).Entry.Select(e => (AuditEvent)e.Resource).ToList();
        var read = Assert.Single(all, a => a.Subtype.Single().Code == "read");
        Assert.Equal("usmp-fast", read.Agent[0].Who.Identifier.Value);
        Assert.Equal("750000010", read.Agent[1].Who.Identifier.Value);
        Assert.Equal(AuditEvent.AuditEventOutcome.N0, read.Outcome);
        Assert.Contains(read.Entity, e => e.What?.Reference == $"Patient/{patient.Id}" && e.Role?.Code == "1");

        foreach (var query in new[]
        {
            $"entity=Patient/{patient.Id}", "agent:identifier=https://fhirsortie.fr/fhir/sid/client-id|usmp-fast",
            $"patient=Patient/{patient.Id}&subtype=http://hl7.org/fhir/restful-interaction|read", $"patient={patient.Id}&action=R",
            $"patient={patient.Id}&outcome=0", $"patient={patient.Id}&type=rest", $"patient={patient.Id}&date=ge{before}",
$"_id={read.Id}", $"patient={patient.Id}&_sort=-date",
        })
        {
            var found = await _auditor.SearchAsync($"AuditEvent?{query}&_count=100");
            Assert.True(found.Matches().Contains(read.Id), $"AuditEvent?{query} does not find the read's AuditEvent");
        }
        var none = await _auditor.SearchAsync($"AuditEvent?patient={patient.Id}&subtype=http://hl7.org/fhir/restful-interaction|delete");
        Assert.Empty(none.Matches());
        // The Patient compartment (AuditEvent's patient parameter) holds it too.
        Assert.Contains(read.Id, (await _auditor.SearchAsync($"Patient/{patient.Id}/AuditEvent?_count=100")).Matches());

        var direct = await _auditor.GetAsync($"AuditEvent/{read.Id}");
        Assert.Equal(HttpStatusCode.OK, direct.StatusCode);
        Assert.Equal("W/\"1\"", direct.Headers.ETag?.ToString());
        var resource = await direct.ReadAs<AuditEvent>();
        Assert.True(resource.IsExactly(read), "the read gives what the search gave");
        Assert.Equal(HttpStatusCode.OK, (await _auditor.GetAsync($"AuditEvent/{read.Id}/_history/1")).StatusCode);
    }

    /// <summary>A dialect whose write units fail while <see cref="Failing"/> is set (a database that refuses writes).</summary>
    private sealed class FailingDialect(StorageDialect inner) : StorageDialect
    {
        public bool Failing { get; set; }
        public override string Name => inner.Name;
        public override DbConnection CreateConnection() => inner.CreateConnection();
        public override Task<WriteUnit> BeginWriteAsync(CancellationToken ct) =>
            Failing ? throw new InvalidOperationException("the database refuses writes") : inner.BeginWriteAsync(ct);
        public override IReadOnlyList<string> Migrations => inner.Migrations;
        public override Task<IAsyncDisposable> LockForMigrationAsync(DbConnection connection, CancellationToken ct) => inner.LockForMigrationAsync(connection, ct);
        public override bool IsUniqueViolation(DbException e) => inner.IsUniqueViolation(e);
        public override bool IsTransient(DbException e) => inner.IsTransient(e);
        public override string ForUpdate => inner.ForUpdate;
        public override string ILike => inner.ILike;
    }
}

public sealed class SqliteAuditFastPathTests(SqliteGateway gateway) : AuditFastPathTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresAuditFastPathTests(PostgresGateway gateway) : AuditFastPathTests(gateway), IClassFixture<PostgresGateway>;
