using System.Net;
using System.Text.RegularExpressions;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Rest;

/// <summary>Checks shared by the interactions: resource type, id, version and the body matching the URL.</summary>
public static partial class FhirRequest
{
    [GeneratedRegex("^[A-Za-z0-9\\-\\.]{1,64}$")]
    private static partial Regex IdPattern();

    /// <summary>The {type} of the route; "$name" there (a [base]/$name no route serves) is an operation not supported.</summary>
    public static string Type(HttpContext context) => RequireType(NotOperation(context, (string)context.Request.RouteValues["type"]!));

    /// <summary>The {id} of the route; "$name" there ([type]/$name, no route) is an operation not supported.</summary>
    public static string Id(HttpContext context) => RequireId(NotOperation(context, (string)context.Request.RouteValues["id"]!));

    private static string NotOperation(HttpContext context, string segment) =>
        segment.StartsWith('$') ? throw UnknownOperation.Refusal(context) : segment;

    public static string RequireType(string type)
    {
        if (!ModelInfo.IsKnownResource(type) || ModelInfo.IsKnownResource(type) && type is "Resource" or "DomainResource")
            throw FhirException.Error(HttpStatusCode.NotFound, OperationOutcome.IssueType.NotSupported, $"Unknown resource type '{type}'.");
        return type;
    }

    public static string RequireId(string id)
    {
        if (!IdPattern().IsMatch(id))
            throw FhirException.BadRequest($"'{id}' is not a valid resource id (1 to 64 characters among A-Z a-z 0-9 - .).");
        return id;
    }

    public static bool IsValidId(string? id) => id is not null && IdPattern().IsMatch(id);

    public static int RequireVersion(string version) =>
        int.TryParse(version, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v) && v > 0
            ? v
            : throw FhirException.NotFound($"Version '{version}' does not exist.");

    /// <summary>The body must be a resource of the URL's type.</summary>
    public static void RequireBodyType(Resource resource, string type)
    {
        if (resource.TypeName != type)
            throw FhirException.BadRequest($"The body is a {resource.TypeName} but the URL is for {type}.", "resourceType");
    }

    /// <summary>Parses an If-Match value: W/"3", "3" or 3 → 3.</summary>
    public static int? IfMatchVersion(string? ifMatch)
    {
        if (string.IsNullOrWhiteSpace(ifMatch)) return null;
        var v = ifMatch.Trim();
        if (v.StartsWith("W/", StringComparison.Ordinal)) v = v[2..];
        v = v.Trim('"');
        return int.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
            ? n
            : throw FhirException.BadRequest($"If-Match '{ifMatch}' is not a version ETag such as W/\"3\".");
    }

    public static ResourceStore Store(HttpContext context) => context.RequestServices.GetRequiredService<ResourceStore>();

    public static FhirSortieOptions Options(HttpContext context) => context.RequestServices.GetRequiredService<IOptions<FhirSortieOptions>>().Value;

    public static Task<Resource> BodyAsync(HttpContext context) =>
        FhirFormat.ReadResourceAsync(context.Request, Options(context).MaxRequestBodyBytes, context.RequestAborted);

    /// <summary>
    /// A new server-assigned id: a version 7 UUID, whose text starts with the creation time in milliseconds. Ids of
    /// resources written together are neighbours in the (type, id) indexes (resources, resource_versions,
    /// resource_origin, references to them), so a transaction dirties a few index pages instead of one random page per
    /// resource and per index (bench micro-tx-http: pages written per exit package, results/2026-11-23-transaction.md).
    /// The time it reveals is the resource's meta.lastUpdated at creation, which every reader sees anyway.
    /// </summary>
    public static string NewId() => Guid.CreateVersion7().ToString();

    /// <summary>
    /// An instant parameter (_since, _at, _until): 400 naming it when the value is not one. An instant carries a time and
    /// a zone; a bare date is read as midnight UTC.
    /// </summary>
    public static DateTimeOffset Instant(string value, string name) =>
        DateTimeOffset.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var instant)
            ? instant
            : throw FhirException.BadRequest($"{name} '{value}' is not an instant such as 2026-11-23T09:00:00Z.", name);

    /// <summary>The instant as a date search value with its prefix (<c>ge2026-11-23T09:00:00.000Z</c>).</summary>
    public static string DateSearchValue(string prefix, DateTimeOffset instant) =>
        prefix + instant.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);
}
