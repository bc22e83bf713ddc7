using FhirSortie.Server.Portal;
using Microsoft.Extensions.Configuration;

namespace FhirSortie.Tests.Portal;

/// <summary>The portal's small pure pieces: the CSV of the access report and the French dates.</summary>
public sealed class PortalPagesTests
{
    [Fact]
    public void Access_report_csv_quotes_separators_and_defuses_formulas()
    {
        var csv = AccessReportView.Csv([new AccessReportView.Access("07/12/2026 à 10h56", "=HYPERLINK(\"x\")", "CSAPA; Les Tilleuls", "read", "Task/1", "refused", "consent")]);
        var lines = csv.Split("\r\n");
        Assert.Equal("\uFEFFquand;qui;structure;action;donnees;resultat;motif", lines[0]);
        Assert.Equal("07/12/2026 à 10h56;\"'=HYPERLINK(\"\"x\"\")\";\"CSAPA; Les Tilleuls\";read;Task/1;Refusé;consent", lines[1]);
    }

    [Theory]
    [InlineData("1986-03-12", "12/03/1986")]
    [InlineData("2026-12-09T23:30:00Z", "10/12/2026")] // Paris is an hour ahead in winter
    [InlineData(null, "—")]
    public void Dates_are_french_in_Europe_Paris(string? fhir, string shown) => Assert.Equal(shown, PortalPage.Date(fhir));

    [Fact]
    public void Demo_portal_client_registers_the_callback_of_every_listening_address()
    {
        var configuration = new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["urls"] = "http://0.0.0.0:5123;http://127.0.0.1:5124" }).Build();
        var client = PortalDemo.Client(configuration);
        Assert.True(client.ActsForUser);
        Assert.Contains("http://127.0.0.1:5123/portal/callback", client.RedirectUris);
        Assert.Contains("http://127.0.0.1:5124/portal/callback", client.RedirectUris);
        Assert.Contains("http://127.0.0.1:8080/portal/callback", client.RedirectUris);
    }
}
