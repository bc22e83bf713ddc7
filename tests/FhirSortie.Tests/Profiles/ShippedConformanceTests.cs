using System.Net;
using System.Text;
using FhirSortie.Server.Profiles;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Profiles;

/// <summary>The profiles, ValueSets, CodeSystems, ConceptMaps and SearchParameters the gateway ships are served, read-only.</summary>
public abstract class ShippedConformanceTests(Gateway gateway)
{
    private static readonly string ProfilesFolder = Path.Combine(AppContext.BaseDirectory, "profiles");
    private static readonly string SearchParametersFolder = Path.Combine(AppContext.BaseDirectory, "conformance", "searchparameters");

    private static IEnumerable<(string Type, string Id, string Url)> ShippedFiles() =>
        new[] { ProfilesFolder, SearchParametersFolder }.SelectMany(folder => Directory.EnumerateFiles(folder, "*.json"))
            .Select(file => (Resource)FhirFormat.Parse(File.ReadAllBytes(file), WireFormat.Json))
            .Select(r => (r.TypeName, r.Id!, ((IVersionableConformanceResource)r).Url!));

    [Fact]
    public async Task Every_shipped_file_is_readable_and_found_by_its_url()
    {
        using var http = gateway.Fhir();
        var files = ShippedFiles().ToList();
        Assert.Contains(files, f => f.Type == "StructureDefinition");
        Assert.Contains(files, f => f.Type == "SearchParameter");
        foreach (var (type, id, url) in files)
        {
            using var read = await http.GetAsync($"{type}/{id}");
            Assert.True(read.StatusCode == HttpStatusCode.OK, $"{type}/{id}: {read.StatusCode}");
            Assert.Equal(url, ((IVersionableConformanceResource)await read.ReadAs<Resource>()).Url);
            using var search = await http.GetAsync($"{type}?url={Uri.EscapeDataString(url)}");
            var found = Assert.Single((await search.ReadAs<Bundle>()).Entry);
            Assert.Equal(id, found.Resource!.Id);
        }
    }

    [Fact]
    public async Task Every_profile_the_capability_statement_names_is_served()
    {
        using var http = gateway.Fhir();
        using var metadata = await http.GetAsync("metadata");
        var profiles = (await metadata.ReadAs<CapabilityStatement>()).Rest.Single().Resource.SelectMany(r => r.SupportedProfile).OfType<string>().Distinct().ToList();
        Assert.NotEmpty(profiles);
        foreach (var url in profiles)
        {
            using var search = await http.GetAsync($"StructureDefinition?url={Uri.EscapeDataString(url)}&_summary=true");
            Assert.True((await search.ReadAs<Bundle>()).Entry.Count == 1, url);
        }
    }

    [Fact]
    public async Task A_client_cannot_change_delete_or_impersonate_a_shipped_resource()
    {
        using var http = gateway.Fhir();
        using var before = await http.GetAsync("StructureDefinition/fr-core-patient");
        var profile = await before.ReadAs<StructureDefinition>();
        var version = profile.Meta!.VersionId;
        profile.Title = "Changed by a client";

        using var put = await http.PutAsync("StructureDefinition/fr-core-patient", FhirHttp.Json(profile));
        using var delete = await http.DeleteAsync("ValueSet/exit-kinds");
        using var patch = await http.PatchAsync("CodeSystem/exit-kind", new StringContent("[{\"op\":\"replace\",\"path\":\"/title\",\"value\":\"x\"}]", Encoding.UTF8, "application/json-patch+json"));
        var copy = new ValueSet { Url = ShippedFiles().First(f => f.Type == "ValueSet").Url, Status = PublicationStatus.Active };
        using var impersonation = await http.PostAsync("ValueSet", FhirHttp.Json(copy));
        var transaction = new Bundle
        {
            Type = Bundle.BundleType.Transaction,
            Entry =
            [
                new Bundle.EntryComponent { FullUrl = "urn:uuid:" + Guid.NewGuid(), Resource = new Organization { Name = "Never stored" }, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Organization" } },
                new Bundle.EntryComponent { FullUrl = "http://localhost/fhir/StructureDefinition/fr-core-patient", Resource = profile, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PUT, Url = "StructureDefinition/fr-core-patient" } },
            ],
        };
        using var inTransaction = await http.PostAsync("", FhirHttp.Json(transaction));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, put.StatusCode);
        Assert.Contains("read-only", Assert.Single((await put.ReadAs<OperationOutcome>()).Issue).Diagnostics, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, delete.StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, patch.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, impersonation.StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, inTransaction.StatusCode);
        using var after = await http.GetAsync("StructureDefinition/fr-core-patient");
        Assert.Equal(version, (await after.ReadAs<StructureDefinition>()).Meta!.VersionId);
        using var kinds = await http.GetAsync("ValueSet/exit-kinds");
        Assert.Equal(HttpStatusCode.OK, kinds.StatusCode);
        using var organisations = await http.GetAsync("Organization?name:exact=Never%20stored");
        Assert.Empty((await organisations.ReadAs<Bundle>()).Entry);
    }

    [Fact]
    public async Task Publishing_again_writes_nothing_and_a_changed_release_writes_one_version()
    {
        var store = gateway.Services.GetRequiredService<ResourceStore>();
        var dialect = gateway.Services.GetRequiredService<StorageDialect>();
        // What the start published is there: publishing the same files again writes nothing.
        Assert.Equal(0, await gateway.Services.GetRequiredService<ShippedConformance>().PublishAsync(store, dialect, CancellationToken.None));

        var id = "release-test-" + Guid.NewGuid().ToString("N")[..12];
        var first = Release(id, "First title");
        // Two nodes starting together: one publishes, the other finds it published.
        var together = await Task.WhenAll(first.PublishAsync(store, dialect, CancellationToken.None), first.PublishAsync(store, dialect, CancellationToken.None));
        Assert.Equal(1, together.Sum());
        Assert.Equal(0, await first.PublishAsync(store, dialect, CancellationToken.None));
        Assert.Equal(1, await Release(id, "Second title").PublishAsync(store, dialect, CancellationToken.None));

        using var http = gateway.Fhir();
        using var read = await http.GetAsync($"ValueSet/{id}");
        var current = await read.ReadAs<ValueSet>();
        Assert.Equal(("2", "Second title"), (current.Meta!.VersionId, current.Title));
    }

    private static ShippedConformance Release(string id, string title)
    {
        var folder = Directory.CreateTempSubdirectory("shipped-").FullName;
        var valueSet = new ValueSet
        {
            Id = id, Url = "https://fhirsortie.fr/fhir/ValueSet/" + id, Title = title, Status = PublicationStatus.Active,
            Compose = new ValueSet.ComposeComponent { Include = [new ValueSet.ConceptSetComponent { System = "http://loinc.org", Concept = [new ValueSet.ConceptReferenceComponent { Code = "34133-9" }] }] },
        };
        File.WriteAllBytes(Path.Combine(folder, $"ValueSet-{id}.json"), FhirFormat.Serialize(valueSet, WireFormat.Json, pretty: true));
        return ShippedConformance.Load(folder, Path.Combine(folder, "none"));
    }
}

public sealed class SqliteShippedConformanceTests(SqliteGateway gateway) : ShippedConformanceTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresShippedConformanceTests(PostgresGateway gateway) : ShippedConformanceTests(gateway), IClassFixture<PostgresGateway>;
