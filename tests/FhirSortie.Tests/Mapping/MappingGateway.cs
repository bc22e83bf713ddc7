using System.Text;

namespace FhirSortie.Tests.Mapping;

/// <summary>
/// The gateway with the mapping settings these tests exercise: a small CDA size limit (so "too large" is cheap to
/// send) and one local identifier system mapped to RPPS, as a site would configure for its USMP software.
/// </summary>
public static class MappingSettings
{
    public const long MaxCdaBytes = 64 * 1024;
    public const string LocalRppsSystem = "https://logiciel-usmp.example.fr/identifiants/rpps";

    public static void Apply(Dictionary<string, string?> settings)
    {
        settings["FhirSortie:Mapping:MaxCdaBytes"] = MaxCdaBytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["FhirSortie:Mapping:IdentifierSystems:0:Local"] = LocalRppsSystem;
        settings["FhirSortie:Mapping:IdentifierSystems:0:National"] = "https://rpps.esante.gouv.fr";
    }

    /// <summary>The CDA documents of tests/FhirSortie.Tests/Mapping/cda, found from the test binary up to the repository.</summary>
    public static byte[] Cda(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var file = Path.Combine(dir.FullName, "tests", "FhirSortie.Tests", "Mapping", "cda", name);
            if (File.Exists(file)) return File.ReadAllBytes(file);
        }
        throw new FileNotFoundException($"Test CDA document {name} not found above {AppContext.BaseDirectory}.");
    }

    public static ByteArrayContent CdaContent(byte[] body, string mediaType = "application/hl7-cda+xml")
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(mediaType);
        return content;
    }

    public static byte[] Replace(byte[] document, string from, string to) =>
        Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(document).Replace(from, to, StringComparison.Ordinal));
}

public sealed class SqliteMappingGateway : Gateway
{
    public SqliteMappingGateway() => MappingSettings.Apply(Settings);

    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Sqlite",
        ["FhirSortie:DataDirectory"] = dataDirectory,
    };
}

public sealed class PostgresMappingGateway : Gateway
{
    public PostgresMappingGateway() => MappingSettings.Apply(Settings);

    protected override Dictionary<string, string?> StorageSettings(string dataDirectory) => new()
    {
        ["FhirSortie:Storage:Provider"] = "Postgres",
        ["FhirSortie:Storage:ConnectionString"] = TestPostgres.CreateDatabase(),
    };
}
