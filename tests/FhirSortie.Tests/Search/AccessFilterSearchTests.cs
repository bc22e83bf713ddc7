#nullable disable warnings
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Search;

/// <summary>The per-request access filter hides resources from matches, totals, every page and includes.</summary>
public abstract class AccessFilterSearchTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();
    // V, not R: the gateway labels the buprenorphine requests R itself (sensitivity ETH).
    private static readonly (string, string) DenyRestricted = ("X-Test-Deny-Label", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V");

    private static Patient Restricted(Patient p)
    {
        p.Meta.Security = [new Coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "V")];
        return p;
    }

    [Fact]
    public async Task Denied_labels_are_hidden_from_totals_and_every_page()
    {
        var run = NewRun();
        var visible = new List<string>();
        for (var i = 0; i < 3; i++) visible.Add((await _fhir.CreateAsync(Patient(run, $"28002140000200{i}", $"Visible{i}"))).Id);
        for (var i = 0; i < 2; i++) await _fhir.CreateAsync(Restricted(Patient(run, $"28002140000201{i}", $"Cache{i}")));

        Assert.Equal(5, (await _fhir.SearchAsync($"Patient?_tag={RunTag}|{run}")).Total);
        var first = await _fhir.SearchAsync($"Patient?_tag={RunTag}|{run}&_count=2&_sort=family", DenyRestricted);
        Assert.Equal(3, first.Total);
        var seen = new List<string>(first.Matches());
        var next = first.Link("next");
        while (next is not null)
        {
            var page = await _fhir.SearchAsync(next, DenyRestricted);
            seen.AddRange(page.Matches());
            next = page.Link("next");
        }
        Assert.Equal(visible, seen);
        Assert.Equal(0, (await _fhir.SearchAsync($"Patient?_tag={RunTag}|{run}&family=cache&_count=0", DenyRestricted)).Total);
    }

    [Fact]
    public async Task Patient_restriction_limits_matches_and_compartments()
    {
        var run = NewRun();
        var mine = await _fhir.CreateAsync(Patient(run, "280021400002101", "Mien"));
        var other = await _fhir.CreateAsync(Patient(run, "280021400002102", "Autre"));
        var myRequest = await _fhir.CreateAsync(Buprenorphine(run, mine.Id));
        await _fhir.CreateAsync(Buprenorphine(run, other.Id));
        var only = ("X-Test-Patients", mine.Id);

        var bundle = await _fhir.SearchAsync($"MedicationRequest?_tag={RunTag}|{run}", only);
        Assert.Equal(1, bundle.Total);
        Assert.Equal([myRequest.Id], bundle.Matches());
        Assert.Equal(0, (await _fhir.SearchAsync($"Patient/{other.Id}/MedicationRequest", only)).Total);
        Assert.Equal(0, (await _fhir.SearchAsync($"?_tag={RunTag}|{run}&_type=Organization", only)).Total);
    }

    [Fact]
    public async Task Included_resources_go_through_the_filter_too()
    {
        var run = NewRun();
        var hidden = await _fhir.CreateAsync(Restricted(Patient(run, "280021400002201", "Protege")));
        var request = await _fhir.CreateAsync(Buprenorphine(run, hidden.Id));

        var unfiltered = await _fhir.SearchAsync($"MedicationRequest?_id={request.Id}&_include=MedicationRequest:patient");
        Assert.Equal([$"Patient/{hidden.Id}"], unfiltered.Included());
        var filtered = await _fhir.SearchAsync($"MedicationRequest?_id={request.Id}&_include=MedicationRequest:patient", DenyRestricted);
        Assert.Equal([request.Id], filtered.Matches());
        Assert.Empty(filtered.Included());

        var visible = await _fhir.CreateAsync(Patient(run, "280021400002202", "Visible"));
        await _fhir.CreateAsync(Buprenorphine(run, visible.Id));
        var typesOnly = await _fhir.SearchAsync($"Patient?_id={visible.Id}&_revinclude=MedicationRequest:patient", ("X-Test-Types", "Patient"));
        Assert.Equal([visible.Id], typesOnly.Matches());
        Assert.Empty(typesOnly.Included());
    }
}

public sealed class SqliteAccessFilterSearchTests(FilteredSqliteGateway gateway) : AccessFilterSearchTests(gateway), IClassFixture<FilteredSqliteGateway>;

public sealed class PostgresAccessFilterSearchTests(FilteredPostgresGateway gateway) : AccessFilterSearchTests(gateway), IClassFixture<FilteredPostgresGateway>;
