using System.Net;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Audit;
using Microsoft.Extensions.Options;

namespace FhirSortie.Tests.Security;

/// <summary>Password guessing on the practitioners' login page is slowed per address and user name, and audited.</summary>
public sealed class FailedPractitionerLoginTests(GuessedSecretsGateway guessed) : IClassFixture<GuessedSecretsGateway>
{
    private BrowserSession BrowserAt(string peer) => BrowserSession.At(guessed.Gateway, peer);

    private static async Task<HttpResponseMessage> SignInAsync(BrowserSession browser, string user, string password)
    {
        var (status, html) = await browser.GetPageAsync("/auth/login");
        Assert.Equal(HttpStatusCode.OK, status);
        return await browser.PostFormAsync(html, "/auth/login", [new("username", user), new("password", password)]);
    }

    [Fact]
    public async Task After_the_limit_a_user_name_is_refused_from_that_address_only_even_with_its_password()
    {
        const string guesser = "192.0.2.77";
        using var browser = BrowserAt(guesser);
        for (var i = 0; i < 3; i++)
        {
            using var wrong = await SignInAsync(browser, Practitioners.DemoUserName, $"guess-{i}");
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }

        using var blocked = await SignInAsync(browser, Practitioners.DemoUserName, Practitioners.DemoPassword);
        using var workstation = BrowserAt("198.51.100.77");
        using var elsewhere = await SignInAsync(workstation, Practitioners.DemoUserName, Practitioners.DemoPassword);

        Assert.Equal((HttpStatusCode)429, blocked.StatusCode);
        Assert.Contains("Trop de tentatives de connexion", await blocked.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var retryAfter = int.Parse(Assert.Single(blocked.Headers.GetValues("Retry-After")), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 900);
        // No session was opened by the blocked attempt: the picker still sends it to the login page.
        using var picker = await browser.Http.GetAsync(PatientPicker.UrlFor("/auth/authorize?client_id=telemed-demo"));
        Assert.StartsWith("/auth/login", picker.Headers.Location?.OriginalString ?? "", StringComparison.Ordinal);
        // The practitioner's own workstation is not held back.
        Assert.Equal(HttpStatusCode.Redirect, elsewhere.StatusCode);

        var records = await guessed.Gateway.AuditEventsAsync($"address:exact={guesser}&_sort=date");
        Assert.Equal(
        [
            "110122 4 denied: sign-in refused: wrong password (dr-demo)",
            "110122 4 denied: sign-in refused: wrong password (dr-demo)",
            "110122 4 denied: sign-in refused: wrong password (dr-demo)",
            "110122 4 denied: sign-in refused: too many failed sign-ins from this address (dr-demo)",
        ], records.Select(AuditedSearch.Summary));
        Assert.All(records, r => Assert.Equal("Practitioner/dr-demo", r.Agent.Single(a => a.Type?.Coding[0].Code == "humanuser").Who!.Reference));
        Assert.All(records, r => Assert.DoesNotContain("guess-", AuditedSearch.JsonOf(r), StringComparison.Ordinal));
    }

    [Fact]
    public async Task Many_user_names_from_one_address_block_the_address()
    {
        const string sprayer = "192.0.2.88";
        using var browser = BrowserAt(sprayer);
        for (var i = 0; i < 3 * FailedPractitionerLogins.AddressFactor; i++)
        {
            using var wrong = await SignInAsync(browser, $"user-{i}", "Printemps2026!");
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        }

        using var blocked = await SignInAsync(browser, Practitioners.DemoUserName, Practitioners.DemoPassword);

        Assert.Equal((HttpStatusCode)429, blocked.StatusCode);
        var records = await guessed.Gateway.AuditEventsAsync($"address:exact={sprayer}&outcome=4&_count=100");
        Assert.Equal(3 * FailedPractitionerLogins.AddressFactor + 1, records.Count);
        // An unknown name is never recorded: it may be a password typed in the wrong field.
        Assert.Equal(3 * FailedPractitionerLogins.AddressFactor, records.Count(r => r.OutcomeDesc == "denied: sign-in refused: unknown user name"));
        Assert.All(records, r => Assert.DoesNotContain("user-", AuditedSearch.JsonOf(r), StringComparison.Ordinal));
    }

    [Fact]
    public void Each_name_and_the_address_have_their_window()
    {
        var clock = new MovableClock();
        var limit = new FailedPractitionerLogins(Options.Create(new AuthOptions { MaxFailedPractitionerLogins = 2, FailedPractitionerLoginWindowSeconds = 60 }), clock);

        limit.Failed("203.0.113.5", "alice");
        Assert.Null(limit.RetryAfter("203.0.113.5", "alice"));
        clock.Advance(TimeSpan.FromSeconds(15));
        limit.Failed("203.0.113.5", "alice");
        Assert.Equal(TimeSpan.FromSeconds(45), limit.RetryAfter("203.0.113.5", "alice"));
        Assert.Null(limit.RetryAfter("203.0.113.5", "bob"));
        Assert.Null(limit.RetryAfter("203.0.113.6", "alice"));
        // The address's own count: 20 failures (2 x 10) of any names.
        for (var i = 0; i < 18; i++) limit.Failed("203.0.113.5", $"name-{i}");
        Assert.NotNull(limit.RetryAfter("203.0.113.5", "bob"));
        clock.Advance(TimeSpan.FromSeconds(60));
        Assert.Null(limit.RetryAfter("203.0.113.5", "alice"));
        Assert.Null(limit.RetryAfter("203.0.113.5", "bob"));
    }

    [Theory]
    [InlineData("-1", "900")]
    [InlineData("10", "0")]
    public void A_negative_limit_or_an_empty_window_stops_the_start(string max, string window)
    {
        using var gateway = new SqliteGateway { UseRealAuthentication = true };
        gateway.Settings["FhirSortie:Auth:MaxFailedPractitionerLogins"] = max;
        gateway.Settings["FhirSortie:Auth:FailedPractitionerLoginWindowSeconds"] = window;
        var refused = Assert.ThrowsAny<Exception>(() => gateway.CreateClient().Dispose());
        Assert.Contains("MaxFailedPractitionerLogins", refused.ToString(), StringComparison.Ordinal);
    }
}
