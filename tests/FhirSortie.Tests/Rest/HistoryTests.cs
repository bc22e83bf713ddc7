using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Rest;

/// <summary>history: instance, type and system, newest first, with stable keyset paging. Both dialects.</summary>
public abstract class HistoryTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private async Task<T> CreateAsync<T>(T resource) where T : Resource
    {
        var response = await _fhir.PostAsync(resource.TypeName, FhirHttp.Json(resource));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return await response.ReadAs<T>();
    }

    private async Task<Bundle> HistoryAsync(string url)
    {
        var response = await _fhir.GetAsync(url);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var bundle = await response.ReadAs<Bundle>();
        Assert.Equal(Bundle.BundleType.History, bundle.Type);
        return bundle;
    }

    [Fact]
    public async Task Instance_history_lists_versions_newest_first_with_the_deletion_without_resource()
    {
        var patient = await CreateAsync(new Patient { Active = true });
        patient.Active = false;
        Assert.Equal(HttpStatusCode.OK, (await _fhir.PutAsync($"Patient/{patient.Id}", FhirHttp.Json(patient))).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await _fhir.DeleteAsync($"Patient/{patient.Id}")).StatusCode);

        var history = await HistoryAsync($"Patient/{patient.Id}/_history");

        Assert.Equal([Bundle.HTTPVerb.DELETE, Bundle.HTTPVerb.PUT, Bundle.HTTPVerb.POST], history.Entry.Select(e => e.Request!.Method!.Value));
        Assert.Equal(["W/\"3\"", "W/\"2\"", "W/\"1\""], history.Entry.Select(e => e.Response!.Etag));
        Assert.Null(history.Entry[0].Resource);
        Assert.False(Assert.IsType<Patient>(history.Entry[1].Resource).Active);
        Assert.True(Assert.IsType<Patient>(history.Entry[2].Resource).Active);
        Assert.Equal("Patient", history.Entry[2].Request!.Url);
        Assert.Equal($"Patient/{patient.Id}", history.Entry[0].Request!.Url);
        Assert.All(history.Entry, e => Assert.NotNull(e.Response!.LastModified));
        Assert.Equal("201 Created", history.Entry[2].Response!.Status);
    }

    [Fact]
    public async Task Type_history_pages_are_stable_while_new_versions_arrive()
    {
        var type = "Device"; // a type no other test of this class writes
        var created = new List<string>();
        for (var i = 0; i < 5; i++) created.Add((await CreateAsync(new Device { Status = Device.FHIRDeviceStatus.Active })).Id!);

        var first = await HistoryAsync($"{type}/_history?_count=2");
        Assert.Equal(2, first.Entry.Count);
        Assert.Equal(created[4], first.Entry[0].Resource!.Id); // newest first
        await CreateAsync(new Device { Status = Device.FHIRDeviceStatus.Inactive }); // must not shift the next pages

        var seen = first.Entry.Select(e => e.Resource!.Id).ToList();
        var next = first.NextLink;
        while (next is not null)
        {
            var page = await HistoryAsync(next.ToString());
            seen.AddRange(page.Entry.Select(e => e.Resource!.Id));
            next = page.NextLink;
        }
        Assert.Equal(Enumerable.Reverse(created), seen);
    }

    [Fact]
    public async Task Since_keeps_later_versions_and_system_history_spans_types()
    {
        var before = await CreateAsync(new Organization { Name = "Avant" });
        await Task.Delay(20);
        var since = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);
        await Task.Delay(20);
        var after = await CreateAsync(new Organization { Name = "Après" });
        var practitioner = await CreateAsync(new Practitioner { Active = true });

        var typeHistory = await HistoryAsync($"Organization/_history?_since={Uri.EscapeDataString(since)}");
        Assert.Contains(typeHistory.Entry, e => e.Resource!.Id == after.Id);
        Assert.DoesNotContain(typeHistory.Entry, e => e.Resource!.Id == before.Id);

        var system = await HistoryAsync($"_history?_since={Uri.EscapeDataString(since)}&_count=50");
        Assert.Contains(system.Entry, e => e.Resource is Organization o && o.Id == after.Id);
        Assert.Contains(system.Entry, e => e.Resource is Practitioner p && p.Id == practitioner.Id);
    }

    [Fact]
    public async Task At_returns_the_version_current_at_that_instant()
    {
        var location = await CreateAsync(new Location { Name = "Quartier A" });
        await Task.Delay(20);
        var at = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);
        await Task.Delay(20);
        location.Name = "Quartier B";
        Assert.Equal(HttpStatusCode.OK, (await _fhir.PutAsync($"Location/{location.Id}", FhirHttp.Json(location))).StatusCode);

        var history = await HistoryAsync($"Location/{location.Id}/_history?_at={Uri.EscapeDataString(at)}");
        Assert.Equal("Quartier A", Assert.IsType<Location>(Assert.Single(history.Entry).Resource).Name);
    }

    [Fact]
    public async Task Previous_links_walk_back_to_the_first_page_and_then_to_versions_written_since()
    {
        var type = "Substance"; // a type no other test of this class writes
        var created = new List<string>();
        for (var i = 0; i < 5; i++) created.Add((await CreateAsync(new Substance { Code = new CodeableConcept("http://example.org", $"s{i}") })).Id!);

        var first = await HistoryAsync($"{type}/_history?_count=2");
        Assert.Null(first.PreviousLink); // the first page has nothing newer to go back to
        var second = await HistoryAsync(first.NextLink!.ToString());
        var third = await HistoryAsync(second.NextLink!.ToString());
        Assert.Null(third.NextLink);
        Assert.Equal([created[0]], third.Entry.Select(e => e.Resource!.Id));

        // Back from the last page: the same pages as on the way forward, newest first within each.
        var back2 = await HistoryAsync(third.PreviousLink!.ToString());
        Assert.Equal(second.Entry.Select(e => e.Resource!.Id), back2.Entry.Select(e => e.Resource!.Id));
        Assert.Equal([created[2], created[1]], back2.Entry.Select(e => e.Resource!.Id));
        Assert.Equal(third.Entry.Select(e => e.Resource!.Id), (await HistoryAsync(back2.NextLink!.ToString())).Entry.Select(e => e.Resource!.Id));
        var back1 = await HistoryAsync(back2.PreviousLink!.ToString());
        Assert.Equal([created[4], created[3]], back1.Entry.Select(e => e.Resource!.Id));
        Assert.Null(back1.PreviousLink); // nothing newer yet

        // A version written meanwhile: the same page asked again now has a previous link, which leads to it.
        var later = await CreateAsync(new Substance { Code = new CodeableConcept("http://example.org", "later") });
        var again = await HistoryAsync(back1.SelfLink!.ToString());
        Assert.Equal([created[4], created[3]], again.Entry.Select(e => e.Resource!.Id));
        var newest = await HistoryAsync(again.PreviousLink!.ToString());
        Assert.Equal([later.Id], newest.Entry.Select(e => e.Resource!.Id));
        Assert.Null(newest.PreviousLink);
    }

    [Fact]
    public async Task A_previous_page_keeps_the_filters_and_counts_only_what_the_next_link_skipped()
    {
        var location = await CreateAsync(new Location { Name = "v1" });
        for (var i = 2; i <= 4; i++)
        {
            location.Name = $"v{i}";
            Assert.Equal(HttpStatusCode.OK, (await _fhir.PutAsync($"Location/{location.Id}", FhirHttp.Json(location))).StatusCode);
        }
        var first = await HistoryAsync($"Location/{location.Id}/_history?_count=3");
        Assert.Equal(["v4", "v3", "v2"], first.Entry.Select(e => ((Location)e.Resource!).Name));
        var last = await HistoryAsync(first.NextLink!.ToString());
        Assert.Equal(["v1"], last.Entry.Select(e => ((Location)e.Resource!).Name));
        Assert.Contains("_count=3", last.PreviousLink!.ToString());
        var back = await HistoryAsync(last.PreviousLink!.ToString());
        Assert.Equal(["v4", "v3", "v2"], back.Entry.Select(e => ((Location)e.Resource!).Name));
        Assert.Null(back.PreviousLink);
        Assert.Equal(last.Entry.Select(e => e.Response!.Etag), (await HistoryAsync(back.NextLink!.ToString())).Entry.Select(e => e.Response!.Etag));
    }

    [Fact]
    public async Task A_cursor_beyond_the_int_range_is_a_page_cursor()
    {
        // Version numbers of the seq column outgrow an int; such a cursor was refused as "not a non-negative integer".
        var history = await HistoryAsync("Device/_history?_cursor=3000000000&_count=1");
        Assert.Equal(Bundle.BundleType.History, history.Type);
    }

    [Theory]
    [InlineData("Patient/no-such-id/_history", HttpStatusCode.NotFound)]
    [InlineData("Patient/_history?_count=abc", HttpStatusCode.BadRequest)]
    [InlineData("Patient/_history?_since=yesterday", HttpStatusCode.BadRequest)]
    [InlineData("_history?name=x", HttpStatusCode.BadRequest)]
    [InlineData("Patient/_history?_summary=true", HttpStatusCode.BadRequest)]
    [InlineData("Nope/_history", HttpStatusCode.NotFound)]
    [InlineData("Patient/_history?_cursor=x", HttpStatusCode.BadRequest)]
    [InlineData("Patient/_history?_before=-1", HttpStatusCode.BadRequest)]
    [InlineData("Patient/_history?_cursor=5&_before=2", HttpStatusCode.BadRequest)]
    public async Task Bad_history_requests_are_4xx_with_an_outcome(string url, HttpStatusCode status)
    {
        var response = await _fhir.GetAsync(url);
        Assert.Equal(status, response.StatusCode);
        Assert.NotEmpty((await response.ReadAs<OperationOutcome>()).Issue);
    }
}

public sealed class SqliteHistoryTests(SqliteGateway gateway) : HistoryTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresHistoryTests(PostgresGateway gateway) : HistoryTests(gateway), IClassFixture<PostgresGateway>;
