using System.IO.Compression;
using System.Net;
using System.Text.Json;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// Audit retention: the records older than the cutoff go to a compressed NDJSON archive and only then out of the audit
/// store; newer ones stay; without a retention setting or a date nothing is removed; the archive is itself audited.
/// </summary>
public abstract class AuditRetentionTests(Gateway gateway)
{
    private HttpClient Auditor() => gateway.Fhir(TestAuthenticationHandler.Describe("auditor-retention", ActorKind.Auditor, null, "system/AuditEvent.rs"));

    private async Task<string> RecordAsync(DateTimeOffset recorded)
    {
        var dialect = gateway.Services.GetRequiredService<StorageDialect>();
        var entry = AuditEntry.Of(null, "read", 200, recorded, new AuditNote(), null);
        await using var unit = await dialect.BeginWriteAsync(CancellationToken.None);
        await AuditStore.AppendAsync(unit.Connection, unit.Transaction, [entry], CancellationToken.None);
        await unit.CommitAsync(CancellationToken.None);
        return entry.Id;
    }

    [Fact]
    public async Task Records_before_the_cutoff_are_archived_then_removed_and_newer_ones_stay()
    {
        var old = await RecordAsync(new DateTimeOffset(2020, 3, 1, 8, 0, 0, TimeSpan.Zero));
        var older = await RecordAsync(new DateTimeOffset(2019, 6, 1, 8, 0, 0, TimeSpan.Zero));
        var recent = await RecordAsync(DateTimeOffset.UtcNow.AddDays(-1));
        var folder = Path.Combine(Path.GetTempPath(), "fhirsortie-archive-" + Guid.NewGuid().ToString("N"));
        var output = new StringWriter();
        var services = gateway.Services;

        var code = await AuditRetention.RunAsync(services.GetRequiredService<StorageDialect>(), services.GetRequiredService<AuditTrail>(),
            new ConfigurationBuilder().Build(), TimeProvider.System, ["archive-audit", folder, "--before", "2021-01-01"], output, new StringWriter(), CancellationToken.None);

        Assert.Equal(0, code);
        Assert.Contains("Archived", output.ToString());
        var file = Assert.Single(Directory.GetFiles(folder, "*.ndjson.gz"));
        var ids = new List<string>();
        await using (var gzip = new GZipStream(File.OpenRead(file), CompressionMode.Decompress))
        using (var reader = new StreamReader(gzip))
        {
            while (await reader.ReadLineAsync() is { Length: > 0 } line)
            {
                var json = JsonDocument.Parse(line).RootElement;
                Assert.Equal("AuditEvent", json.GetProperty("resourceType").GetString());
                ids.Add(json.GetProperty("id").GetString()!);
            }
        }
        Assert.Contains(old, ids);
        Assert.Contains(older, ids);
        Assert.DoesNotContain(recent, ids);
        var auditor = Auditor();
        Assert.Equal(HttpStatusCode.NotFound, (await auditor.GetAsync("AuditEvent/" + old)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await auditor.GetAsync("AuditEvent/" + recent)).StatusCode);
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task Without_a_retention_or_a_date_nothing_is_removed()
    {
        var old = await RecordAsync(new DateTimeOffset(2018, 1, 1, 8, 0, 0, TimeSpan.Zero));
        var error = new StringWriter();
        var services = gateway.Services;
        var code = await AuditRetention.RunAsync(services.GetRequiredService<StorageDialect>(), services.GetRequiredService<AuditTrail>(),
            new ConfigurationBuilder().Build(), TimeProvider.System, ["archive-audit", Path.GetTempPath()], new StringWriter(), error, CancellationToken.None);
        Assert.Equal(1, code);
        Assert.Contains("nothing removed", error.ToString());
        Assert.Equal(HttpStatusCode.OK, (await Auditor().GetAsync("AuditEvent/" + old)).StatusCode);
    }
}

public sealed class SqliteAuditRetentionTests(SqliteGateway gateway) : AuditRetentionTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresAuditRetentionTests(PostgresGateway gateway) : AuditRetentionTests(gateway), IClassFixture<PostgresGateway>;
