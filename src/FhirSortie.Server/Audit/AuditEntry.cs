using System.Text.Json;
using System.Text.Json.Serialization;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;

namespace FhirSortie.Server.Audit;

/// <summary>
/// One audited interaction as stored in the audit store (audit_events.entry): a small JSON row, cheap to write on the
/// request path; the AuditEvent is built from it when it is read (<see cref="AuditEventRows.Json"/>, the shape of
/// <see cref="AuditRecords.Interaction"/>). <see cref="Id"/> is that AuditEvent's id, fixed when the row is written.
/// </summary>
public sealed record AuditEntry
{
    public required string Id { get; init; }
    /// <summary>Unix ms.</summary>
    public required long Recorded { get; init; }
    /// <summary>restful-interaction code (read, search-type, create, transaction...).</summary>
    public required string Interaction { get; init; }
    /// <summary>The HTTP status the client got.</summary>
    public required int Status { get; init; }
    public string? ClientId { get; init; }
    public string? Kind { get; init; }
    public string? Finess { get; init; }
    public string? User { get; init; }
    public string Purpose { get; init; } = "TREAT";
    public string? BreakGlassReason { get; init; }
    /// <summary>The access decision, when one was taken: permitted or not, why, under which consent.</summary>
    public bool? Permitted { get; init; }
    public string? Reason { get; init; }
    public bool BreakGlass { get; init; }
    public string? ConsentId { get; init; }
    /// <summary>The query string of a search.</summary>
    public string? Query { get; init; }
    /// <summary>"Type/id" or "Type/id/_history/v" of the resources read or written.</summary>
    public List<string> Entities { get; init; } = [];
    public List<string> Patients { get; init; } = [];
    /// <summary>
    /// The client's IP address as this node saw it: the connection's peer, or the client a trusted proxy names in
    /// X-Forwarded-For (FhirSortie:ForwardedHeaders). Null for what the gateway does on its own (notification delivery).
    /// </summary>
    public string? Address { get; init; }

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static AuditEntry Of(Caller? caller, string interaction, int status, DateTimeOffset recorded, AuditNote note, string? query, string? address = null) => new()
    {
        Address = address,
        Id = Rest.FhirRequest.NewId(),
        Recorded = recorded.ToUnixTimeMilliseconds(),
        Interaction = interaction,
        Status = status,
        ClientId = caller?.ClientId,
        Kind = caller?.Kind.ToString(),
        Finess = caller?.OrganizationFiness,
        User = caller?.FhirUser,
        Purpose = note.Purpose.Code,
        BreakGlassReason = note.Purpose.BreakGlassReason,
        Permitted = note.Decision?.Permitted,
        Reason = note.Decision?.Reason,
        BreakGlass = note.Decision?.BreakGlass ?? false,
        ConsentId = note.Decision?.ConsentId,
        Query = query,
        Entities = note.Entities.Distinct(StringComparer.Ordinal).ToList(),
        Patients = note.Patients.ToList(),
    };

    /// <summary>The record of a request audited outside the FHIR audit middleware (the /auth pages and endpoints): now, from this request's client address.</summary>
    public static AuditEntry Of(HttpContext context, Caller? caller, string interaction, int status, AuditNote note, string? query = null) =>
        Of(caller, interaction, status, context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow(), note, query, AddressOf(context));

    /// <summary>The request's client address for <see cref="Address"/> (an IPv4 client of a dual-stack socket as IPv4).</summary>
    public static string? AddressOf(HttpContext context) => context.Connection.RemoteIpAddress is { } ip
        ? (ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip).ToString()
        : null;

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static AuditEntry FromJson(string json) =>
        JsonSerializer.Deserialize<AuditEntry>(json, Json) ?? throw new InvalidOperationException("empty audit record");
}
