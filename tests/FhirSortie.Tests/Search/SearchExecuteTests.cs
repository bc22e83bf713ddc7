#nullable disable warnings
using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Search;

/// <summary>The HTTP-independent entry point (for batch/transaction GET entries) and the owner binding of page sets.</summary>
public abstract class SearchExecuteTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    [Fact]
    public async Task ExecuteAsync_runs_a_search_inside_a_write_transaction_and_sees_its_writes()
    {
        var run = NewRun();
        await _fhir.CreateAsync(Patient(run, "280021400003001", "Lot"));
        var store = gateway.Services.GetRequiredService<ResourceStore>();
        var query = new List<KeyValuePair<string, string>> { new("_tag", $"{RunTag}|{run}"), new("_count", "1") };

        var bundle = await store.WriteAsync(async session =>
        {
            var p = Patient(run, "280021400003002", "LotBis");
            p.Id = Guid.NewGuid().ToString();
            await session.SaveAsync(p, null, "PUT", CancellationToken.None);
            return await FhirSortie.Server.Rest.Search.ExecuteAsync(gateway.Services, new SearchRequest("http://fhirsortie.test/fhir", "Patient", query),
                session.Connection, session.Transaction, CancellationToken.None);
        }, CancellationToken.None);

        Assert.Equal(2, bundle.Total);
        Assert.Single(bundle.Entry);
        Assert.StartsWith("http://fhirsortie.test/fhir/Patient/", bundle.Entry[0].FullUrl);
        Assert.StartsWith("http://fhirsortie.test/fhir?_getpages=", bundle.Link.Single(l => l.Relation == "next").Url);
    }

    [Fact]
    public async Task A_page_set_can_only_be_read_by_its_owner()
    {
        var run = NewRun();
        for (var i = 0; i < 3; i++) await _fhir.CreateAsync(Patient(run, $"28002140000310{i}", "Proprio"));
        var query = new List<KeyValuePair<string, string>> { new("_tag", $"{RunTag}|{run}"), new("_count", "1") };
        var first = await FhirSortie.Server.Rest.Search.ExecuteAsync(gateway.Services,
            new SearchRequest("http://localhost/fhir", "Patient", query) { Owner = "client-a" }, null, null, CancellationToken.None);
        var next = new Uri(first.Link.Single(l => l.Relation == "next").Url);
        var pageQuery = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(next.Query)
            .Select(p => new KeyValuePair<string, string>(p.Key, p.Value.ToString())).ToList();

        var mine = await FhirSortie.Server.Rest.Search.ExecuteAsync(gateway.Services,
            new SearchRequest("http://localhost/fhir", null, pageQuery) { Owner = "client-a" }, null, null, CancellationToken.None);
        Assert.Single(mine.Entry);
        var stolen = await Assert.ThrowsAsync<FhirException>(() => FhirSortie.Server.Rest.Search.ExecuteAsync(gateway.Services,
            new SearchRequest("http://localhost/fhir", null, pageQuery) { Owner = "client-b" }, null, null, CancellationToken.None));
        Assert.Equal(HttpStatusCode.Gone, stolen.Status);
    }
}

public sealed class SqliteSearchExecuteTests(SqliteGateway gateway) : SearchExecuteTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresSearchExecuteTests(PostgresGateway gateway) : SearchExecuteTests(gateway), IClassFixture<PostgresGateway>;
