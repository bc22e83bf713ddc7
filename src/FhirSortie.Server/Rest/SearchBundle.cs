using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Rest;

namespace FhirSortie.Server.Rest;

/// <summary>
/// Writes a searchset Bundle as JSON by splicing each entry's stored JSON bytes (WriteRawValue) instead of parsing
/// resources into POCOs: the stored JSON is exactly what a read serves. _summary and _elements reshape entries
/// through the SDK (parse, filter, serialise), which is the slow path only those requests pay for.
/// </summary>
public static class SearchBundle
{
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    public sealed record Entry(StoredResource Resource, bool Include);

    public static byte[] Write(string baseUrl, int? total, IReadOnlyList<(string Relation, string Url)> links, IReadOnlyList<Entry> entries,
        SummaryType summary, string[]? elements, DateTimeOffset now, Hl7.Fhir.Model.OperationOutcome? outcome = null)
    {
        var buffer = new ArrayBufferWriter<byte>(1024 + entries.Sum(e => e.Resource.Json?.Length ?? 0) + entries.Count * 160);
        using (var w = new Utf8JsonWriter(buffer, Options))
        {
            w.WriteStartObject();
            w.WriteString("resourceType", "Bundle");
            w.WriteString("id", Guid.NewGuid().ToString());
            w.WriteStartObject("meta");
            w.WriteString("lastUpdated", now.ToString("yyyy-MM-ddTHH:mm:ss.fffK", CultureInfo.InvariantCulture));
            w.WriteEndObject();
            w.WriteString("type", "searchset");
            if (total is { } t) w.WriteNumber("total", t);
            w.WriteStartArray("link");
            foreach (var (relation, url) in links)
            {
                w.WriteStartObject();
                w.WriteString("relation", relation);
                w.WriteString("url", url);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (entries.Count > 0 || outcome is not null)
            {
                w.WriteStartArray("entry");
                foreach (var entry in entries)
                {
                    var r = entry.Resource;
                    w.WriteStartObject();
                    w.WriteString("fullUrl", $"{baseUrl}/{r.Type}/{r.Id}");
                    w.WritePropertyName("resource");
                    // R4 search.html: _elements shapes the matches, not the resources _include brings along.
                    w.WriteRawValue(Body(r, summary, entry.Include ? null : elements), skipInputValidation: true);
                    w.WriteStartObject("search");
                    w.WriteString("mode", entry.Include ? "include" : "match");
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
                if (outcome is not null)
                {
                    // Search.mode "outcome": warnings about the search itself (e.g. included resources left out).
                    w.WriteStartObject();
                    w.WriteString("fullUrl", $"urn:uuid:{Guid.NewGuid()}");
                    w.WritePropertyName("resource");
                    w.WriteRawValue(FhirFormat.Serialize(outcome, WireFormat.Json, pretty: false), skipInputValidation: true);
                    w.WriteStartObject("search");
                    w.WriteString("mode", "outcome");
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] Body(StoredResource r, SummaryType summary, string[]? elements)
    {
        var json = r.Json ?? throw new InvalidOperationException("A current resource has no stored JSON.");
        if (summary == SummaryType.False && elements is null) return json;
        var resource = FhirResponse.ParseStored(json);
        FhirResponse.MarkSubsetted(resource);
        // meta carries the SUBSETTED tag, so it survives any _elements list (the SDK filter would drop it).
        var kept = elements is null || elements.Contains("meta") ? elements : [.. elements, "meta"];
        return FhirFormat.Serialize(resource, WireFormat.Json, pretty: false, summary, kept);
    }
}
