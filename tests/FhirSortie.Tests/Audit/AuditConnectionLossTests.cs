using FhirSortie.Server.Audit;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// The PostgreSQL audit write meets the pool's dead connections after a database restart or failover: it must write the
/// record on a new connection, not fail the request (the CI flake of PostgresReadPathTests came from here).
/// </summary>
public sealed class AuditConnectionLossTests
{
    [Fact]
    public async Task An_audit_record_is_written_on_a_new_connection_when_every_pooled_one_died()
    {
        var connectionString = TestPostgres.CreateDatabase();
        var dialect = new PostgresDialect(connectionString);
        await Migrator.MigrateAsync(dialect, NullLogger.Instance, CancellationToken.None);
        var trail = new AuditTrail(dialect, TimeProvider.System);

        // Several connections open at once, then idle in the pool: after the restart every one of them is dead.
        var held = new List<System.Data.Common.DbConnection>();
        for (var i = 0; i < 4; i++)
        {
            var connection = dialect.CreateConnection();
            await connection.OpenAsync();
            held.Add(connection);
        }
        foreach (var connection in held) await connection.DisposeAsync();
        var database = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        await using (var admin = new NpgsqlConnection(TestPostgres.ServerConnectionString))
        {
            await admin.OpenAsync();
            await using var kill = new NpgsqlCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = @d AND pid <> pg_backend_pid()", admin);
            kill.Parameters.AddWithValue("d", database);
            Assert.Equal(4L, (long)(await kill.ExecuteScalarAsync())!);
            await using var gone = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = @d AND pid <> pg_backend_pid()", admin);
            gone.Parameters.AddWithValue("d", database);
            for (var i = 0; i < 100 && (long)(await gone.ExecuteScalarAsync())! > 0; i++) await Task.Delay(20);
        }

        var entry = new AuditEntry { Id = Guid.NewGuid().ToString(), Recorded = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), Interaction = "read", Status = 200, ClientId = "usmp-test", Entities = ["Patient/p1"] };
        await trail.CommitAsync(entry);

        await using var check = dialect.CreateConnection();
        await check.OpenAsync();
        Assert.NotNull(await AuditStore.ReadAsync(check, entry.Id, CancellationToken.None));
    }
}
