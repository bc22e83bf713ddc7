using System.Text.Json;
using System.Text.Json.Serialization;
using FhirSortie.Server.Security;

namespace FhirSortie.Server.Export;

/// <summary>The three kick-off levels of FHIR Bulk Data Access 2.0.</summary>
public enum ExportLevel { System, Patient, Group }

/// <summary>
/// What an export was asked for, decided and checked at kick-off and stored with the job (export_jobs.spec), so that
/// whichever node runs it runs the same thing for the same caller. The caller's access is decided again when it runs
/// (consent as the database says then), never stored as a filter.
/// </summary>
/// <param name="Types">The types to export, in order (one output file each, when it holds anything).</param>
/// <param name="TypeFilters">Per type, the _typeFilter queries (OR); a type without any exports all it may.</param>
/// <param name="Members">Group level: the Patient ids of the Group's members.</param>
/// <param name="RequestUrl">The kick-off URL (the manifest's <c>request</c>).</param>
/// <param name="Query">The kick-off query string, for the audit records.</param>
public sealed record ExportSpec(
    Caller Caller,
    ExportLevel Level,
    string? GroupId,
    IReadOnlyList<string> Types,
    DateTimeOffset? Since,
    IReadOnlyDictionary<string, List<List<KeyValuePair<string, string>>>> TypeFilters,
    IReadOnlyList<string> Members,
    string RequestUrl,
    string BaseUrl,
    string? Query)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static ExportSpec FromJson(string json) => JsonSerializer.Deserialize<ExportSpec>(json, Json) ?? throw new InvalidOperationException("empty export spec");
}
