using System.Net;
using System.Text.Json;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using FhirSortie.Tests.Search;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Export;

/// <summary>A gateway whose export files live three seconds (FhirSortie:Export:FileLifetimeMinutes = 0.05).</summary>
public abstract class ShortLivedExportGateway<TGateway> : IDisposable where TGateway : Gateway, new()
{
    public TGateway Gateway { get; } = new();

    protected ShortLivedExportGateway()
    {
        Gateway.Settings["FhirSortie:Export:FileLifetimeMinutes"] = "0.05";
        Gateway.Settings["FhirSortie:Export:PollMilliseconds"] = "200";
    }

    public void Dispose()
    {
        Gateway.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class SqliteShortLivedExportGateway : ShortLivedExportGateway<SqliteGateway>;
public sealed class PostgresShortLivedExportGateway : ShortLivedExportGateway<PostgresGateway>;

/// <summary>Output file expiry: after the configured lifetime the files and the status are 404 and the rows are gone.</summary>
public abstract class BulkExportExpiryTests(Gateway gateway)
{
    [Fact]
    public async Task After_the_lifetime_the_files_are_404_and_removed_from_the_database()
    {
        var usmp = gateway.Fhir();
        var patient = (await usmp.CreateAsync(Patient(NewRun(), "180029900000003", "Expiry"))).Id!;
        var kickoff = new HttpRequestMessage(HttpMethod.Get, "Patient/$export?_type=Patient");
        kickoff.Headers.Add("Prefer", "respond-async");
        var accepted = await usmp.SendAsync(kickoff);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var status = accepted.Content.Headers.ContentLocation!.ToString();
        var job = status[(status.LastIndexOf('/') + 1)..];

        HttpResponseMessage poll;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((poll = await usmp.GetAsync(status)).StatusCode == HttpStatusCode.Accepted && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(HttpStatusCode.OK, poll.StatusCode);
        var completedAt = DateTimeOffset.UtcNow;
        // The manifest says when the files go (HTTP Expires), about three seconds from now.
        var expires = poll.Content.Headers.Expires!.Value;
        Assert.InRange(expires, completedAt.AddSeconds(-2), completedAt.AddSeconds(4));
        var manifest = JsonDocument.Parse(await poll.Content.ReadAsStringAsync()).RootElement;
        var file = manifest.GetProperty("output")[0].GetProperty("url").GetString()!;
        var served = await usmp.GetAsync(file);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Contains(patient, await served.Content.ReadAsStringAsync());
        Assert.True(await RowsAsync(job) > 0);

        // Past the lifetime (the header has whole seconds: the milliseconds it drops, and a margin): not served, then
        // removed by the next worker round.
        await Task.Delay(expires - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(1300));
        Assert.Equal(HttpStatusCode.NotFound, (await usmp.GetAsync(file)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await usmp.GetAsync(status)).StatusCode);
        deadline = DateTime.UtcNow.AddSeconds(15);
        while (await RowsAsync(job) > 0 && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(0, await RowsAsync(job));
    }

    /// <summary>The job's rows left in the database: its export_jobs row and its file chunks.</summary>
    private async Task<long> RowsAsync(string job)
    {
        var dialect = gateway.Services.GetRequiredService<StorageDialect>();
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        await using var count = Sql.Command(connection, null,
            "SELECT (SELECT COUNT(*) FROM export_jobs WHERE id = @j) + (SELECT COUNT(*) FROM export_chunks WHERE job_id = @j)").With("@j", job);
        return Convert.ToInt64(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}

public sealed class SqliteBulkExportExpiryTests(SqliteShortLivedExportGateway fixture) : BulkExportExpiryTests(fixture.Gateway), IClassFixture<SqliteShortLivedExportGateway>;
public sealed class PostgresBulkExportExpiryTests(PostgresShortLivedExportGateway fixture) : BulkExportExpiryTests(fixture.Gateway), IClassFixture<PostgresShortLivedExportGateway>;
