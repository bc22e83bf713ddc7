#nullable disable warnings
using System.Net;
using System.Net.Http.Headers;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Search;

/// <summary>Domain vocabulary for search tests, and helpers that create and search as a client would.</summary>
public static class Domain
{
    public const string Ins = "urn:oid:1.2.250.1.213.1.4.8";
    public const string Finess = "https://finess.esante.gouv.fr";
    public const string Atc = "http://www.whocc.no/atc";
    public const string Loinc = "http://loinc.org";
    public const string Ucum = "http://unitsofmeasure.org";
    public const string RunTag = "urn:fhirsortie:test-run";

    /// <summary>A tag unique to one test, so totals only count that test's resources on the shared database.</summary>
    public static string NewRun() => Guid.NewGuid().ToString("N")[..12];

    public static Meta Tagged(string run) => new() { Tag = [new Coding(RunTag, run)] };

    public static Patient Patient(string run, string ins, string family, string given = "Marie", string birthDate = "1980-02-14") => new()
    {
        Meta = Tagged(run),
        Identifier = [new Identifier(Ins, ins)],
        Name = [new HumanName { Family = family, Given = [given] }],
        BirthDate = birthDate,
    };

    public static MedicationRequest Buprenorphine(string run, string patientId, decimal intervalDays = 1) => new()
    {
        Meta = Tagged(run),
        Status = MedicationRequest.MedicationrequestStatus.Active,
        Intent = MedicationRequest.MedicationRequestIntent.Order,
        Medication = new CodeableConcept(Atc, "N07BC01", "buprénorphine"),
        Subject = new ResourceReference($"Patient/{patientId}"),
        AuthoredOn = "2026-11-02",
        DispenseRequest = new MedicationRequest.DispenseRequestComponent
        {
            DispenseInterval = new Duration { Value = intervalDays, Unit = "d", System = Ucum, Code = "d" },
        },
    };
}

/// <summary>A gateway whose access filter is set by test-only request headers (the seam security will fill from tokens).</summary>
public abstract class FilteredGateway : Gateway
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services => services.AddSingleton<AccessFilterResolver>(context =>
        {
            var headers = context.Request.Headers;
            HashSet<string>? patients = headers.TryGetValue("X-Test-Patients", out var p) ? [.. p.ToString().Split(',')] : null;
            HashSet<string>? types = headers.TryGetValue("X-Test-Types", out var t) ? [.. t.ToString().Split(',')] : null;
            List<(string, string)>? denied = headers.TryGetValue("X-Test-Deny-Label", out var d)
                ? [(d.ToString().Split('|')[0], d.ToString().Split('|')[1])]
                : null;
            return new AccessFilter(types, patients, denied);
        }));
    }
}

public sealed class FilteredSqliteGateway : FilteredGateway
{
    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Sqlite",
        ["FhirSortie:DataDirectory"] = dataDirectory,
    };
}

public sealed class FilteredPostgresGateway : FilteredGateway
{
    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Postgres",
        ["FhirSortie:Storage:ConnectionString"] = TestPostgres.CreateDatabase(),
    };
}

public static class SearchHttp
{
    public static async Task<T> CreateAsync<T>(this HttpClient fhir, T resource) where T : Resource
    {
        var response = await fhir.PostAsync(resource.TypeName, FhirHttp.Json(resource));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return await response.ReadAs<T>();
    }

    public static async Task<Bundle> SearchAsync(this HttpClient fhir, string url, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        var response = await fhir.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {url} returned {(int)response.StatusCode}: {body}");
        return await response.ReadAs<Bundle>();
    }

    public static async Task<OperationOutcome> SearchFailsAsync(this HttpClient fhir, string url, HttpStatusCode expected, string? prefer = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (prefer is not null) request.Headers.TryAddWithoutValidation("Prefer", prefer);
        var response = await fhir.SendAsync(request);
        Assert.Equal(expected, response.StatusCode);
        return await response.ReadAs<OperationOutcome>();
    }

    public static List<string> Matches(this Bundle bundle) =>
        bundle.Entry.Where(e => e.Search?.Mode == Bundle.SearchEntryMode.Match).Select(e => e.Resource.Id).ToList();

    public static List<string> Included(this Bundle bundle) =>
        bundle.Entry.Where(e => e.Search?.Mode == Bundle.SearchEntryMode.Include).Select(e => $"{e.Resource.TypeName}/{e.Resource.Id}").ToList();

    public static string? Link(this Bundle bundle, string relation) => bundle.Link.FirstOrDefault(l => l.Relation == relation)?.Url;

    /// <summary>A paging link is absolute; the test client's base address is http://localhost/fhir/.</summary>
    public static string Relative(string absolute) => absolute[absolute.IndexOf("/fhir", StringComparison.Ordinal)..].Replace("/fhir?", "/fhir/?", StringComparison.Ordinal);

    public static MediaTypeWithQualityHeaderValue Json => new("application/fhir+json");
}
