using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace FhirSortie.Tests.Storage;

/// <summary>/health (liveness) and /health/ready (the database), by GET and HEAD, anonymous.</summary>
public abstract class HealthTests(Gateway gateway)
{
    [Theory]
    [InlineData("/health")]
    [InlineData("/health/ready")]
    public async Task A_node_with_its_database_is_live_and_ready_by_GET_and_HEAD(string path)
    {
        using var http = gateway.CreateClient();
        using var get = await http.GetAsync(path);
        using var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));

        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("{\"status\":\"ok\"}", await get.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }
}

public sealed class SqliteHealthTests(SqliteGateway gateway) : HealthTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresHealthTests(PostgresGateway gateway) : HealthTests(gateway), IClassFixture<PostgresGateway>;

/// <summary>A node whose PostgreSQL database goes away stays live and stops being ready.</summary>
public sealed class DatabaseLossHealthTests
{
    [Fact]
    public async Task Without_its_database_a_node_is_live_but_not_ready()
    {
        using var gateway = new PostgresGateway();
        using var http = gateway.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/ready")).StatusCode);
        var database = new NpgsqlConnectionStringBuilder(gateway.Services.GetRequiredService<IConfiguration>()["FhirSortie:Storage:ConnectionString"]).Database;

        await using (var server = new NpgsqlConnection(TestPostgres.ServerConnectionString))
        {
            await server.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE \"{database}\" WITH (FORCE)", server);
            await drop.ExecuteNonQueryAsync();
        }

        using var ready = await http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal("{\"status\":\"unavailable\"}", await ready.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
    }
}
