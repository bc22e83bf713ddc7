using System.Net.Http.Headers;
using System.Text;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Mvc.Testing;
using Npgsql;

namespace FhirSortie.Tests;

/// <summary>
/// The gateway hosted in-process on a fresh database: SQLite in a temp folder, or a fresh database on the
/// throwaway PostgreSQL cluster that test.sh starts (FHIRSORTIE_TEST_POSTGRES).
/// </summary>
public abstract class Gateway : WebApplicationFactory<Program>
{
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "fhirsortie-tests", Guid.NewGuid().ToString("N"));

    protected abstract Dictionary<string, string?> StorageSettings(string dataDirectory);

    public Dictionary<string, string?> Settings { get; } = [];

    /// <summary>
    /// False (the default): requests authenticate with <see cref="TestAuthenticationHandler"/> (full access unless
    /// the X-Test-Caller header says otherwise). True: the gateway's real token validation, for token tests.
    /// </summary>
    public bool UseRealAuthentication { get; init; }

    /// <summary>Services a test adds or replaces after the gateway's own (e.g. an in-memory span exporter).</summary>
    public Action<IServiceCollection>? TestServices { get; init; }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        foreach (var (key, value) in StorageSettings(_dataDirectory)) builder.UseSetting(key, value);
        foreach (var (key, value) in Settings) builder.UseSetting(key, value);
        builder.UseSetting("Serilog:MinimumLevel:Default", "Warning");
        if (TestServices is { } testServices) builder.ConfigureTestServices(testServices);
        if (!UseRealAuthentication)
        {
            builder.ConfigureTestServices(services =>
            {
                services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, TestAuthenticationHandler>(TestAuthenticationHandler.SchemeName, null);
                services.PostConfigure<AuthenticationOptions>(options =>
                {
                    options.DefaultScheme = TestAuthenticationHandler.SchemeName;
                    options.DefaultAuthenticateScheme = TestAuthenticationHandler.SchemeName;
                    options.DefaultChallengeScheme = TestAuthenticationHandler.SchemeName;
                    options.DefaultForbidScheme = TestAuthenticationHandler.SchemeName;
                });
            });
        }
    }

    /// <summary>A FHIR client acting as the caller that <paramref name="testCaller"/> describes (see TestAuthenticationHandler.Describe).</summary>
    public HttpClient Fhir(string testCaller)
    {
        var client = Fhir();
        client.DefaultRequestHeaders.Add(TestAuthenticationHandler.Header, testCaller);
        return client;
    }

    public HttpClient Fhir()
    {
        var client = CreateClient(new WebApplicationFactoryClientOptions { BaseAddress = new Uri("http://localhost/fhir/"), AllowAutoRedirect = false });
        client.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        return client;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public sealed class SqliteGateway : Gateway
{
    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Sqlite",
        ["FhirSortie:DataDirectory"] = dataDirectory,
    };
}

public sealed class PostgresGateway : Gateway
{
    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Postgres",
        ["FhirSortie:Storage:ConnectionString"] = TestPostgres.CreateDatabase(),
    };
}

/// <summary>Creates one database per gateway on the cluster started by test.sh.</summary>
public static class TestPostgres
{
    public const string Variable = "FHIRSORTIE_TEST_POSTGRES";

    public static string ServerConnectionString =>
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException(
                $"{Variable} is not set: PostgreSQL tests need the throwaway cluster that ./test.sh starts. Run ./test.sh (it runs every test).");

    public static string CreateDatabase()
    {
        var name = "fs_" + Guid.NewGuid().ToString("N")[..16];
        using (var connection = new NpgsqlConnection(ServerConnectionString))
        {
            connection.Open();
            using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            cmd.ExecuteNonQuery();
        }
        return new NpgsqlConnectionStringBuilder(ServerConnectionString) { Database = name }.ToString();
    }
}

/// <summary>Helpers to send and read FHIR resources as a client would.</summary>
public static class FhirHttp
{
    private static readonly FhirJsonDeserializer Strict = new(new DeserializerSettings());
    private static readonly BaseFhirJsonSerializer Serializer = new(ModelInfo.ModelInspector);

    public static StringContent Json(Resource resource) =>
        new(Serializer.SerializeToString(resource), Encoding.UTF8, "application/fhir+json");

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/fhir+json");

    public static async Task<T> ReadAs<T>(this HttpResponseMessage response) where T : Resource
    {
        var body = await response.Content.ReadAsStringAsync();
        return (T)Strict.DeserializeResource(body);
    }
}
