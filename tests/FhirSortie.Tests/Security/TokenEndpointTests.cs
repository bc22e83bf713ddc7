using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using FhirSortie.Server.Security;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using static FhirSortie.Tests.Audit.AuditedSearch;

namespace FhirSortie.Tests.Security;

/// <summary>POST /auth/token: client authentication (secret, private_key_jwt), scopes and what the issued token carries.</summary>
public abstract class TokenEndpointTests(AuthFixture auth)
{
    private static FormUrlEncodedContent Form(params (string Key, string Value)[] pairs) =>
        new(pairs.Select(p => new KeyValuePair<string, string>(p.Key, p.Value)));

    [Fact]
    public async Task Client_secret_basic_gets_a_token()
    {
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("csapa-demo:csapa-demo-secret"));
        var (status, body) = await auth.TokenAsync(Form(("grant_type", "client_credentials"), ("scope", "system/*.rs")), new AuthenticationHeaderValue("Basic", basic));
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Equal("Bearer", body.GetProperty("token_type").GetString());
        Assert.Equal("system/*.rs", body.GetProperty("scope").GetString()); // SMART Backend Services: always answered
        var token = new JsonWebToken(body.GetProperty("access_token").GetString());
        Assert.Equal("csapa-demo", token.GetClaim("client_id").Value);
        Assert.Equal("system/*.rs", token.GetClaim("scope").Value);
    }

    [Fact]
    public async Task Client_secret_post_gets_a_token()
    {
        var (status, body) = await auth.TokenAsync(Form(("grant_type", "client_credentials"), ("client_id", "spip-demo"),
            ("client_secret", "spip-demo-secret"), ("scope", "system/Patient.rs system/Appointment.rs")));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(body.GetProperty("expires_in").GetInt32() <= 300);
    }

    [Fact]
    public async Task Wrong_secret_is_invalid_client()
    {
        var (status, body) = await auth.TokenAsync(Form(("grant_type", "client_credentials"), ("client_id", "spip-demo"),
            ("client_secret", "not-the-secret"), ("scope", "system/Patient.rs")));
        Assert.Equal(HttpStatusCode.BadRequest, status is HttpStatusCode.Unauthorized ? HttpStatusCode.BadRequest : status);
        Assert.Equal("invalid_client", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Scope_outside_the_allowed_scopes_is_invalid_scope()
    {
        var (status, body) = await auth.TokenAsync(Form(("grant_type", "client_credentials"), ("client_id", "spip-demo"),
            ("client_secret", "spip-demo-secret"), ("scope", "system/Observation.rs")));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_scope", body.GetProperty("error").GetString());
    }

    /// <summary>csapa-demo is registered "system/*.rs system/Task.u": each of these asks for less (SMART least privilege).</summary>
    [Theory]
    [InlineData("system/MedicationRequest.rs")]
    [InlineData("system/*.read")] // v1 read = rs
    [InlineData("system/MedicationRequest.read system/Task.u")]
    [InlineData("system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory")]
    [InlineData("system/Patient.r system/Patient.s")]
    [InlineData("system/*.rs")] // the registered scope itself, answered with its scope too
    public async Task A_client_is_granted_any_scope_its_registration_covers_and_the_answer_names_it(string scope)
    {
        var (status, body) = await auth.TokenAsync(Form(("grant_type", "client_credentials"), ("client_id", "csapa-demo"),
            ("client_secret", "csapa-demo-secret"), ("scope", scope)));
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Equal(scope, body.GetProperty("scope").GetString());
        Assert.Equal(scope, new JsonWebToken(body.GetProperty("access_token").GetString()).GetClaim("scope").Value);
    }

    [Fact]
    public async Task A_private_key_jwt_client_is_granted_a_narrower_scope_too()
    {
        var assertion = AuthFixture.Assertion(auth.Ec384, SecurityAlgorithms.EcdsaSha384, "backend-ec384");
        var (status, body) = await auth.TokenAsync(AuthFixture.AssertionForm(assertion, "system/MedicationRequest.rs system/Patient.read"));
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Equal("system/MedicationRequest.rs system/Patient.read", body.GetProperty("scope").GetString());
    }

    /// <summary>More types, more letters, another context, or fewer restrictions than registered: refused, the scope named.</summary>
    [Theory]
    [InlineData("system/MedicationRequest.rs system/Condition.c", "system/Condition.c")]
    [InlineData("system/*.write", "system/*.write")] // v1 write = cud
    [InlineData("system/*.*", "system/*.*")]
    [InlineData("system/Task.cu", "system/Task.cu")]
    [InlineData("user/*.rs", "user/*.rs")]
    [InlineData("patient/Observation.rs", "patient/Observation.rs")]
    [InlineData("system/NotAType.rs", "system/NotAType.rs")]
    [InlineData("openid", "openid")]
    public async Task A_scope_the_registration_does_not_cover_is_invalid_scope_naming_it(string scope, string refused)
    {
        var (status, body) = await auth.TokenAsync(Form(("grant_type", "client_credentials"), ("client_id", "csapa-demo"),
            ("client_secret", "csapa-demo-secret"), ("scope", scope)));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_scope", body.GetProperty("error").GetString());
        Assert.Contains($"'{refused}'", body.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        Assert.False(body.TryGetProperty("access_token", out _));
    }

    [Fact]
    public async Task A_token_asked_for_one_type_is_refused_the_others_on_fhir()
    {
        using var narrow = auth.FhirWith(await auth.DemoTokenAsync("csapa-demo", "system/MedicationRequest.rs"));
        Assert.Equal(HttpStatusCode.OK, (await narrow.GetAsync("MedicationRequest")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await narrow.GetAsync("Condition")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await narrow.GetAsync("Patient")).StatusCode);
        // v1: read only, so no Task update although the client is registered system/Task.u.
        using var v1 = auth.FhirWith(await auth.DemoTokenAsync("csapa-demo", "system/*.read"));
        Assert.Equal(HttpStatusCode.OK, (await v1.GetAsync("Condition")).StatusCode);
        using var update = await v1.PutAsync("Task/t-scopes", FhirHttp.Json(new Hl7.Fhir.Model.Task
        {
            Id = "t-scopes", Status = Hl7.Fhir.Model.Task.TaskStatus.Requested, Intent = Hl7.Fhir.Model.Task.TaskIntent.Order,
        }));
        Assert.Equal(HttpStatusCode.Forbidden, update.StatusCode);
    }

    [Fact]
    public async Task Issued_token_is_an_at_jwt_for_the_fhir_base_with_the_caller_claims()
    {
        var token = new JsonWebToken(await auth.DemoTokenAsync("csapa-demo", "system/*.rs"));
        Assert.Equal("at+jwt", token.Typ);
        Assert.Equal(AuthFixture.Issuer, token.Issuer);
        Assert.Equal([AuthFixture.FhirBaseUrl], token.Audiences);
        Assert.True(token.ValidTo - token.IssuedAt <= TimeSpan.FromSeconds(300));
        Assert.Equal("csapa-demo", token.GetClaim("client_id").Value);
        Assert.Equal("Csapa", token.GetClaim("actor_kind").Value);
        Assert.Equal("750000028", token.GetClaim("finess").Value);
        Assert.Equal("system/*.rs", token.GetClaim("scope").Value);
        Assert.Equal(SecurityAlgorithms.RsaSha256, token.Alg);
    }

    public static TheoryData<string, string> Algorithms => new()
    {
        { "backend-rsa", SecurityAlgorithms.RsaSha384 },
        { "backend-rsa", SecurityAlgorithms.RsaSha256 },
        { "backend-ec384", SecurityAlgorithms.EcdsaSha384 },
        { "backend-ec256", SecurityAlgorithms.EcdsaSha256 },
        { "backend-url", SecurityAlgorithms.RsaSha384 },
    };

    private SecurityKey KeyOf(string client) => client switch
    {
        "backend-rsa" => auth.Rsa,
        "backend-ec384" => auth.Ec384,
        "backend-ec256" => auth.Ec256,
        "backend-url" => auth.UrlKey,
        _ => throw new ArgumentException(client),
    };

    [Theory]
    [MemberData(nameof(Algorithms))]
    public async Task Private_key_jwt_assertion_typed_JWT_gets_a_token(string client, string algorithm)
    {
        var assertion = AuthFixture.Assertion(KeyOf(client), algorithm, client);
        var (status, body) = await auth.TokenAsync(AuthFixture.AssertionForm(assertion, "system/*.rs"));
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        var token = new JsonWebToken(body.GetProperty("access_token").GetString());
        Assert.Equal(client, token.GetClaim("client_id").Value);
    }

    [Fact]
    public async Task Replayed_jti_is_refused()
    {
        var assertion = AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa");
        var (first, _) = await auth.TokenAsync(AuthFixture.AssertionForm(assertion, "system/*.rs"));
        Assert.Equal(HttpStatusCode.OK, first);
        var (second, body) = await auth.TokenAsync(AuthFixture.AssertionForm(assertion, "system/*.rs"));
        Assert.NotEqual(HttpStatusCode.OK, second);
        Assert.Equal("invalid_client", body.GetProperty("error").GetString());
    }

    /// <summary>A revocation or introspection request for <paramref name="token"/>, the client authenticated by <paramref name="assertion"/>.</summary>
    private async Task<(HttpStatusCode, string)> PostWithAssertionAsync(string path, string token, string assertion)
    {
        using var http = auth.Gateway.CreateClient();
        using var response = await http.PostAsync(path, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["token"] = token,
            ["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ["client_assertion"] = assertion,
        }));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Revocation_authenticates_a_client_assertion_before_answering()
    {
        var (_, issued) = await auth.TokenAsync(AuthFixture.AssertionForm(AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa"), "system/*.rs"));
        var token = issued.GetProperty("access_token").GetString()!;
        Task<(HttpStatusCode, string)> RevokeAsync(string assertion) => PostWithAssertionAsync(AuthorizationServer.RevokePath, token, assertion);

        // Authenticated: the client_credentials token belongs to no grant, so it is unsupported, not silently kept.
        var (status, body) = await RevokeAsync(AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("unsupported_token_type", body, StringComparison.Ordinal);
        // A forged assertion is refused as a client, whatever the token.
        var forged = new RsaSecurityKey(System.Security.Cryptography.RSA.Create(2048)) { KeyId = auth.Rsa.KeyId };
        var (refused, refusedBody) = await RevokeAsync(AuthFixture.Assertion(forged, SecurityAlgorithms.RsaSha384, "backend-rsa"));
        Assert.Equal(HttpStatusCode.Unauthorized, refused);
        Assert.Contains("invalid_client", refusedBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Introspection_with_a_client_assertion_answers_the_clients_own_tokens_only()
    {
        var (_, issued) = await auth.TokenAsync(AuthFixture.AssertionForm(AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa"), "system/*.rs"));
        var mine = issued.GetProperty("access_token").GetString()!;
        var others = await auth.DemoTokenAsync("usmp-demo", "system/*.cruds");
        async Task<(HttpStatusCode Status, JsonElement Body)> IntrospectAsync(string token, SecurityKey key, string audience = AuthFixture.TokenUrl)
        {
            var (status, body) = await PostWithAssertionAsync(AuthorizationServer.IntrospectPath, token,
                AuthFixture.Assertion(key, SecurityAlgorithms.RsaSha384, "backend-rsa", audience));
            return (status, JsonDocument.Parse(body).RootElement.Clone());
        }

        var (status, active) = await IntrospectAsync(mine, auth.Rsa);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(active.GetProperty("active").GetBoolean(), active.ToString());
        Assert.Equal("backend-rsa", active.GetProperty("client_id").GetString());
        Assert.Equal("system/*.rs", active.GetProperty("scope").GetString());
        Assert.False((await IntrospectAsync(others, auth.Rsa)).Body.GetProperty("active").GetBoolean());
        // The assertion may name the endpoint it is sent to instead of the token endpoint, not another one.
        Assert.True((await IntrospectAsync(mine, auth.Rsa, audience: "http://localhost/auth/introspect")).Body.GetProperty("active").GetBoolean());
        Assert.Equal(HttpStatusCode.Unauthorized, (await IntrospectAsync(mine, auth.Rsa, audience: "http://localhost/auth/revoke")).Status);
        var forged = new RsaSecurityKey(System.Security.Cryptography.RSA.Create(2048)) { KeyId = auth.Rsa.KeyId };
        var (refused, refusedBody) = await IntrospectAsync(mine, forged);
        Assert.Equal(HttpStatusCode.Unauthorized, refused);
        Assert.Equal("invalid_client", refusedBody.GetProperty("error").GetString());
    }

    public static TheoryData<string> BadAssertions => ["wrong aud", "expired", "exp too far", "wrong iss", "wrong sub", "unknown kid", "bad signature", "no jti", "HS256", "unknown client"];

    [Theory]
    [MemberData(nameof(BadAssertions))]
    public async Task Bad_client_assertion_is_invalid_client(string defect)
    {
        var other = new RsaSecurityKey(System.Security.Cryptography.RSA.Create(2048)) { KeyId = auth.Rsa.KeyId };
        var assertion = defect switch
        {
            "wrong aud" => AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa", audience: AuthFixture.Issuer),
            "expired" => AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa", expiresIn: TimeSpan.FromMinutes(-2), notBefore: DateTime.UtcNow.AddMinutes(-5)),
            "exp too far" => AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa", expiresIn: TimeSpan.FromMinutes(30)),
            "wrong iss" => AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa", issuer: "backend-ec384"),
            "wrong sub" => AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "backend-rsa", subject: "backend-ec384"),
            "unknown kid" => AuthFixture.Assertion(new RsaSecurityKey(auth.Rsa.Rsa) { KeyId = "nobody" }, SecurityAlgorithms.RsaSha384, "backend-rsa"),
            "bad signature" => AuthFixture.Assertion(other, SecurityAlgorithms.RsaSha384, "backend-rsa"),
            "no jti" => WithoutJti(),
            "HS256" => AuthFixture.Assertion(new SymmetricSecurityKey(new byte[32]) { KeyId = auth.Rsa.KeyId }, SecurityAlgorithms.HmacSha256, "backend-rsa"),
            "unknown client" => AuthFixture.Assertion(auth.Rsa, SecurityAlgorithms.RsaSha384, "nobody"),
            _ => throw new ArgumentException(defect),
        };
        var (status, body) = await auth.TokenAsync(AuthFixture.AssertionForm(assertion, "system/*.rs"));
        Assert.NotEqual(HttpStatusCode.OK, status);
        Assert.Contains(body.GetProperty("error").GetString(), new[] { "invalid_client", "invalid_grant", "invalid_request" });
        Assert.False(body.TryGetProperty("access_token", out _));

        string WithoutJti()
        {
            var descriptor = new SecurityTokenDescriptor
            {
                Issuer = "backend-rsa", Audience = AuthFixture.TokenUrl, Expires = DateTime.UtcNow.AddMinutes(4),
                Claims = new Dictionary<string, object> { ["sub"] = "backend-rsa" },
                SigningCredentials = new SigningCredentials(auth.Rsa, SecurityAlgorithms.RsaSha384), TokenType = "JWT",
            };
            return new JsonWebTokenHandler().CreateToken(descriptor);
        }
    }

    [Fact]
    public async Task Assertion_scope_outside_the_allowed_scopes_is_invalid_scope()
    {
        var assertion = AuthFixture.Assertion(auth.Ec384, SecurityAlgorithms.EcdsaSha384, "backend-ec384");
        var (status, body) = await auth.TokenAsync(AuthFixture.AssertionForm(assertion, "system/*.cruds"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_scope", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Token_requests_granted_or_refused_are_Login_AuditEvents_naming_the_client_and_never_its_secret()
    {
        var since = DateTimeOffset.UtcNow.AddSeconds(-1).ToString("yyyy-MM-ddTHH:mm:ssK", System.Globalization.CultureInfo.InvariantCulture).Replace("+", "%2B", StringComparison.Ordinal);
        var ghost = "ghost-" + Guid.NewGuid().ToString("N");
        var guessed = "guessed-" + Guid.NewGuid().ToString("N");
        await auth.DemoTokenAsync("act-demo", "system/*.rs");
        var (unknown, _) = await auth.TokenAsync(Form(("grant_type", "client_credentials"), ("client_id", ghost), ("client_secret", guessed), ("scope", "system/*.rs")));
        Assert.NotEqual(HttpStatusCode.OK, unknown);
        // An assertion signed with a key that is not backend-rsa's: refused, and recorded under the client it claims.
        var forged = AuthFixture.Assertion(auth.Ec256, SecurityAlgorithms.EcdsaSha256, "backend-rsa");
        var (forgedStatus, _) = await auth.TokenAsync(AuthFixture.AssertionForm(forged, "system/*.rs"));
        Assert.NotEqual(HttpStatusCode.OK, forgedStatus);

        var granted = await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|act-demo&subtype={Dicom}|110122&date=ge{since}");
        var refused = Assert.Single(await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|{ghost}"));
        var forgery = await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|backend-rsa&outcome=4&date=ge{since}");

        Assert.NotEmpty(granted);
        foreach (var record in granted)
        {
            Assert.Equal("110122 0 permitted: token issued (client_credentials)", Summary(record));
            Assert.Equal((Dicom, "110114"), (record.Type!.System, record.Type.Code));
            Assert.Equal(Hl7.Fhir.Model.AuditEvent.AuditEventAction.E, record.Action);
            Assert.Equal("Act", record.Agent[0].Who!.Display);
            Assert.Equal("750000044", record.Agent[1].Who!.Identifier!.Value);
        }
        Assert.StartsWith("110122 4 denied: invalid_client", Summary(refused), StringComparison.Ordinal);
        // Not authenticated: no kind, no organisation, and nothing of what it sent but the name it claimed.
        Assert.Null(Assert.Single(refused.Agent).Who!.Display);
        Assert.Empty(refused.Entity);
        Assert.DoesNotContain(guessed, JsonOf(refused), StringComparison.Ordinal);
        Assert.Contains(forgery, r => Summary(r).StartsWith("110122 4 denied: invalid_client", StringComparison.Ordinal));
        Assert.DoesNotContain(forgery, r => JsonOf(r).Contains(forged, StringComparison.Ordinal));
        // type and subtype tell these records from the FHIR interactions' ones.
        Assert.Single(await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|{ghost}&type={Dicom}|110114"));
        Assert.Single(await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|{ghost}&subtype=110122"));
        Assert.Empty(await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|{ghost}&type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest"));
        Assert.Empty(await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|{ghost}&subtype=http://hl7.org/fhir/restful-interaction|110122"));
        Assert.Empty(await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|{ghost}&subtype:not={Dicom}|110122"));
        Assert.Empty(await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|{ghost}&type={Dicom}|110153"));
    }

    [Fact]
    public async Task A_claimed_client_id_is_cut_in_the_record()
    {
        var padded = "pad-" + Guid.NewGuid().ToString("N") + new string('x', 5_000);
        var (status, _) = await auth.TokenAsync(Form(("grant_type", "client_credentials"), ("client_id", padded), ("client_secret", "s"), ("scope", "system/*.rs")));
        Assert.NotEqual(HttpStatusCode.OK, status);
        var cut = padded[..Server.Audit.AuthenticationAudit.MaxClaimedClientId] + "…";
        var record = Assert.Single(await auth.Gateway.AuditEventsAsync($"agent:identifier={ClientIds}|{Uri.EscapeDataString(cut)}"));
        Assert.Equal(cut, record.Agent[0].Who!.Identifier!.Value);
    }

    [Fact]
    public async Task Jwks_endpoint_publishes_the_key_that_signs_tokens()
    {
        var token = new JsonWebToken(await auth.DemoTokenAsync("usmp-demo", "system/*.cruds"));
        using var http = auth.Gateway.CreateClient();
        var jwks = new JsonWebKeySet(await http.GetStringAsync("/auth/jwks"));
        Assert.Contains(jwks.Keys, k => k.Kid == token.Kid && !k.HasPrivateKey);
    }

    [Fact]
    public async Task Openid_configuration_names_our_endpoints()
    {
        using var http = auth.Gateway.CreateClient();
        using var document = JsonDocument.Parse(await http.GetStringAsync("/.well-known/openid-configuration"));
        Assert.Equal(AuthFixture.TokenUrl, document.RootElement.GetProperty("token_endpoint").GetString());
        Assert.Equal(["S256"], document.RootElement.GetProperty("code_challenge_methods_supported").EnumerateArray().Select(e => e.GetString()));
    }
}

public sealed class SqliteTokenEndpointTests(SqliteAuthFixture auth) : TokenEndpointTests(auth), IClassFixture<SqliteAuthFixture>;

public sealed class PostgresTokenEndpointTests(PostgresAuthFixture auth) : TokenEndpointTests(auth), IClassFixture<PostgresAuthFixture>;
