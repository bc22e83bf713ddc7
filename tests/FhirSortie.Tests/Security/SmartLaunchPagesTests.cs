using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Security;

/// <summary>A gateway in demo mode with one interactive app registered, in-process (test authentication for /auth/launch).</summary>
public abstract class SmartPagesFixture<TGateway> : IDisposable where TGateway : Gateway, new()
{
    public TGateway Gateway { get; } = new();

    protected SmartPagesFixture()
    {
        Gateway.Settings["FhirSortie:DemoMode"] = "true";
        Gateway.Settings["FhirSortie:Clients:0:ClientId"] = "pages-app";
        Gateway.Settings["FhirSortie:Clients:0:ActorKind"] = "Telemedicine";
        Gateway.Settings["FhirSortie:Clients:0:OrganizationFiness"] = "750000051";
        Gateway.Settings["FhirSortie:Clients:0:AllowedScopes"] = "launch/patient";
        Gateway.Settings["FhirSortie:Clients:0:RedirectUris:0"] = "http://127.0.0.1:1/app/";
    }

    public void Dispose()
    {
        Gateway.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class SqliteSmartPagesFixture : SmartPagesFixture<SqliteGateway>;

public sealed class PostgresSmartPagesFixture : SmartPagesFixture<PostgresGateway>;

/// <summary>Login page, patient picker and launch minting, as a browser and a host see them.</summary>
public abstract class SmartLaunchPagesTests(Gateway gateway)
{
    private const string Authorize = "/auth/authorize?response_type=code&client_id=pages-app&scope=launch%2Fpatient";

    private async Task<string> CreatePatientAsync(string family, string given = "Jean", bool withConsent = true)
    {
        var patient = new Patient { Name = [new HumanName { Family = family, Given = [given] }], BirthDate = "1980-02-03" };
        using var response = await gateway.Fhir().PostAsync("Patient", FhirHttp.Json(patient));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var id = (await response.ReadAs<Patient>()).Id!;
        if (!withConsent) return id;
        // The app is a telemedicine service: the picker lists the patients who consented to share with it (issue 5).
        using var consent = await gateway.Fhir().PostAsync("Consent", FhirHttp.Json(Consents.TestConsents.Permit(id, "750000051", "Patient")));
        Assert.Equal(HttpStatusCode.Created, consent.StatusCode);
        return id;
    }

    [Fact]
    public async Task Login_page_is_a_plain_form_with_an_antiforgery_token_and_cannot_be_framed()
    {
        using var browser = new BrowserSession(gateway);
        using var response = await browser.Http.GetAsync("/auth/login?returnUrl=" + Uri.EscapeDataString(Authorize));
        var html = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("DENY", response.Headers.GetValues("X-Frame-Options"));
        var form = Assert.Single(BrowserSession.FormsPosting(html, "/auth/login"));
        var hidden = BrowserSession.HiddenFields(form).ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(Authorize, hidden["returnUrl"]);
        Assert.Contains(hidden.Keys, k => k.Contains("RequestVerificationToken", StringComparison.Ordinal));
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Login_page_is_in_French_with_labelled_fields_and_the_Se_connecter_button()
    {
        // Issue 22: the portal is French (lang="fr", WCAG 2.1 AA 3.1.1), and so is the gateway's sign-in it sends users to.
        using var browser = new BrowserSession(gateway);
        var (status, html) = await browser.GetPageAsync("/auth/login?returnUrl=" + Uri.EscapeDataString(Authorize));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("<html lang=\"fr\">", html, StringComparison.Ordinal);
        Assert.Contains("<title>Connexion - FhirSortie</title>", html, StringComparison.Ordinal);
        Assert.Contains("<main><h1>Connexion</h1>", html, StringComparison.Ordinal);
        Assert.Contains("<label for=\"username\">Identifiant</label>", html, StringComparison.Ordinal);
        Assert.Contains("<label for=\"password\">Mot de passe</label>", html, StringComparison.Ordinal);
        Assert.Contains("<button type=\"submit\" id=\"sign-in\">Se connecter</button>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("Sign in", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Password", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_signed_in_message_and_expired_form_are_in_French()
    {
        using var browser = new BrowserSession(gateway);
        await browser.SignInAsync("/auth/login");
        var (_, signedIn) = await browser.GetPageAsync("/auth/login?signedIn=1");
        Assert.Contains("<p role=\"status\">Vous êtes connecté(e).</p>", signedIn, StringComparison.Ordinal);
        using var expired = await browser.Http.PostAsync("/auth/login", new FormUrlEncodedContent([new("username", "dr-demo"), new("password", "x")]));
        Assert.Equal(HttpStatusCode.BadRequest, expired.StatusCode);
        Assert.Contains("<h1>Formulaire expiré</h1>", await expired.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Right_password_signs_in_and_returns_to_the_authorization_request()
    {
        using var browser = new BrowserSession(gateway);
        var next = await browser.SignInAsync("/auth/login?returnUrl=" + Uri.EscapeDataString(Authorize));
        Assert.Equal(Authorize, next.OriginalString);
    }

    [Fact]
    public async Task Wrong_password_is_refused_and_gives_no_session()
    {
        using var browser = new BrowserSession(gateway);
        var (_, html) = await browser.GetPageAsync("/auth/login?returnUrl=" + Uri.EscapeDataString(Authorize));
        using var response = await browser.PostFormAsync(html, "/auth/login", [new("username", "dr-demo"), new("password", "not-the-password")]);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var refusal = await response.Content.ReadAsStringAsync();
        Assert.Contains("<p class=\"error\" id=\"login-error\" role=\"alert\">Identifiant ou mot de passe incorrect.</p>", refusal, StringComparison.Ordinal);
        Assert.Contains("<html lang=\"fr\">", refusal, StringComparison.Ordinal);
        Assert.False(response.Headers.TryGetValues("Set-Cookie", out var cookies) && cookies.Any(c => c.StartsWith("fhirsortie_practitioner=", StringComparison.Ordinal)));

        var (status, picker) = await browser.GetPageAsync(PickerUrl());
        Assert.Equal(HttpStatusCode.Redirect, status);
        Assert.Empty(picker);
    }

    [Fact]
    public async Task Unknown_user_is_refused_like_a_wrong_password()
    {
        using var browser = new BrowserSession(gateway);
        var (_, html) = await browser.GetPageAsync("/auth/login");
        using var response = await browser.PostFormAsync(html, "/auth/login", [new("username", "nobody"), new("password", "dr-demo-password")]);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Login_post_without_the_antiforgery_token_is_refused()
    {
        using var browser = new BrowserSession(gateway);
        await browser.GetPageAsync("/auth/login");
        using var response = await browser.Http.PostAsync("/auth/login", new FormUrlEncodedContent(
            [new("username", "dr-demo"), new("password", "dr-demo-password"), new("returnUrl", Authorize)]));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Theory]
    [InlineData("https://evil.example/steal")]
    [InlineData("//evil.example/auth/authorize?x")]
    [InlineData("/fhir/Patient")]
    [InlineData("/auth/authorize?x=1//evil")]
    public async Task Login_never_redirects_outside_the_authorization_endpoint(string returnUrl)
    {
        using var browser = new BrowserSession(gateway);
        var next = await browser.SignInAsync("/auth/login?returnUrl=" + Uri.EscapeDataString(returnUrl));
        Assert.Equal("/auth/login?signedIn=1", next.OriginalString);
    }

    private static string PickerUrl(string? q = null) =>
        "/auth/pick-patient?returnUrl=" + Uri.EscapeDataString(Authorize) + (q is null ? "" : "&q=" + Uri.EscapeDataString(q));

    [Fact]
    public async Task Patient_picker_needs_a_signed_in_practitioner()
    {
        using var browser = new BrowserSession(gateway);
        using var response = await browser.Http.GetAsync(PickerUrl());
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.StartsWith("/auth/login?returnUrl=", response.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task Patient_picker_finds_patients_by_name_and_a_pick_goes_back_to_the_authorization_request()
    {
        var family = "Picker" + Guid.NewGuid().ToString("N")[..8];
        var id = await CreatePatientAsync(family);
        var other = await CreatePatientAsync("Other" + Guid.NewGuid().ToString("N")[..8]);
        using var browser = new BrowserSession(gateway);
        await browser.SignInAsync("/auth/login");

        var (status, html) = await browser.GetPageAsync(PickerUrl(family));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains($"data-patient=\"{id}\"", html);
        Assert.DoesNotContain($"data-patient=\"{other}\"", html);
        Assert.Contains(family, html);
        // In French, the birth date as dd/MM/yyyy, and each button names the person it picks (WCAG 2.4.6).
        Assert.Contains("<html lang=\"fr\">", html, StringComparison.Ordinal);
        Assert.Contains("<h1>Choisir un patient</h1>", html, StringComparison.Ordinal);
        Assert.Contains("<label for=\"q\">Nom ou INS</label>", html, StringComparison.Ordinal);
        Assert.Contains("<td>03/02/1980</td>", html, StringComparison.Ordinal);
        Assert.Contains($"Sélectionner<span class=\"hidden\"> Jean {family}</span></button>", html, StringComparison.Ordinal);

        var forms = BrowserSession.FormsPosting(html, "/auth/pick-patient").ToList();
        var index = forms.FindIndex(f => f.Contains($"value=\"{id}\"", StringComparison.Ordinal));
        using var picked = await browser.PostFormAsync(html, "/auth/pick-patient", [], index);
        Assert.Equal(HttpStatusCode.Redirect, picked.StatusCode);
        var location = picked.Headers.Location!.OriginalString;
        Assert.StartsWith(Authorize + "&fhirsortie_pick=", location);

        // The id is a launch context for this app and this practitioner, usable once.
        var pick = location[(Authorize + "&fhirsortie_pick=").Length..];
        var launches = gateway.Services.GetRequiredService<LaunchContexts>();
        Assert.Null(await launches.RedeemAsync(pick, LaunchKind.Picked, "another-app", CancellationToken.None));
        var context = await launches.RedeemAsync(pick, LaunchKind.Picked, "pages-app", CancellationToken.None);
        Assert.Equal(id, context?.PatientId);
        Assert.Equal("dr-demo", context?.UserName);
        Assert.Null(await launches.RedeemAsync(pick, LaunchKind.Picked, "pages-app", CancellationToken.None));
    }

    [Fact]
    public async Task Picking_a_patient_that_does_not_exist_is_refused()
    {
        using var browser = new BrowserSession(gateway);
        await browser.SignInAsync("/auth/login");
        var family = "Gone" + Guid.NewGuid().ToString("N")[..8];
        await CreatePatientAsync(family);
        var (_, html) = await browser.GetPageAsync(PickerUrl(family));
        using var response = await browser.PostFormAsync(html, "/auth/pick-patient", [new("patient", "does-not-exist")]);
        Assert.True(response.StatusCode == HttpStatusCode.NotFound, await response.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    private static HttpRequestMessage Mint(string body, string caller) => new(HttpMethod.Post, "/auth/launch")
    {
        Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
        Headers = { { TestAuthenticationHandler.Header, caller } },
    };

    private static readonly string UsmpHost = TestAuthenticationHandler.Describe("usmp-host", ActorKind.Usmp, "750000010", "system/*.cruds");

    [Fact]
    public async Task A_host_mints_a_single_use_launch_bound_to_the_patient_and_the_app()
    {
        var id = await CreatePatientAsync("Launch" + Guid.NewGuid().ToString("N")[..8]);
        using var http = gateway.CreateClient();
        using var response = await http.SendAsync(Mint($$"""{ "patient": "Patient/{{id}}", "client_id": "pages-app" }""", UsmpHost));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        var launch = body.GetProperty("launch").GetString()!;
        Assert.True(launch.Length >= 40, "a launch value is a long random secret");
        Assert.InRange(body.GetProperty("expires_in").GetInt32(), 60, 600);

        var launches = gateway.Services.GetRequiredService<LaunchContexts>();
        Assert.Null(await launches.FindAsync(launch, LaunchKind.Ehr, "usmp-host", CancellationToken.None));
        Assert.Null(await launches.FindAsync(launch, LaunchKind.Picked, "pages-app", CancellationToken.None));
        Assert.Equal(id, (await launches.RedeemAsync(launch, LaunchKind.Ehr, "pages-app", CancellationToken.None))?.PatientId);
        Assert.Null(await launches.RedeemAsync(launch, LaunchKind.Ehr, "pages-app", CancellationToken.None));
    }

    [Theory]
    [InlineData(ActorKind.Csapa)]
    [InlineData(ActorKind.Admin)] // administrators never read patient data, so they open no app on a patient
    public async Task Only_hosts_mint_launches(ActorKind kind)
    {
        var id = await CreatePatientAsync("NoHost" + Guid.NewGuid().ToString("N")[..8]);
        using var http = gateway.CreateClient();
        using var response = await http.SendAsync(Mint($$"""{ "patient": "Patient/{{id}}", "client_id": "pages-app" }""",
            TestAuthenticationHandler.Describe("not-a-host", kind, "750000028", "system/*.rs")));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("access_denied", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_host_mints_launches_only_on_patients_it_may_see_and_every_mint_is_audited()
    {
        var telemedicineHost = TestAuthenticationHandler.Describe("telemed-host", ActorKind.Telemedicine, "750000051", "system/*.rs");
        var consented = await CreatePatientAsync("Seen" + Guid.NewGuid().ToString("N")[..8]);
        var hidden = await CreatePatientAsync("Hidden" + Guid.NewGuid().ToString("N")[..8], withConsent: false);
        using var http = gateway.CreateClient();

        using var refused = await http.SendAsync(Mint($$"""{ "patient": "Patient/{{hidden}}", "client_id": "pages-app" }""", telemedicineHost));
        using var minted = await http.SendAsync(Mint($$"""{ "patient": "Patient/{{consented}}", "client_id": "pages-app" }""", telemedicineHost));

        // A patient the host may not read is as unknown as one that does not exist.
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        Assert.Equal(HttpStatusCode.OK, minted.StatusCode);
        using var auditor = gateway.Fhir(TestAuthenticationHandler.Describe("dpo", ActorKind.Auditor, "750000077", "system/AuditEvent.rs"));
        async Task<AuditEvent> RecordOfAsync(string patient)
        {
            using var found = await auditor.GetAsync($"AuditEvent?patient={patient}&subtype=operation");
            Assert.Equal(HttpStatusCode.OK, found.StatusCode);
            return (AuditEvent)Assert.Single((await found.ReadAs<Bundle>()).Entry).Resource!;
        }
        var refusal = await RecordOfAsync(hidden);
        Assert.Equal(AuditEvent.AuditEventOutcome.N4, refusal.Outcome);
        Assert.StartsWith("denied: EHR launch: invalid_request: No such patient on this server.", refusal.OutcomeDesc, StringComparison.Ordinal);
        Assert.Equal("telemed-host", refusal.Agent[0].Who!.Identifier!.Value);
        var mint = await RecordOfAsync(consented);
        Assert.Equal(AuditEvent.AuditEventOutcome.N0, mint.Outcome);
        Assert.StartsWith("permitted: EHR launch: launch minted for pages-app", mint.OutcomeDesc, StringComparison.Ordinal);
        Assert.Contains(mint.Entity, e => e.What?.Reference == "Patient/" + consented);
    }

    [Theory]
    [InlineData("""{ "patient": "Patient/does-not-exist", "client_id": "pages-app" }""", HttpStatusCode.NotFound)]
    [InlineData("""{ "client_id": "pages-app" }""", HttpStatusCode.BadRequest)]
    [InlineData("""{ "patient": "Observation/1", "client_id": "pages-app" }""", HttpStatusCode.BadRequest)]
    [InlineData("""not json""", HttpStatusCode.BadRequest)]
    [InlineData("""{ "patient": "Patient/a\u0000", "client_id": "pages-app" }""", HttpStatusCode.BadRequest)] // was a 500 on PostgreSQL
    [InlineData("""{ "patient": "Patient/not an id", "client_id": "pages-app" }""", HttpStatusCode.BadRequest)]
    public async Task Bad_launch_requests_are_refused(string body, HttpStatusCode expected)
    {
        using var http = gateway.CreateClient();
        using var response = await http.SendAsync(Mint(body, UsmpHost));
        Assert.Equal(expected, response.StatusCode);
    }

    [Fact]
    public async Task A_launch_for_an_app_that_is_not_registered_is_refused()
    {
        var id = await CreatePatientAsync("NoApp" + Guid.NewGuid().ToString("N")[..8]);
        using var http = gateway.CreateClient();
        using var response = await http.SendAsync(Mint($$"""{ "patient": "Patient/{{id}}", "client_id": "no-such-app" }""", UsmpHost));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Expired_launch_contexts_cannot_be_redeemed()
    {
        var clock = new MovableClock();
        var launches = new LaunchContexts(gateway.Services.GetRequiredService<StorageDialect>(), clock);
        var launch = await launches.CreateAsync(LaunchKind.Ehr, "pages-app", "p1", null, CancellationToken.None);
        clock.Now += LaunchContexts.Lifetime + TimeSpan.FromSeconds(1);
        Assert.Null(await launches.FindAsync(launch.Id, LaunchKind.Ehr, "pages-app", CancellationToken.None));
        Assert.Null(await launches.RedeemAsync(launch.Id, LaunchKind.Ehr, "pages-app", CancellationToken.None));
    }
}

public sealed class SqliteSmartLaunchPagesTests(SqliteSmartPagesFixture fixture) : SmartLaunchPagesTests(fixture.Gateway), IClassFixture<SqliteSmartPagesFixture>;

public sealed class PostgresSmartLaunchPagesTests(PostgresSmartPagesFixture fixture) : SmartLaunchPagesTests(fixture.Gateway), IClassFixture<PostgresSmartPagesFixture>;
