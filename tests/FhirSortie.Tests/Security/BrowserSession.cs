using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Mvc.Testing;

namespace FhirSortie.Tests.Security;

/// <summary>
/// A practitioner's browser against the in-process gateway: keeps cookies, does not follow redirects (the tests
/// follow them by hand and look at each step), reads the antiforgery field out of the forms and posts them back.
/// </summary>
public sealed partial class BrowserSession(Gateway gateway) : IDisposable
{
    public HttpClient Http { get; } = gateway.CreateClient(new WebApplicationFactoryClientOptions
    {
        BaseAddress = new Uri("http://localhost/"),
        AllowAutoRedirect = false,
        HandleCookies = true,
    });

    /// <summary>A browser whose requests come from <paramref name="peer"/> (the gateway needs <c>PeerFromHeader</c>): a test finds its AuditEvents by that address.</summary>
    public static BrowserSession At(Gateway gateway, string peer)
    {
        var browser = new BrowserSession(gateway);
        browser.Http.DefaultRequestHeaders.Add(Audit.PeerFromHeader.Header, peer);
        return browser;
    }

    public async Task<(HttpStatusCode Status, string Html)> GetPageAsync(string url)
    {
        using var response = await Http.GetAsync(url);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Posts a form as the browser would: its hidden fields (antiforgery token included) plus <paramref name="fields"/>.</summary>
    public Task<HttpResponseMessage> PostFormAsync(string html, string action, IEnumerable<KeyValuePair<string, string>> fields, int formIndex = 0)
    {
        var form = FormsPosting(html, action).ElementAt(formIndex);
        var values = HiddenFields(form).ToDictionary(p => p.Key, p => p.Value);
        foreach (var (key, value) in fields) values[key] = value;
        return Http.PostAsync(action, new FormUrlEncodedContent(values));
    }

    /// <summary>Signs in on the login page reached from <paramref name="loginUrl"/>; returns the redirect after login.</summary>
    public async Task<Uri> SignInAsync(string loginUrl, string user = "dr-demo", string password = "dr-demo-password")
    {
        var (status, html) = await GetPageAsync(loginUrl);
        Assert.Equal(HttpStatusCode.OK, status);
        using var response = await PostFormAsync(html, "/auth/login", [new("username", user), new("password", password)]);
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        return response.Headers.Location!;
    }

    public static IEnumerable<string> FormsPosting(string html, string action) =>
        FormPattern().Matches(html).Select(m => m.Value).Where(f => f.Contains($"method=\"post\" action=\"{action}\"", StringComparison.Ordinal));

    public static IEnumerable<KeyValuePair<string, string>> HiddenFields(string form) =>
        HiddenPattern().Matches(form).Select(m => new KeyValuePair<string, string>(
            WebUtility.HtmlDecode(m.Groups["name"].Value), WebUtility.HtmlDecode(m.Groups["value"].Value)));

    public void Dispose() => Http.Dispose();

    [GeneratedRegex("<form .*?</form>", RegexOptions.Singleline)]
    private static partial Regex FormPattern();

    [GeneratedRegex("<input type=\"hidden\" name=\"(?<name>[^\"]*)\" value=\"(?<value>[^\"]*)\">")]
    private static partial Regex HiddenPattern();
}
