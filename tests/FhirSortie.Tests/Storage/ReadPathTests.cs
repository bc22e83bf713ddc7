using System.Net;
using FhirSortie.Server;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FhirSortie.Tests.Storage;

/// <summary>
/// The store keeps idle readers (open connection + prepared SELECT) for speed: reads through a reused reader must
/// still see every committed write, survive more concurrent reads than readers kept, and survive connections
/// that the database dropped meanwhile.
/// </summary>
public abstract class ReadPathTests(Gateway gateway)
{
    protected readonly Gateway Gateway = gateway;
    protected readonly HttpClient Fhir = gateway.Fhir();

    protected async Task<Patient> CreateAsync(string family)
    {
        var response = await Fhir.PostAsync("Patient", FhirHttp.Json(new Patient { Name = [new HumanName { Family = family }] }));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return await response.ReadAs<Patient>();
    }

    [Fact]
    public async Task Repeated_reads_see_each_update_and_the_delete()
    {
        var patient = await CreateAsync("Avant");
        for (var version = 2; version <= 4; version++)
        {
            // Read several times between writes so that the reads go through readers kept from earlier reads.
            for (var i = 0; i < 5; i++) Assert.Equal(HttpStatusCode.OK, (await Fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
            patient.Name[0].Family = $"Version{version}";
            Assert.Equal(HttpStatusCode.OK, (await Fhir.PutAsync($"Patient/{patient.Id}", FhirHttp.Json(patient))).StatusCode);
            var read = await Fhir.GetAsync($"Patient/{patient.Id}");
            Assert.Equal($"W/\"{version}\"", read.Headers.ETag?.ToString());
            Assert.Equal($"Version{version}", (await read.ReadAs<Patient>()).Name[0].Family);
        }
        Assert.Equal(HttpStatusCode.NoContent, (await Fhir.DeleteAsync($"Patient/{patient.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Gone, (await Fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Fhir.GetAsync("Patient/never-created")).StatusCode);
    }

    [Fact]
    public async Task Many_concurrent_reads_all_succeed()
    {
        var patients = new List<Patient>();
        for (var i = 0; i < 5; i++) patients.Add(await CreateAsync($"Concurrent{i}"));
        // More concurrent reads than idle readers are kept (16): extra readers are opened, then closed on return.
        var reads = Enumerable.Range(0, 120).Select(async i =>
        {
            var p = patients[i % patients.Count];
            var response = await Fhir.GetAsync($"Patient/{p.Id}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(p.Name[0].Family, (await response.ReadAs<Patient>()).Name[0].Family);
        });
        await Task.WhenAll(reads);
    }

    [Fact]
    public async Task Concurrent_author_and_patient_lookups_on_kept_readers_each_get_their_own_answer()
    {
        // Two organisations each write conditions about their own patient; the consent rule's author check then
        // runs on the kept readers' prepared statement, many at once.
        var written = new List<(StoredResource Stored, string Finess, string Patient)>();
        foreach (var finess in new[] { "750000010", "750000028" })
        {
            using var fhir = Gateway.Fhir(TestAuthenticationHandler.Describe($"org-{finess}", ActorKind.Usmp, finess, "system/*.cruds"));
            var patientId = (await (await fhir.PostAsync("Patient", FhirHttp.Json(new Patient { Name = [new HumanName { Family = "Origine" }] }))).ReadAs<Patient>()).Id!;
            for (var i = 0; i < 3; i++)
            {
                var created = await fhir.PostAsync("Condition", FhirHttp.Json(new Condition
                {
                    Code = new CodeableConcept { Text = "x" }, Subject = new ResourceReference($"Patient/{patientId}"),
                }));
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                var id = (await created.ReadAs<Condition>()).Id!;
                written.Add((await Store.ReadAsync("Condition", id, CancellationToken.None) ?? throw new InvalidOperationException(id), finess, patientId));
            }
            written.Add((await Store.ReadAsync("Patient", patientId, CancellationToken.None) ?? throw new InvalidOperationException(patientId), finess, patientId));
        }
        var lookups = Enumerable.Range(0, 200).Select(async i =>
        {
            var (stored, finess, patient) = written[i % written.Count];
            var origin = await Store.ReadOriginAsync(stored, CancellationToken.None);
            Assert.Equal(finess, origin.Finess);
            if (stored.Type == "Condition") Assert.Equal([patient], origin.Patients);
        });
        await Task.WhenAll(lookups);
        using var other = Gateway.Fhir(TestAuthenticationHandler.Describe("org-other", ActorKind.Usmp, "750000036", "system/*.cruds"));
        // Another organisation without consent: the same lookup says "not the author", so the read is hidden.
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"Condition/{written[0].Stored.Id}")).StatusCode);
        using var author = Gateway.Fhir(TestAuthenticationHandler.Describe("org-750000010", ActorKind.Usmp, "750000010", "system/*.cruds"));
        Assert.Equal(HttpStatusCode.OK, (await author.GetAsync($"Condition/{written[0].Stored.Id}")).StatusCode);
    }

    private ResourceStore Store => Gateway.Services.GetRequiredService<ResourceStore>();
}

public sealed class SqliteReadPathTests(SqliteGateway gateway) : ReadPathTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresReadPathTests(PostgresGateway gateway) : ReadPathTests(gateway), IClassFixture<PostgresGateway>
{
    [Fact]
    public async Task Read_succeeds_after_the_database_dropped_the_idle_connections()
    {
        var patient = await CreateAsync("Survivante");
        Assert.Equal(HttpStatusCode.OK, (await Fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
        await FillThePoolAsync();
        await TerminateTheGatewaysBackendsAsync();

        // The kept reader is dead, and so is every idle connection of the pool: the retry must not take one of them.
        var read = await Fhir.GetAsync($"Patient/{patient.Id}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal("Survivante", (await read.ReadAs<Patient>()).Name[0].Family);
    }

    [Fact]
    public async Task A_request_that_meets_a_dropped_connection_gets_503_never_500_and_the_next_one_succeeds()
    {
        var patient = await CreateAsync("Rescapee");
        await FillThePoolAsync();
        await TerminateTheGatewaysBackendsAsync();

        var first = await Fhir.GetAsync($"Patient?_id={patient.Id}");
        Assert.True(first.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"got {(int)first.StatusCode}");
        if (first.StatusCode == HttpStatusCode.ServiceUnavailable)
        {
            Assert.Equal("1", first.Headers.RetryAfter?.ToString());
            var outcome = await first.ReadAs<OperationOutcome>();
            Assert.Equal(OperationOutcome.IssueType.Transient, outcome.Issue[0].Code);
        }
        var next = await Fhir.GetAsync($"Patient?_id={patient.Id}");
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Single((await next.ReadAs<Bundle>()).Entry);
    }

    /// <summary>Concurrent searches leave several idle connections in the pool (reads use kept readers instead).</summary>
    private async Task FillThePoolAsync()
    {
        var searches = Enumerable.Range(0, 8).Select(_ => Fhir.GetAsync("Patient?name=Survivante,Rescapee&_count=1"));
        foreach (var response in await Task.WhenAll(searches)) Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>What a server restart or a failover does to idle connections: terminate this gateway's backends.</summary>
    private async Task TerminateTheGatewaysBackendsAsync()
    {
        var gatewayConnection = Gateway.Services.GetRequiredService<IOptions<FhirSortieOptions>>().Value.Storage.ConnectionString!;
        var database = new NpgsqlConnectionStringBuilder(gatewayConnection).Database;
        await using var admin = new NpgsqlConnection(TestPostgres.ServerConnectionString);
        await admin.OpenAsync();
        await using var kill = new NpgsqlCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = @d AND pid <> pg_backend_pid()", admin);
        kill.Parameters.AddWithValue("d", database!);
        Assert.True((long)(await kill.ExecuteScalarAsync())! >= 1);
        // pg_terminate_backend only signals: wait until the backends are gone, as after a real restart.
        await using var gone = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = @d AND pid <> pg_backend_pid()", admin);
        gone.Parameters.AddWithValue("d", database!);
        for (var i = 0; i < 100 && (long)(await gone.ExecuteScalarAsync())! > 0; i++) await Task.Delay(20);
    }
}
