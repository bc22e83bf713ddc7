namespace FhirSortie.Server;

/// <summary>Configuration section "FhirSortie".</summary>
public sealed class FhirSortieOptions
{
    public const string Section = "FhirSortie";

    /// <summary>Folder of the embedded SQLite database (env FhirSortie__DataDirectory).</summary>
    public string DataDirectory { get; set; } = "./data";

    public StorageOptions Storage { get; set; } = new();

    /// <summary>Requests with a larger body get 413 with an OperationOutcome.</summary>
    public long MaxRequestBodyBytes { get; set; } = 16 * 1024 * 1024;

    public int DefaultPageSize { get; set; } = 20;

    public int MaxPageSize { get; set; } = 1000;

    /// <summary>How long a paged search result set is kept for next/previous links.</summary>
    public int SearchResultLifetimeMinutes { get; set; } = 60;

    /// <summary>
    /// Base URL that clients see, e.g. behind a load balancer ("https://fhirsortie.example.fr/fhir").
    /// When empty it is taken from the request.
    /// </summary>
    public string? PublicBaseUrl { get; set; }
}

public sealed class StorageOptions
{
    /// <summary>"Sqlite" (default, embedded) or "Postgres".</summary>
    public string Provider { get; set; } = "Sqlite";

    /// <summary>Npgsql connection string when Provider is Postgres.</summary>
    public string? ConnectionString { get; set; }
}
