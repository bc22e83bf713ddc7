using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Xml.Linq;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Tests.Security;

/// <summary>A gateway with a key-encryption key, in demo mode (the demo practitioner signs in).</summary>
public abstract class KekGatewayFixture<TGateway> : IDisposable where TGateway : Gateway, new()
{
    public static readonly string Kek = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    public TGateway Gateway { get; } = new() { UseRealAuthentication = true };

    protected KekGatewayFixture()
    {
        Gateway.Settings["FhirSortie:DemoMode"] = "true";
        Gateway.Settings[KeyEncryption.Setting] = Kek;
    }

    public void Dispose()
    {
        Gateway.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class SqliteKekGatewayFixture : KekGatewayFixture<SqliteGateway>;

public sealed class PostgresKekGatewayFixture : KekGatewayFixture<PostgresGateway>;

/// <summary>
/// The practitioners' session cookies are protected by the data protection keys in data_protection_keys; with a KEK
/// those keys are encrypted, so a copy of the database without the KEK can neither read a session nor forge one.
/// </summary>
public abstract class SessionKeyEncryptionTests(Gateway gateway, string kek)
{
    private const string CookieName = "fhirsortie_practitioner";

    [Fact]
    public async Task A_copy_of_the_database_without_the_kek_cannot_read_or_forge_a_practitioner_session()
    {
        var session = await SignInAsync();
        Assert.Equal(HttpStatusCode.OK, await AuthorizeWithAsync(session)); // the real session is signed in

        // The key ring as the database holds it: no secret in clear.
        var copy = new DatabaseKeyRepository(gateway.Services.GetRequiredService<StorageDialect>(), TimeProvider.System).GetAllElements();
        Assert.NotEmpty(copy);
        Assert.All(copy, key =>
        {
            Assert.DoesNotContain("requiresEncryption", key.ToString(), StringComparison.Ordinal);
            Assert.Contains("kekEncryptedKey", key.ToString(), StringComparison.Ordinal);
        });

        // Another application on that copy, with the KEK: reads the session, and what it forges is accepted (the test can tell).
        var withKek = CookieFormat(copy, kek);
        var ticket = withKek.Unprotect(session);
        Assert.NotNull(ticket);
        Assert.Equal(HttpStatusCode.OK, await AuthorizeWithAsync(withKek.Protect(ticket)));

        // Without the KEK: the session does not read, and a cookie it forges is not a sign-in.
        var withoutKek = CookieFormat(copy, kek: null);
        Assert.Null(withoutKek.Unprotect(session));
        Assert.Equal(HttpStatusCode.Unauthorized, await AuthorizeWithAsync(withoutKek.Protect(ticket)));
    }

    /// <summary>Signs the demo practitioner in on the login page; the session cookie it sets.</summary>
    private async Task<string> SignInAsync()
    {
        using var browser = new BrowserSession(gateway);
        var (_, html) = await browser.GetPageAsync("/auth/login");
        using var response = await browser.PostFormAsync(html, "/auth/login", [new("username", "dr-demo"), new("password", "dr-demo-password")]);
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        var cookie = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(CookieName + "=", StringComparison.Ordinal));
        return cookie[(CookieName.Length + 1)..cookie.IndexOf(';', StringComparison.Ordinal)];
    }

    /// <summary>
    /// An authorization request of the demo app sent with <paramref name="cookie"/> as the session: OK when the gateway
    /// takes it for a signed-in practitioner (it goes on to the patient picker), Unauthorized when it sends to the login page.
    /// </summary>
    private async Task<HttpStatusCode> AuthorizeWithAsync(string cookie)
    {
        var challenge = Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes("verifier-" + Guid.NewGuid().ToString("N"))));
        var url = QueryHelpers.AddQueryString("/auth/authorize", new Dictionary<string, string?>
        {
            ["response_type"] = "code", ["client_id"] = "telemed-demo", ["redirect_uri"] = DemoClients.TelemedicineRedirectUri,
            ["scope"] = "launch/patient openid patient/*.rs", ["state"] = "s", ["aud"] = "http://localhost/fhir",
            ["code_challenge"] = challenge, ["code_challenge_method"] = "S256",
        });
        using var http = gateway.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false, HandleCookies = false });
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Add("Cookie", $"{CookieName}={cookie}");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        var location = response.Headers.Location!.OriginalString;
        if (location.StartsWith("/auth/pick-patient?", StringComparison.Ordinal)) return HttpStatusCode.OK;
        Assert.StartsWith("/auth/login?", location, StringComparison.Ordinal);
        return HttpStatusCode.Unauthorized;
    }

    /// <summary>The cookie format of another application (same name, same purposes) whose key ring is <paramref name="keys"/>.</summary>
    private static TicketDataFormat CookieFormat(IReadOnlyCollection<XElement> keys, string? kek)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddDataProtection().SetApplicationName("FhirSortie");
        var repository = new CopiedKeys([.. keys.Select(k => new XElement(k))]);
        services.Configure<KeyManagementOptions>(options => options.XmlRepository = repository);
        if (kek is not null) services.AddSingleton(KeyEncryption.FromSetting(kek));
        var provider = services.BuildServiceProvider();
        // The purposes ASP.NET Core's cookie handler protects its tickets with.
        return new TicketDataFormat(provider.GetRequiredService<IDataProtectionProvider>()
            .CreateProtector("Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationMiddleware", AuthPages.PractitionerScheme, "v2"));
    }

    private sealed class CopiedKeys(List<XElement> keys) : IXmlRepository
    {
        public IReadOnlyCollection<XElement> GetAllElements() => [.. keys];

        public void StoreElement(XElement element, string friendlyName) => keys.Add(element);
    }
}

public sealed class SqliteSessionKeyEncryptionTests(SqliteKekGatewayFixture fixture)
    : SessionKeyEncryptionTests(fixture.Gateway, SqliteKekGatewayFixture.Kek), IClassFixture<SqliteKekGatewayFixture>;

public sealed class PostgresSessionKeyEncryptionTests(PostgresKekGatewayFixture fixture)
    : SessionKeyEncryptionTests(fixture.Gateway, PostgresKekGatewayFixture.Kek), IClassFixture<PostgresKekGatewayFixture>;
