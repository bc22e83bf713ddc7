#nullable disable warnings
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using Hl7.Fhir.Model;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Search;

/// <summary>
/// Searches of the same shape share one SQL text, and on SQLite its compiled statement is kept on an idle connection
/// (Search/SearchConnections.cs): each search must still answer with its own values and with the data as it is now.
/// </summary>
public abstract class SearchStatementTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    [Fact]
    public async Task Searches_of_one_shape_with_other_values_each_find_their_own_match()
    {
        var run = NewRun();
        var ins = new[] { "280021400004001", "280021400004002", "280021400004003" };
        var ids = new List<string>();
        foreach (var (value, i) in ins.Select((v, i) => (v, i))) ids.Add((await _fhir.CreateAsync(Patient(run, value, $"Forme{i}"))).Id);

        // Several rounds, concurrently: the searches go through several kept connections and reuse their statements.
        for (var round = 0; round < 3; round++)
        {
            var found = await System.Threading.Tasks.Task.WhenAll(ins.Select(v => _fhir.SearchAsync($"Patient?identifier={Ins}|{v}&_tag={RunTag}|{run}")));
            for (var i = 0; i < ins.Length; i++)
            {
                Assert.Equal(1, found[i].Total);
                Assert.Equal([ids[i]], found[i].Matches());
            }
        }
        var none = await _fhir.SearchAsync($"Patient?identifier={Ins}|280021400004999&_tag={RunTag}|{run}");
        Assert.Equal(0, none.Total);
        Assert.Empty(none.Entry);
    }

    [Fact]
    public async Task A_repeated_search_sees_what_was_written_and_deleted_since()
    {
        var run = NewRun();
        var first = await _fhir.CreateAsync(Patient(run, "280021400004101", "Suite"));
        Assert.Equal([first.Id], (await _fhir.SearchAsync($"Patient?_tag={RunTag}|{run}")).Matches());

        var second = await _fhir.CreateAsync(Patient(run, "280021400004102", "Suite"));
        var both = await _fhir.SearchAsync($"Patient?_tag={RunTag}|{run}");
        Assert.Equal(2, both.Total);
        Assert.Equal(new[] { first.Id, second.Id }.Order(), both.Matches().Order());

        Assert.Equal(System.Net.HttpStatusCode.NoContent, (await _fhir.DeleteAsync($"Patient/{first.Id}")).StatusCode);
        var after = await _fhir.SearchAsync($"Patient?_tag={RunTag}|{run}");
        Assert.Equal(1, after.Total);
        Assert.Equal([second.Id], after.Matches());
    }

    [Fact]
    public async Task A_search_that_fails_on_a_bad_value_leaves_the_next_searches_working()
    {
        var run = NewRun();
        var patient = await _fhir.CreateAsync(Patient(run, "280021400004201", "Reprise", birthDate: "1975-06-01"));

        await _fhir.SearchFailsAsync($"Patient?birthdate=notadate&_tag={RunTag}|{run}", System.Net.HttpStatusCode.BadRequest);
        var found = await _fhir.SearchAsync($"Patient?birthdate=1975-06-01&_tag={RunTag}|{run}");
        Assert.Equal([patient.Id], found.Matches());
        var counted = await _fhir.SearchAsync($"Patient?birthdate=1975-06-01&_tag={RunTag}|{run}&_summary=count");
        Assert.Equal(1, counted.Total);
    }
}

public sealed class SqliteSearchStatementTests(SqliteGateway gateway) : SearchStatementTests(gateway), IClassFixture<SqliteGateway>
{
    /// <summary>
    /// The consent filter checks each candidate resource's patients and labels. SQLite has no statistics: given only an
    /// rkey index it chose the index with more leading equalities and walked every Patient compartment row, or every
    /// _security token, for each candidate. The plan must look these rows up by the resource's key.
    /// </summary>
    [Fact]
    public void Consent_checks_look_up_the_rows_of_each_candidate_resource_by_its_key()
    {
        var services = gateway.Services;
        var engine = services.GetRequiredService<SearchEngine>();
        var dialect = (SqliteDialect)services.GetRequiredService<StorageDialect>();
        var consent = new ConsentRestriction("130000001", "TREAT", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), "csapa-client")
        {
            SensitiveLabels = ["ETH", "PSY", "HIV"],
        };
        var q = new SqlQuery();
        q.Append("EXPLAIN QUERY PLAN SELECT r.rkey FROM resources r WHERE ");
        engine.AppendWhere(q, "r", "MedicationRequest", [new("patient", "Patient/p1")], new AccessFilter { Consent = consent }, strict: true);

        using var connection = new SqliteConnection($"Data Source={dialect.DatabasePath};Mode=ReadOnly");
        connection.Open();
        using var cmd = q.ToCommand(connection, null);
        using var reader = cmd.ExecuteReader();
        var plan = new List<string>();
        while (reader.Read()) plan.Add(reader.GetString(3));

        var compartments = plan.Where(p => p.Contains("resource_compartment", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(compartments);
        Assert.All(compartments, p => Assert.Contains("resource_compartment_member (rkey=? AND compartment_type=?)", p));
        var labels = plan.Where(p => p.Contains("search_token", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(labels);
        Assert.All(labels, p => Assert.Contains("search_token_resource (rkey=? AND param=? AND code=?)", p));
    }
}

public sealed class PostgresSearchStatementTests(PostgresGateway gateway) : SearchStatementTests(gateway), IClassFixture<PostgresGateway>;
