using System.Net;
using System.Security.Claims;
using System.Text;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Tests.Security;

/// <summary>
/// The node's memory of validated access tokens (ValidatedTokens): a repeated token is not validated again, yet every
/// refusal the full validation gives still happens: tampered copies, expiry, retired signing keys.
/// Each dialect gets its own gateway, since these tests rotate and retire keys.
/// </summary>
public abstract class ValidatedTokenTests(AuthFixture auth)
{
    private ValidatedTokens Remembered => auth.Gateway.Services.GetRequiredService<ValidatedTokens>();

    private async Task<HttpStatusCode> ReadWithAsync(string token)
    {
        using var fhir = auth.FhirWith(token);
        using var response = await fhir.GetAsync("Patient");
        return response.StatusCode;
    }

    private string OwnToken(DateTime expires)
    {
        var keys = auth.Gateway.Services.GetRequiredService<SigningKeyStore>().Current;
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = AuthFixture.Issuer,
            Audience = AuthFixture.FhirBaseUrl,
            IssuedAt = expires.AddMinutes(-5), NotBefore = expires.AddMinutes(-5), Expires = expires,
            TokenType = "at+jwt",
            Claims = new Dictionary<string, object>
            {
                ["sub"] = "usmp-demo", ["client_id"] = "usmp-demo", ["actor_kind"] = "Usmp", ["finess"] = "750000010", ["scope"] = "system/*.cruds",
            },
            SigningCredentials = keys.SigningCredentials,
        });
    }

    [Fact]
    public async Task Repeated_token_is_accepted_every_time_and_validated_once()
    {
        var token = await auth.DemoTokenAsync("usmp-demo", "system/*.cruds");
        var before = Remembered.Count;
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(token));
        Assert.Equal(before + 1, Remembered.Count);
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(token));
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(token));
        Assert.Equal(before + 1, Remembered.Count);
    }

    [Fact]
    public async Task Remembered_token_keeps_its_scopes()
    {
        var readOnly = await auth.DemoTokenAsync("csapa-demo", "system/*.rs");
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(readOnly));
            using var fhir = auth.FhirWith(readOnly);
            using var create = await fhir.PostAsync("Patient", FhirHttp.Json(new Hl7.Fhir.Model.Patient { Name = [new Hl7.Fhir.Model.HumanName { Family = "Lecture" }] }));
            Assert.Equal(HttpStatusCode.Forbidden, create.StatusCode);
        }
    }

    [Fact]
    public async Task Tampered_copy_of_an_accepted_token_gets_401()
    {
        var token = await auth.DemoTokenAsync("csapa-demo", "system/*.rs");
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(token));
        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("system/*.rs", "system/*.cruds", StringComparison.Ordinal);
        var tampered = parts[0] + "." + Base64UrlEncoder.Encode(Encoding.UTF8.GetBytes(payload)) + "." + parts[2];
        Assert.Equal(HttpStatusCode.Unauthorized, await ReadWithAsync(tampered));
        // A signature changed in its last character is another token too.
        var lastChar = token[^1] == 'A' ? 'B' : 'A';
        Assert.Equal(HttpStatusCode.Unauthorized, await ReadWithAsync(token[..^1] + lastChar));
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(token));
    }

    [Fact]
    public async Task Accepted_token_gets_401_once_it_has_expired()
    {
        // Expired 26 s ago: still inside the 30 s clock skew, so accepted (and remembered) for about 4 more seconds.
        var token = OwnToken(DateTime.UtcNow - FhirBearerHandler.ClockSkew + TimeSpan.FromSeconds(4));
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(token));
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.Unauthorized, await ReadWithAsync(token));
    }

    [Fact]
    public async Task Accepted_token_gets_401_once_its_signing_key_is_retired()
    {
        var keys = auth.Gateway.Services.GetRequiredService<SigningKeyStore>();
        var old = await auth.DemoTokenAsync("usmp-demo", "system/*.cruds");
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(old));
        await keys.RotateAsync(SigningKeyStore.Sign, CancellationToken.None);
        var fresh = await auth.DemoTokenAsync("usmp-demo", "system/*.cruds");
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(old));
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(fresh));

        await keys.RetireAsync(new JsonWebToken(old).Kid, CancellationToken.None);

        using var fhir = auth.FhirWith(old);
        using var refused = await fhir.GetAsync("Patient");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("unknown key", refused.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, await ReadWithAsync(fresh));
    }
}

public sealed class SqliteValidatedTokenFixture() : AuthFixture(new SqliteGateway { UseRealAuthentication = true });

public sealed class PostgresValidatedTokenFixture() : AuthFixture(new PostgresGateway { UseRealAuthentication = true });

public sealed class SqliteValidatedTokenTests(SqliteValidatedTokenFixture auth) : ValidatedTokenTests(auth), IClassFixture<SqliteValidatedTokenFixture>;

public sealed class PostgresValidatedTokenTests(PostgresValidatedTokenFixture auth) : ValidatedTokenTests(auth), IClassFixture<PostgresValidatedTokenFixture>;

/// <summary>The cache and the key reload on their own, with a clock the tests move.</summary>
public sealed class ValidatedTokensUnitTests : IDisposable
{
    private readonly MovableClock _clock = new();
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "fhirsortie-tests", Guid.NewGuid().ToString("N"));

    private static ClaimsIdentity Identity(string client) =>
        new([new Claim("client_id", client), new Claim("actor_kind", "Usmp")], FhirBearerHandler.SchemeName);

    private static Caller Caller(string client) => new(client, ActorKind.Usmp, "750000010", ["system/*.cruds"], null, null);

    private static SigningKeyStore.KeySet KeysWith(params string[] kids) =>
        new([.. kids.Select(kid => new RsaSecurityKey(System.Security.Cryptography.RSA.Create(2048)) { KeyId = kid })], []);

    [Fact]
    public void Remembered_token_is_found_only_for_its_issuer_audience_and_a_loaded_key()
    {
        var tokens = new ValidatedTokens(_clock);
        tokens.Add("token-a", "http://localhost/", "http://localhost/fhir", "k1", _clock.Now.AddMinutes(5), Identity("a"), Caller("a"));
        var keys = KeysWith("k1", "k2");
        Assert.Equal("a", tokens.Find("token-a", "http://localhost/", "http://localhost/fhir", keys)?.Identity.FindFirst("client_id")?.Value);
        Assert.Null(tokens.Find("token-b", "http://localhost/", "http://localhost/fhir", keys));
        Assert.Null(tokens.Find("token-a", "http://other/", "http://localhost/fhir", keys));
        Assert.Null(tokens.Find("token-a", "http://localhost/", "http://other/fhir", keys));
        Assert.Null(tokens.Find("token-a", "http://localhost/", "http://localhost/fhir", KeysWith("k2")));
        // Dropped once its key was missing: not found again even with the key back.
        Assert.Null(tokens.Find("token-a", "http://localhost/", "http://localhost/fhir", keys));
    }

    [Fact]
    public void Every_hit_gets_its_own_identity()
    {
        var tokens = new ValidatedTokens(_clock);
        tokens.Add("token-a", "i", "a", "k1", _clock.Now.AddMinutes(5), Identity("a"), Caller("a"));
        var first = tokens.Find("token-a", "i", "a", KeysWith("k1"))!;
        first.Identity.AddClaim(new Claim("added", "by a request"));
        Assert.Null(tokens.Find("token-a", "i", "a", KeysWith("k1"))!.Identity.FindFirst("added"));
    }

    [Fact]
    public void Remembered_token_expires_with_the_token_plus_the_clock_skew()
    {
        var tokens = new ValidatedTokens(_clock);
        var keys = KeysWith("k1");
        tokens.Add("token-a", "i", "a", "k1", _clock.Now.AddMinutes(1), Identity("a"), Caller("a"));
        _clock.Now += TimeSpan.FromMinutes(1) + FhirBearerHandler.ClockSkew - TimeSpan.FromSeconds(1);
        Assert.NotNull(tokens.Find("token-a", "i", "a", keys));
        _clock.Now += TimeSpan.FromSeconds(1);
        Assert.Null(tokens.Find("token-a", "i", "a", keys));
        Assert.Equal(0, tokens.Count);
    }

    [Fact]
    public void Full_cache_makes_room_from_expired_entries_and_otherwise_remembers_nothing_more()
    {
        var tokens = new ValidatedTokens(_clock);
        var keys = KeysWith("k1");
        for (var i = 0; i < ValidatedTokens.MaxEntries / 2; i++) tokens.Add($"short-{i}", "i", "a", "k1", _clock.Now.AddMinutes(1), Identity("a"), Caller("a"));
        for (var i = 0; i < ValidatedTokens.MaxEntries - ValidatedTokens.MaxEntries / 2; i++) tokens.Add($"long-{i}", "i", "a", "k1", _clock.Now.AddMinutes(5), Identity("a"), Caller("a"));
        Assert.Equal(ValidatedTokens.MaxEntries, tokens.Count);
        tokens.Add("one-too-many", "i", "a", "k1", _clock.Now.AddMinutes(5), Identity("a"), Caller("a"));
        Assert.Null(tokens.Find("one-too-many", "i", "a", keys));
        Assert.Equal(ValidatedTokens.MaxEntries, tokens.Count);

        _clock.Now += TimeSpan.FromMinutes(2);
        tokens.Add("after-expiry", "i", "a", "k1", _clock.Now.AddMinutes(5), Identity("a"), Caller("a"));
        Assert.NotNull(tokens.Find("after-expiry", "i", "a", keys));
        Assert.Equal(ValidatedTokens.MaxEntries - ValidatedTokens.MaxEntries / 2 + 1, tokens.Count);
    }

    [Fact]
    public async Task Key_retired_by_another_node_is_dropped_here_within_the_refresh_interval()
    {
        var dialect = new SqliteDialect(_folder);
        await Migrator.MigrateAsync(dialect, NullLogger.Instance, CancellationToken.None);
        var nodeA = new SigningKeyStore(dialect, _clock, NullLogger<SigningKeyStore>.Instance);
        var nodeB = new SigningKeyStore(dialect, _clock, NullLogger<SigningKeyStore>.Instance);
        await nodeA.InitializeAsync(CancellationToken.None);
        await nodeB.InitializeAsync(CancellationToken.None);
        var oldKid = nodeA.Current.Signing[0].KeyId;
        await nodeA.RotateAsync(SigningKeyStore.Sign, CancellationToken.None);
        await nodeA.RetireAsync(oldKid, CancellationToken.None);

        Assert.DoesNotContain(nodeA.Current.Signing, k => k.KeyId == oldKid);
        // Node B has not looked yet: it still holds the key until its keys are older than the refresh interval.
        Assert.Contains((await nodeB.RefreshedAsync(CancellationToken.None)).Signing, k => k.KeyId == oldKid);
        _clock.Advance(SigningKeyStore.RefreshInterval);
        Assert.DoesNotContain((await nodeB.RefreshedAsync(CancellationToken.None)).Signing, k => k.KeyId == oldKid);
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
