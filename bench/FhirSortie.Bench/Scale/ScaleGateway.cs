extern alias server;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace FhirSortie.Bench.Scale;

/// <summary>
/// The whole gateway in-process (the real Program on a TestServer, Production settings) on the scale data set's
/// storage: a SQLite data folder, or a PostgreSQL connection string ("Host=..."). Every write of the loader goes
/// through it as a client's request would: token, access point, profiles, consent write hook and grants, hand-off
/// state machine, Provenance, audit record. No socket: the loader's CPU goes to the gateway, not to HTTP framing.
/// </summary>
public sealed class ScaleGateway(string storage, string dataDirectory) : WebApplicationFactory<server::Program>
{
    public static bool IsPostgres(string storage) => storage.StartsWith("Host=", StringComparison.Ordinal);

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        builder.UseContentRoot(Path.Combine(Repository.Root(), "src", "FhirSortie.Server"));
        builder.UseSetting("FhirSortie:DataDirectory", dataDirectory);
        if (IsPostgres(storage))
        {
            builder.UseSetting("FhirSortie:Storage:Provider", "Postgres");
            builder.UseSetting("FhirSortie:Storage:ConnectionString", storage);
        }
        else
        {
            builder.UseSetting("FhirSortie:Storage:Provider", "Sqlite");
        }
        foreach (var (key, value) in ScaleWorld.ClientSettings()) builder.UseSetting(key, value);
        // One console line per request would be most of the loader's output and some of its CPU.
        builder.UseSetting("Serilog:MinimumLevel:Default", "Warning");
    }

    /// <summary>A FHIR client of the gateway authenticated as <paramref name="client"/> (a real client_credentials token).</summary>
    public HttpClient Client(string client, string scope)
    {
        var http = new HttpClient(new BenchToken("http://localhost/fhir", Server.CreateHandler(), ScaleWorld.Credentials(client), scope))
        {
            BaseAddress = new Uri("http://localhost/fhir/"),
            Timeout = TimeSpan.FromMinutes(5),
        };
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        return http;
    }
}
