using System.Net;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;

namespace FhirSortie.IntegrationTests;

/// <summary>One gateway process per test class, on its own storage.</summary>
public abstract class ServerFixture(string dialect) : IAsyncLifetime
{
    private Storage? _storage;
    private ServerProcess? _server;

    public ServerProcess Server => _server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        _storage = Storage.Create(dialect);
        _server = await ServerProcess.StartAsync(_storage);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
        _storage?.Dispose();
    }
}

public sealed class SqliteServer() : ServerFixture("Sqlite");

public sealed class PostgresServer() : ServerFixture("Postgres");

/// <summary>The gateway as the Firely SDK's FhirClient sees it, over real HTTP against the real process.</summary>
public abstract class FhirClientTests(ServerFixture fixture)
{
    private const string InsSystem = "urn:oid:1.2.250.1.213.1.4.8";

    private FhirClient Client(ResourceFormat format = ResourceFormat.Json) =>
        new(fixture.Server.BaseUrl, new FhirClientSettings { PreferredFormat = format, VerifyFhirVersion = true, Timeout = 30_000 }, fixture.Server.Authenticated());

    private static Patient NewPatient(string ins) => new()
    {
        Identifier = [new Identifier(InsSystem, ins)],
        Name = [new HumanName { Family = "Lefèvre", Given = ["Joël"] }],
        BirthDate = "1979-06-30",
    };

    private static string NewIns() => "1" + Random.Shared.NextInt64(10_000_000_000_000, 99_999_999_999_999).ToString(System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task HEAD_answers_the_headers_of_the_GET_without_its_body_over_Kestrel()
    {
        var created = await Client().CreateAsync(NewPatient(NewIns()));
        using var http = new HttpClient(fixture.Server.Authenticated()) { BaseAddress = new Uri(fixture.Server.BaseUrl.AbsoluteUri.TrimEnd('/') + "/") };
        using var get = await http.GetAsync($"Patient/{created!.Id}");
        var body = await get.Content.ReadAsByteArrayAsync();

        using var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"Patient/{created.Id}"));

        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(get.Headers.ETag, head.Headers.ETag);
        Assert.Equal(get.Content.Headers.LastModified, head.Content.Headers.LastModified);
        Assert.Equal(get.Content.Headers.ContentType, head.Content.Headers.ContentType);
        Assert.Equal(body.Length, head.Content.Headers.ContentLength);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        using var vread = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"Patient/{created.Id}/_history/1"));
        Assert.Equal(HttpStatusCode.OK, vread.StatusCode);
        using var missing = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"Patient/{Guid.NewGuid()}"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Empty(await missing.Content.ReadAsByteArrayAsync());
        using var metadata = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "metadata"));
        Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);
    }

    [Fact]
    public async Task Create_read_versioned_update_and_delete_through_FhirClient()
    {
        var client = Client();
        var created = await client.CreateAsync(NewPatient(NewIns()));
        Assert.NotNull(created);
        Assert.Equal("1", created.Meta!.VersionId);
        Assert.StartsWith("201", client.LastResult!.Status, StringComparison.Ordinal);
        Assert.Equal("W/\"1\"", client.LastResult.Etag);

        var read = await client.ReadAsync<Patient>($"Patient/{created.Id}");
        Assert.NotNull(read);
        Assert.Equal("Lefèvre", read.Name[0].Family);

        read.Gender = AdministrativeGender.Male;
        var updated = await client.UpdateAsync(read, versionAware: true);
        Assert.NotNull(updated);
        Assert.Equal("2", updated.Meta!.VersionId);
        Assert.Equal(AdministrativeGender.Male, updated.Gender);

        // The same client holding version 1 is refused: version-aware update sends If-Match: W/"1".
        var stale = (Patient)created.DeepCopy();
        stale.BirthDate = "1979-07-01";
        var conflict = await Assert.ThrowsAsync<FhirOperationException>(() => client.UpdateAsync(stale, versionAware: true));
        Assert.Equal(HttpStatusCode.PreconditionFailed, conflict.Status);

        await client.DeleteAsync($"Patient/{created.Id}");
        var gone = await Assert.ThrowsAsync<FhirOperationException>(() => client.ReadAsync<Patient>($"Patient/{created.Id}"));
        Assert.Equal(HttpStatusCode.Gone, gone.Status);

        var v2 = await client.ReadAsync<Patient>($"Patient/{created.Id}/_history/2");
        Assert.Equal(AdministrativeGender.Male, v2!.Gender);
    }

    [Fact]
    public async Task Search_by_identifier_finds_the_created_patient_only()
    {
        var client = Client();
        var ins = NewIns();
        var created = await client.CreateAsync(NewPatient(ins));
        await client.CreateAsync(NewPatient(NewIns()));

        var bundle = await client.SearchAsync<Patient>([$"identifier={InsSystem}|{ins}"]);
        Assert.NotNull(bundle);
        Assert.Equal(Bundle.BundleType.Searchset, bundle.Type);
        var match = Assert.Single(bundle.Entry);
        Assert.Equal(created!.Id, match.Resource!.Id);
        Assert.Equal(1, bundle.Total);
    }

    [Fact]
    public async Task Xml_client_creates_and_reads()
    {
        var client = Client(ResourceFormat.Xml);
        var created = await client.CreateAsync(NewPatient(NewIns()));
        Assert.StartsWith("<Patient", client.LastBodyAsText?.TrimStart() ?? "", StringComparison.Ordinal);
        var read = await client.ReadAsync<Patient>($"Patient/{created!.Id}");
        Assert.Equal("Joël", read!.Name[0].Given.Single());
        Assert.Equal("1979-06-30", read.BirthDate);
    }

    [Fact]
    public async Task CapabilityStatement_describes_this_server()
    {
        var client = Client();
        var statement = await client.CapabilityStatementAsync();
        Assert.NotNull(statement);
        Assert.Equal(FHIRVersion.N4_0_1, statement.FhirVersion);
        Assert.Equal(CapabilityStatementKind.Instance, statement.Kind);
        Assert.Equal(fixture.Server.BaseUrl.ToString().TrimEnd('/'), statement.Implementation!.Url);
        var rest = Assert.Single(statement.Rest);
        var patient = Assert.Single(rest.Resource, r => r.Type == "Patient");
        var codes = patient.Interaction.Select(i => i.Code).ToHashSet();
        Assert.Superset(new HashSet<CapabilityStatement.TypeRestfulInteraction?>
        {
            CapabilityStatement.TypeRestfulInteraction.Read, CapabilityStatement.TypeRestfulInteraction.Vread,
            CapabilityStatement.TypeRestfulInteraction.Create, CapabilityStatement.TypeRestfulInteraction.Update,
            CapabilityStatement.TypeRestfulInteraction.Delete, CapabilityStatement.TypeRestfulInteraction.SearchType,
        }, codes);
        Assert.Contains(patient.SearchParam, p => p.Name == "identifier" && p.Type == SearchParamType.Token);
    }

    [Fact]
    public async Task History_answers_as_the_CapabilityStatement_says()
    {
        var client = Client();
        var created = await client.CreateAsync(NewPatient(NewIns()));
        created!.Gender = AdministrativeGender.Female;
        await client.UpdateAsync(created);

        var statement = await client.CapabilityStatementAsync();
        var patient = statement!.Rest[0].Resource.Single(r => r.Type == "Patient");
        var declared = patient.Interaction.Any(i => i.Code == CapabilityStatement.TypeRestfulInteraction.HistoryInstance);
        if (declared)
        {
            var history = await client.HistoryAsync($"Patient/{created.Id}");
            Assert.Equal(Bundle.BundleType.History, history!.Type);
            Assert.Equal(["2", "1"], history.Entry.Select(e => e.Resource!.Meta!.VersionId));
        }
        else
        {
            // Not implemented yet: the server must not pretend, a client gets a 4xx.
            var error = await Assert.ThrowsAsync<FhirOperationException>(() => client.HistoryAsync($"Patient/{created.Id}"));
            Assert.InRange((int)error.Status, 400, 499);
        }
    }
}

/// <summary>Behind a load balancer the configured public base URL is what clients see, not the socket's address.</summary>
public sealed class PublicBaseUrlTests
{
    [Fact]
    public async Task Configured_public_base_url_is_used_in_links_and_the_CapabilityStatement()
    {
        const string PublicBase = "https://fhirsortie.example.fr/fhir";
        using var storage = Storage.Create("Sqlite");
        await using var server = await ServerProcess.StartAsync(storage, new Dictionary<string, string> { ["FhirSortie__PublicBaseUrl"] = PublicBase });
        var client = new FhirClient(server.BaseUrl, new FhirClientSettings { PreferredFormat = ResourceFormat.Json }, server.Authenticated());

        var statement = await client.CapabilityStatementAsync();
        Assert.Equal(PublicBase, statement!.Implementation!.Url);

        var created = await client.CreateAsync(new Patient { Active = true });
        Assert.Equal($"{PublicBase}/Patient/{created!.Id}/_history/1", client.LastResult!.Location);
        var bundle = await client.SearchAsync<Patient>([$"_id={created.Id}"]);
        Assert.Equal($"{PublicBase}/Patient/{created.Id}", Assert.Single(bundle!.Entry).FullUrl);
    }
}

public sealed class SqliteFhirClientTests(SqliteServer fixture) : FhirClientTests(fixture), IClassFixture<SqliteServer>;

public sealed class PostgresFhirClientTests(PostgresServer fixture) : FhirClientTests(fixture), IClassFixture<PostgresServer>;
