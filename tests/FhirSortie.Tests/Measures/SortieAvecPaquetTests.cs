using System.Net;
using FhirSortie.Server.Measures;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Measures.Prison;

namespace FhirSortie.Tests.Measures;

/// <summary>
/// Measure 1 (sortie-avec-paquet) on crafted releases: the exact counts its SQL gives (edge cases: the day compared in
/// Paris time, a release date moved earlier than the package, a package posted again, a stay still in progress, another
/// prison), and the report over HTTP with its small counts masked so that no one can be found by subtraction.
/// </summary>
public abstract class SortieAvecPaquetTests<TGateway>(MeasureGateway<TGateway> fixture) where TGateway : Gateway, new()
{
    private readonly Gateway _gateway = fixture.Gateway;
    private readonly MovableClock _clock = fixture.Clock;

    private static readonly DateOnly Jan2031 = new(2031, 1, 1);
    private static readonly DateOnly Apr2031 = new(2031, 4, 30);

    [Fact]
    public async Task Counts_releases_with_a_package_posted_by_the_release_day_in_Paris_time_and_the_median_delay_of_the_others()
    {
        var a = await CreateAsync(_gateway, _clock, "USMP A (mesure 1)");
        var b = await CreateAsync(_gateway, _clock, "USMP B (mesure 1)");
        for (var i = 0; i < 3; i++) await a.ReleaseAsync(Paris(2031, 3, 5), Paris(2031, 3, 3)); // two days before: on time
        await a.ReleaseAsync(Paris(2031, 3, 6, 9), Paris(2031, 3, 6, 18)); // later the same day: on time
        await a.ReleaseAsync(Paris(2031, 3, 7, 22), Paris(2031, 3, 8, 0, 30)); // 00:30 Paris the next day (still the 7th in UTC): 1 day late
        await a.ReleaseAsync(Paris(2031, 3, 10), null); // no package at all
        // Planned for the 20th, the release moved to the 10th; the package came on the 15th: 5 days late.
        await a.ReleaseAsync(Paris(2031, 3, 10), Paris(2031, 3, 15), planned: Paris(2031, 3, 20));
        // Posted the day before, posted again (a new version, and a second letter) after the release: still on time.
        var reposted = await a.ReleaseAsync(Paris(2031, 3, 12), Paris(2031, 3, 11));
        _clock.Now = Paris(2031, 3, 20);
        await a.PostLetterAsync(reposted.PatientId, reposted.Stay.Id!, "Lettre de liaison (rectifiée)");
        await a.ReleaseAsync(Paris(2031, 4, 1, 0, 30), Paris(2031, 3, 31)); // 00:30 on 1 April Paris time (31 March in UTC): April
        await a.ReleaseAsync(Paris(2031, 2, 14), Paris(2031, 2, 10), kind: "transfert");
        await a.PlannedAsync(Paris(2031, 3, 25)); // still in progress: not a release
        await a.ReleaseAsync(Paris(2031, 5, 2), Paris(2031, 5, 1)); // after the period
        await b.ReleaseAsync(Paris(2031, 3, 5), Paris(2031, 3, 1));

        var counts = await fixture.CountsAsync(MeasureCatalog.SortieAvecPaquet, Jan2031, Apr2031, a.Finess);
        Assert.Equal(10, counts.Count("releases", Stratum.Total));
        Assert.Equal(7, counts.Count("on-time", Stratum.Total));
        Assert.Equal(2, counts.Count("late", Stratum.Total));
        Assert.Equal(1, counts.Median("late", Stratum.Total)); // lower median of 1 and 5 days
        Assert.Equal(["2031-01", "2031-02", "2031-03", "2031-04"], counts.Values[CountTable.Month]);
        Assert.Equal(0, counts.Count("releases", new Stratum(CountTable.Month, "2031-01")));
        Assert.Equal(1, counts.Count("releases", new Stratum(CountTable.Month, "2031-02")));
        Assert.Equal(8, counts.Count("releases", new Stratum(CountTable.Month, "2031-03")));
        Assert.Equal(5, counts.Count("on-time", new Stratum(CountTable.Month, "2031-03")));
        Assert.Equal(1, counts.Count("releases", new Stratum(CountTable.Month, "2031-04")));
        Assert.Equal(1, counts.Count("on-time", new Stratum(CountTable.Month, "2031-04")));
        Assert.Equal(1, counts.Count("releases", new Stratum(CountTable.ExitKind, "transfert")));
        Assert.Equal(9, counts.Count("releases", new Stratum(CountTable.ExitKind, "fin-de-peine")));
        Assert.Equal([a.Finess], counts.Values[CountTable.Usmp]);

        var all = await fixture.CountsAsync(MeasureCatalog.SortieAvecPaquet, Jan2031, Apr2031);
        Assert.Equal(11, all.Count("releases", Stratum.Total));
        Assert.Equal(8, all.Count("on-time", Stratum.Total));
        Assert.Equal(1, all.Count("releases", new Stratum(CountTable.Usmp, b.Finess)));
    }

    [Fact]
    public async Task A_lone_release_in_a_month_is_masked_and_so_is_its_complement_so_the_total_does_not_give_it_away()
    {
        var c = await CreateAsync(_gateway, _clock, "USMP C (mesure 1)");
        for (var i = 0; i < 15; i++) await c.ReleaseAsync(Paris(2032, 3, 1 + i), Paris(2032, 2, 20));
        await c.ReleaseAsync(Paris(2032, 4, 3), Paris(2032, 4, 1)); // the one person released in April

        var report = await EvaluateAsync(c.Usmp, "sortie-avec-paquet", "2032-03-01", "2032-04-30");
        Assert.Equal(MeasureReport.MeasureReportType.Summary, report.Type);
        Assert.Equal("https://fhirsortie.fr/fhir/Measure/sortie-avec-paquet|1.0.0", report.Measure);
        Assert.Equal(c.Finess, report.Subject!.Identifier!.Value);
        var group = report.Group.Single(g => ReportChecks.CodeOf(g.Code) == "paquet-avant-sortie");
        Assert.Equal(16, ReportChecks.Count(group, "denominator"));
        Assert.Equal(16, ReportChecks.Count(group, "numerator"));
        Assert.Equal(1m, group.MeasureScore!.Value);
        // A naive report would say March 15, so April = 16 - 15 = 1: both months are masked.
        Assert.Null(ReportChecks.Count(ReportChecks.Stratum(group, "mois", "2032-04"), "denominator"));
        Assert.Null(ReportChecks.Count(ReportChecks.Stratum(group, "mois", "2032-03"), "denominator"));
        Assert.Null(ReportChecks.Stratum(group, "mois", "2032-04").MeasureScore!.Value);
        Assert.Equal(16, ReportChecks.Count(ReportChecks.Stratum(group, "usmp", c.Finess), "denominator"));
        Assert.Equal(c.Name, ReportChecks.Stratum(group, "usmp", c.Finess).Value!.Text);
        var json = await (await EvaluateRawAsync(c.Usmp, "sortie-avec-paquet", "2032-03-01", "2032-04-30")).Content.ReadAsStringAsync();
        Assert.True(ReportChecks.Disclosures(report).Count == 0, string.Join("\n", ReportChecks.Disclosures(report)) + json[json.IndexOf("paquet-apres-sortie", StringComparison.Ordinal)..][..1500]);

        json = await (await EvaluateRawAsync(c.Usmp, "sortie-avec-paquet", "2032-03-01", "2032-04-30")).Content.ReadAsStringAsync();
        Assert.Contains("\"_count\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/data-absent-reason\",\"valueCode\":\"masked\"}]}", json, StringComparison.Ordinal);
        Assert.DoesNotContain("Patient/", json, StringComparison.Ordinal);
        Assert.DoesNotContain("Encounter/", json, StringComparison.Ordinal);
        Assert.DoesNotContain(c.OrganizationId, json, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_releases_without_a_package_are_not_revealed_by_the_difference_between_denominator_and_numerator()
    {
        var d = await CreateAsync(_gateway, _clock, "USMP D (mesure 1)");
        for (var i = 0; i < 12; i++) await d.ReleaseAsync(Paris(2033, 3, 1 + i), Paris(2033, 2, 25));
        await d.ReleaseAsync(Paris(2033, 3, 20), null);
        await d.ReleaseAsync(Paris(2033, 3, 21), null);

        var report = await EvaluateAsync(d.Usmp, "sortie-avec-paquet", "2033-03-01", "2033-03-31");
        var group = report.Group.Single(g => ReportChecks.CodeOf(g.Code) == "paquet-avant-sortie");
        Assert.Equal(14, ReportChecks.Count(group, "denominator"));
        Assert.Null(ReportChecks.Count(group, "numerator")); // 12 of 14: 14 - 12 = 2 people without a package
        Assert.Null(group.MeasureScore!.Value);
        Assert.Contains(group.MeasureScore!.Extension, e => e.Url == "http://hl7.org/fhir/StructureDefinition/data-absent-reason");
        Assert.Empty(ReportChecks.Disclosures(report));
    }

    internal static async Task<HttpResponseMessage> EvaluateRawAsync(HttpClient client, string measure, string start, string end, string? subject = null) =>
        await client.GetAsync($"Measure/{measure}/$evaluate-measure?periodStart={start}&periodEnd={end}&reportType=summary" + (subject is null ? "" : "&subject=" + subject));

    internal static async Task<MeasureReport> EvaluateAsync(HttpClient client, string measure, string start, string end, string? subject = null)
    {
        var response = await EvaluateRawAsync(client, measure, start, end, subject);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.ReadAs<MeasureReport>();
    }
}

[Collection(SqliteMeasureCollection.Name)]
public sealed class SqliteSortieAvecPaquetTests(MeasureGateway<SqliteGateway> fixture) : SortieAvecPaquetTests<SqliteGateway>(fixture);

[Collection(PostgresMeasureCollection.Name)]
public sealed class PostgresSortieAvecPaquetTests(MeasureGateway<PostgresGateway> fixture) : SortieAvecPaquetTests<PostgresGateway>(fixture);
