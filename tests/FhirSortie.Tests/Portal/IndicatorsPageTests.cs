using System.Text.RegularExpressions;
using FhirSortie.Server.Portal;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace FhirSortie.Tests.Portal;

/// <summary>
/// The Indicateurs page against the contract of Measure/{id}/$evaluate-measure (summary MeasureReport, populations
/// initial-population / denominator / numerator, measureScore, stratifiers mois / usmp / type-sortie, a suppressed
/// count without value and with data-absent-reason "masked"), on fixtures shaped like the gateway's answer.
/// </summary>
public sealed partial class IndicatorsPageTests
{
    /// <summary>Two months (one with a suppressed numerator), two prisons (one suppressed), one kind of exit.</summary>
    public const string Fixture = """
        {
          "resourceType": "MeasureReport",
          "status": "complete",
          "type": "summary",
          "measure": "https://fhirsortie.fr/fhir/Measure/sortie-avec-paquet",
          "period": { "start": "2026-01-01", "end": "2026-02-28" },
          "group": [ {
            "population": [
              { "code": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": "initial-population" } ] }, "count": 52 },
              { "code": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": "denominator" } ] }, "count": 52 },
              { "code": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": "numerator" } ] }, "count": 30 }
            ],
            "measureScore": { "value": 0.5769 },
            "stratifier": [
              { "code": [ { "coding": [ { "code": "mois" } ] } ], "stratum": [
                { "value": { "text": "2026-02" }, "population": [
                  { "code": { "coding": [ { "code": "initial-population" } ] }, "count": 32 },
                  { "code": { "coding": [ { "code": "denominator" } ] }, "count": 32 },
                  { "code": { "coding": [ { "code": "numerator" } ] }, "_count": { "extension": [ { "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked" } ] } }
                ], "measureScore": { "extension": [ { "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked" } ] } },
                { "value": { "text": "2026-01" }, "population": [
                  { "code": { "coding": [ { "code": "initial-population" } ] }, "count": 20 },
                  { "code": { "coding": [ { "code": "denominator" } ] }, "count": 20 },
                  { "code": { "coding": [ { "code": "numerator" } ] }, "count": 12 }
                ], "measureScore": { "value": 0.6 } }
              ] },
              { "code": [ { "coding": [ { "code": "usmp" } ] } ], "stratum": [
                { "value": { "coding": [ { "system": "https://finess.esante.gouv.fr", "code": "750000010", "display": "USMP de la maison d'arrêt A" } ], "text": "USMP de la maison d'arrêt A" }, "population": [
                  { "code": { "coding": [ { "code": "initial-population" } ] }, "count": 45 },
                  { "code": { "coding": [ { "code": "denominator" } ] }, "count": 45 },
                  { "code": { "coding": [ { "code": "numerator" } ] }, "count": 27 }
                ], "measureScore": { "value": 0.6 } },
                { "value": { "coding": [ { "system": "https://finess.esante.gouv.fr", "code": "910000127", "display": "USMP du centre de détention B" } ], "text": "USMP du centre de détention B" }, "population": [
                  { "code": { "coding": [ { "code": "initial-population" } ] }, "_count": { "extension": [ { "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked" } ] } },
                  { "code": { "coding": [ { "code": "denominator" } ] }, "_count": { "extension": [ { "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked" } ] } },
                  { "code": { "coding": [ { "code": "numerator" } ] }, "_count": { "extension": [ { "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked" } ] } }
                ] }
              ] },
              { "code": [ { "coding": [ { "code": "type-sortie" } ] } ], "stratum": [
                { "value": { "coding": [ { "system": "https://fhirsortie.fr/fhir/CodeSystem/exit-kind", "code": "fin-de-peine" } ] }, "population": [
                  { "code": { "coding": [ { "code": "initial-population" } ] }, "count": 52 },
                  { "code": { "coding": [ { "code": "denominator" } ] }, "count": 52 },
                  { "code": { "coding": [ { "code": "numerator" } ] }, "count": 30 }
                ], "measureScore": { "value": 0.5769 } }
              ] }
            ]
          } ]
        }
        """;

    public static IndicatorReport Report() =>
        IndicatorReport.Of("sortie-avec-paquet", (MeasureReport)new FhirJsonDeserializer(new DeserializerSettings()).DeserializeResource(Fixture));

    private static readonly PortalUser Usmp = new("usmp-medecin", "Dr Camille Exemple", ActorKind.Usmp, "750000010", null);
    private static readonly PortalUser Observer = new("ars-observateur", "ARS Île-de-France", ActorKind.Observer, "750000085", null);

    private static IndicatorsView.Choice Choice(string prison = IndicatorsView.AllPrisons) =>
        new("sortie-avec-paquet", new DateOnly(2026, 1, 1), new DateOnly(2026, 2, 28), prison);

    [Fact]
    public void A_masked_count_is_read_as_suppressed_never_as_zero()
    {
        var group = Assert.Single(Report().Groups);
        var months = group.Strata[IndicatorReport.Month];
        Assert.Equal(["2026-01", "2026-02"], months.Select(m => m.Key)); // in time order, whatever the report's order
        Assert.Equal(["janvier 2026", "février 2026"], months.Select(m => m.Label));
        Assert.False(months[0].Masked);
        Assert.Equal(60m, months[0].ScorePercent);
        Assert.True(months[1].Masked);
        Assert.Null(months[1].Numerator.Value);
        Assert.Null(months[1].Drawn);
        Assert.True(months[1].Score.Masked);
        Assert.Equal("< 11", months[1].Numerator.Shown);
        Assert.Equal("32", months[1].Denominator.Shown);
        Assert.Equal("< 11", months[1].ScoreShown);
        Assert.Equal(57.7m, group.Total.ScorePercent);
        Assert.Equal("Fin de peine (sans aménagement)", Assert.Single(group.Strata[IndicatorReport.ExitKind]).Label);
    }

    [Fact]
    public void The_chart_is_inline_svg_with_text_alternatives_and_a_suppressed_row_has_no_bar()
    {
        var months = Report().Groups[0].Strata[IndicatorReport.Month];
        var svg = IndicatorChart.Bars("g1", "Par mois : sorties avec dossier", months);
        Assert.StartsWith("<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-labelledby=\"g1-t g1-d\"", svg, StringComparison.Ordinal);
        Assert.Contains("<title id=\"g1-t\">Par mois : sorties avec dossier</title>", svg, StringComparison.Ordinal);
        Assert.Contains("<desc id=\"g1-d\">Proportion, de 0 à 100 %. janvier 2026 : 12 sur 20 (60 %) ; février 2026 : effectif inférieur à 11, masqué (secret statistique).", svg, StringComparison.Ordinal);
        // One bar, 60 % of the 400-pixel scale; the suppressed month is words, not a bar of guessed height.
        var bar = Assert.Single(Bar().Matches(svg));
        Assert.Contains("width=\"240\"", bar.Value, StringComparison.Ordinal);
        Assert.Contains("<title>février 2026 : effectif inférieur à 11, masqué (secret statistique)</title>", svg, StringComparison.Ordinal);
        Assert.Contains("&lt; 11 (effectif masqué)</text>", svg, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", svg, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(" style=", svg, StringComparison.Ordinal); // the CSP allows no inline style
    }

    [Fact]
    public void The_table_beneath_gives_the_same_figures_with_suppressed_cells_as_less_than_11()
    {
        var prisons = Report().Groups[0].Strata[IndicatorReport.Prison];
        var table = IndicatorChart.Table("Par établissement", "Établissement", prisons);
        Assert.Contains("<tr><th scope=\"row\">USMP de la maison d&#x27;arrêt A</th><td>45</td><td>45</td><td>27</td><td>60 %</td></tr>", table, StringComparison.Ordinal);
        Assert.Contains("<tr><th scope=\"row\">USMP du centre de détention B</th><td>&lt; 11</td><td>&lt; 11</td><td>&lt; 11</td><td>&lt; 11</td></tr>", table, StringComparison.Ordinal);
    }

    [Fact]
    public void Csv_of_the_strata_has_french_headers_semicolons_a_bom_and_never_a_suppressed_number()
    {
        var csv = IndicatorCsv.Of("Sorties avec un dossier de sortie", Report());
        Assert.StartsWith("\uFEFF", csv, StringComparison.Ordinal);
        var lines = csv[1..].Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("Indicateur;Groupe;Début de période;Fin de période;Stratification;Strate;Code de la strate;Population initiale;Dénominateur;Numérateur;Score;Unité du score", lines[0]);
        Assert.Equal("Sorties avec un dossier de sortie;Ensemble;01/01/2026;28/02/2026;Ensemble;Ensemble;;52;52;30;57,7;%", lines[1]);
        Assert.Equal("Sorties avec un dossier de sortie;Ensemble;01/01/2026;28/02/2026;Mois;janvier 2026;2026-01;20;20;12;60;%", lines[2]);
        Assert.Equal("Sorties avec un dossier de sortie;Ensemble;01/01/2026;28/02/2026;Mois;février 2026;2026-02;32;32;< 11;< 11;", lines[3]);
        Assert.Contains("Sorties avec un dossier de sortie;Ensemble;01/01/2026;28/02/2026;Établissement (USMP);USMP du centre de détention B;910000127;< 11;< 11;< 11;< 11;", lines);
        Assert.Equal(7, lines.Length);
    }

    [Fact]
    public void An_observer_chooses_one_prison_or_all_and_a_usmp_has_no_choice()
    {
        var report = Report();
        var prisons = new List<(string, string)> { ("750000010", "USMP de la maison d'arrêt A"), ("910000127", "USMP du centre de détention B") };
        var observer = IndicatorsView.Page(Observer, Choice("910000127"), new IndicatorsView.Loaded(report, prisons, null));
        Assert.Contains("<h1>Indicateurs</h1>", observer, StringComparison.Ordinal);
        Assert.Contains("<select id=\"usmp\" name=\"usmp\"><option value=\"toutes\">Tous les établissements</option>", observer, StringComparison.Ordinal);
        Assert.Contains("<option value=\"910000127\" selected>USMP du centre de détention B</option>", observer, StringComparison.Ordinal);
        Assert.Contains("<label for=\"indicateur\">Indicateur</label>", observer, StringComparison.Ordinal);
        Assert.Contains("<option value=\"sortie-avec-paquet\" selected>", observer, StringComparison.Ordinal);
        Assert.Contains("href=\"/portal/indicateurs/csv?indicateur=sortie-avec-paquet&amp;debut=2026-01-01&amp;fin=2026-02-28&amp;usmp=910000127\"", observer, StringComparison.Ordinal);
        Assert.Equal(3, Regex.Count(observer, "<figure class=\"chart\">")); // per month, per prison, per kind of exit

        var usmp = IndicatorsView.Page(Usmp, Choice(), new IndicatorsView.Loaded(report, [], null));
        Assert.DoesNotContain("name=\"usmp\"", usmp, StringComparison.Ordinal);
        Assert.Contains("Établissement : le vôtre", usmp, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("indicateur=inconnu", "Cet indicateur n'existe pas.")]
    [InlineData("debut=2026-13-01", "La date de début n'est pas une date (jj/mm/aaaa).")]
    [InlineData("debut=2026-03-01&fin=2026-02-01", "La date de fin précède la date de début.")]
    [InlineData("debut=2010-01-01&fin=2026-02-01", "La période ne peut dépasser cinq ans.")]
    public void A_wrong_choice_is_refused_with_a_reason(string query, string reason)
    {
        var (choice, problem) = IndicatorsView.Choice.Of(Query(query), new DateOnly(2026, 12, 7));
        Assert.Null(choice);
        Assert.Equal(reason, problem);
    }

    [Fact]
    public void By_default_the_last_twelve_months_of_the_first_measure_for_all_prisons()
    {
        var (choice, problem) = IndicatorsView.Choice.Of(Query(""), new DateOnly(2026, 12, 7));
        Assert.Null(problem);
        Assert.Equal(new IndicatorsView.Choice("sortie-avec-paquet", new DateOnly(2026, 1, 1), new DateOnly(2026, 12, 7), "toutes"), choice);
    }

    private static QueryCollection Query(string query) =>
        new(Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(query).ToDictionary(p => p.Key, p => (StringValues)p.Value));

    [GeneratedRegex("<rect [^>]*class=\"bar\"[^>]*/>")]
    private static partial Regex Bar();
}
