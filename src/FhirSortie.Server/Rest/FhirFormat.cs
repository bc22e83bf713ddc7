using System.Net;
using System.Text;
using System.Xml;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;
using Hl7.Fhir.Serialization;
using Hl7.Fhir.Utility;
using Microsoft.Extensions.Primitives;

namespace FhirSortie.Server.Rest;

public enum WireFormat { Json, Xml }

/// <summary>
/// Content negotiation, strict parsing of request bodies and serialisation of responses
/// (JSON/XML, _pretty, _summary, _elements).
/// </summary>
public static class FhirFormat
{
    public const string JsonContentType = "application/fhir+json";
    public const string XmlContentType = "application/fhir+xml";

    // Strict: unknown elements and bad values are errors, never silently kept (the issue forbids lenient parsing).
    private static readonly FhirJsonDeserializer JsonDeserializer = new(new DeserializerSettings());
    private static readonly FhirXmlDeserializer XmlDeserializer = new(new DeserializerSettings());
    public static readonly BaseFhirJsonSerializer JsonSerializer = new(ModelInfo.ModelInspector);
    public static readonly BaseFhirXmlSerializer XmlSerializer = new(ModelInfo.ModelInspector);

    /// <summary>Format of the response, from _format then Accept. JSON when nothing says otherwise.</summary>
    public static WireFormat ResponseFormat(HttpRequest request)
    {
        var format = request.Query["_format"];
        if (!StringValues.IsNullOrEmpty(format))
        {
            return FromMediaType(format.ToString()) ?? throw FhirException.Error(HttpStatusCode.NotAcceptable,
                OperationOutcome.IssueType.NotSupported, $"_format '{format}' is not supported; use json or xml.", "_format");
        }
        var accept = request.Headers.Accept;
        if (StringValues.IsNullOrEmpty(accept)) return WireFormat.Json;
        var text = accept.ToString();
        // The usual case, on every request: one media type without parameters.
        if (!text.Contains(',', StringComparison.Ordinal) && !text.Contains(';', StringComparison.Ordinal) && FromMediaType(text) is { } single) return single;
        return Negotiate(text) ?? throw FhirException.Error(HttpStatusCode.NotAcceptable, OperationOutcome.IssueType.NotSupported,
            $"None of the accepted media types ({accept}) is supported; use application/fhir+json or application/fhir+xml (FHIR R4: fhirVersion=4.0).");
    }

    /// <summary>
    /// The format an Accept header prefers (RFC 9110 12.5.1): highest q first, the header's order among equals; q=0
    /// means "not acceptable", also for a format otherwise reached through */* or application/*. Null when nothing
    /// listed is acceptable; JSON when the header lists nothing at all.
    /// </summary>
    private static WireFormat? Negotiate(string accept)
    {
        var ranges = new List<(string MediaType, double Q, bool R4)>();
        foreach (var value in accept.Split(','))
        {
            var mediaType = value.Split(';')[0].Trim().ToLowerInvariant();
            if (mediaType.Length > 0) ranges.Add((mediaType, Quality(value), IsR4(value)));
        }
        if (ranges.Count == 0) return WireFormat.Json;
        var refused = ranges.Where(r => r.Q <= 0).Select(r => FromMediaType(r.MediaType)).OfType<WireFormat>().ToHashSet();
        foreach (var range in ranges.Where(r => r.Q > 0 && r.R4).OrderByDescending(r => r.Q)) // OrderBy is stable
        {
            if (range.MediaType is "*/*" or "application/*")
            {
                if (!refused.Contains(WireFormat.Json)) return WireFormat.Json;
                if (!refused.Contains(WireFormat.Xml)) return WireFormat.Xml;
                continue;
            }
            if (FromMediaType(range.MediaType) is { } format) return format;
        }
        return null;
    }

    /// <summary>The q parameter of one Accept value (1 when absent or unreadable).</summary>
    private static double Quality(string value)
    {
        foreach (var parameter in value.Split(';').Skip(1))
        {
            if (parameter.Split('=', 2) is [var name, var q] && name.Trim().Equals("q", StringComparison.OrdinalIgnoreCase))
                return double.TryParse(q.Trim(), System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var quality)
                    ? Math.Clamp(quality, 0, 1)
                    : 1;
        }
        return 1;
    }

    public static WireFormat? FromMediaType(string value) => value.Trim().ToLowerInvariant() switch
    {
        "json" or "application/json" or "application/fhir+json" or "application/json+fhir" or "text/json" => WireFormat.Json,
        "xml" or "application/xml" or "application/fhir+xml" or "application/xml+fhir" or "text/xml" => WireFormat.Xml,
        _ => null,
    };

    /// <summary>
    /// False when the media type's fhirVersion parameter names another FHIR version than R4 (4.0, 4.0.1): FHIR's version
    /// negotiation (http.html#version-parameter) wants a 406 or 415 then, not R4 content the client cannot read.
    /// </summary>
    public static bool IsR4(string mediaType)
    {
        if (!mediaType.Contains(';', StringComparison.Ordinal)) return true; // the usual case, on every request: no split
        foreach (var parameter in mediaType.Split(';').Skip(1))
        {
            var (name, value) = parameter.Split('=', 2) is [var n, var v] ? (n.Trim(), v.Trim().Trim('"')) : (parameter.Trim(), "");
            if (name.Equals("fhirVersion", StringComparison.OrdinalIgnoreCase))
                return value is "4.0" or "4.0.1";
        }
        return true;
    }

    public static bool IsPretty(HttpRequest request) =>
        string.Equals(request.Query["_pretty"], "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Reads and strictly parses the request body as a resource. Bad input is a 4xx, never a 500.</summary>
    public static async Task<Resource> ReadResourceAsync(HttpRequest request, long maxBytes, CancellationToken ct)
    {
        var body = await ReadBodyAsync(request, maxBytes, ct);
        var format = RequestFormat(request);
        return Parse(body, format);
    }

    public static WireFormat RequestFormat(HttpRequest request)
    {
        var contentType = request.ContentType;
        if (string.IsNullOrWhiteSpace(contentType))
        {
            throw FhirException.Error(HttpStatusCode.UnsupportedMediaType, OperationOutcome.IssueType.NotSupported,
                "Content-Type is missing; send application/fhir+json or application/fhir+xml.");
        }
        if (!IsR4(contentType))
        {
            throw FhirException.Error(HttpStatusCode.UnsupportedMediaType, OperationOutcome.IssueType.NotSupported,
                $"Content-Type '{contentType}' names another FHIR version; this server speaks FHIR R4 (fhirVersion=4.0).");
        }
        return FromMediaType(contentType.Split(';')[0]) ?? throw FhirException.Error(HttpStatusCode.UnsupportedMediaType,
            OperationOutcome.IssueType.NotSupported, $"Content-Type '{contentType}' is not supported; send application/fhir+json or application/fhir+xml.");
    }

    /// <summary>The request body, up to <paramref name="maxBytes"/> (413 above); an empty one is a 400 unless <paramref name="allowEmpty"/>.</summary>
    public static async Task<byte[]> ReadBodyAsync(HttpRequest request, long maxBytes, CancellationToken ct, bool allowEmpty = false)
    {
        if (request.ContentLength > maxBytes) throw TooLarge(maxBytes);
        using var buffer = new MemoryStream(request.ContentLength is { } n ? (int)n : 4096);
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > maxBytes) throw TooLarge(maxBytes);
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0 && !allowEmpty) throw FhirException.BadRequest("The request body is empty; a resource was expected.");
        return buffer.ToArray();
    }

    private static FhirException TooLarge(long maxBytes) =>
        FhirException.Error(HttpStatusCode.RequestEntityTooLarge, OperationOutcome.IssueType.TooCostly,
            $"The request body is larger than the configured limit of {maxBytes} bytes (FhirSortie:MaxRequestBodyBytes).");

    public static Resource Parse(ReadOnlySpan<byte> body, WireFormat format)
    {
        try
        {
            if (format == WireFormat.Json)
            {
                RefuseControlCharacters(body);
                var reader = new System.Text.Json.Utf8JsonReader(body);
                return JsonDeserializer.DeserializeResource(ref reader);
            }
            var bytes = body.ToArray();
            Mapping.SafeXml.RefuseDeep(bytes, SafeXmlSettings);
            using var stream = new MemoryStream(bytes);
            using var xml = XmlReader.Create(stream, SafeXmlSettings);
            return XmlDeserializer.DeserializeResource(xml);
        }
        catch (DeserializationFailedException e)
        {
            var outcome = new OperationOutcome();
            foreach (var ex in e.Exceptions.Take(50)) outcome.Issue.Add(IssueFrom(ex));
            throw new FhirException(HttpStatusCode.BadRequest, outcome);
        }
        // CodedException: raised outside the collected errors when `contained` is given as an object or null (SDK 6.8).
        catch (Exception e) when (e is System.Text.Json.JsonException or XmlException or FormatException or InvalidOperationException or ArgumentException or CodedException)
        {
            throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.Structure,
                $"The body is not a valid FHIR {(format == WireFormat.Json ? "JSON" : "XML")} resource: {e.Message}");
        }
        catch (Exception e) when (e is not (OutOfMemoryException or FhirException))
        {
            // The parser's only input is the client's bytes, so whatever else it throws is bad input, not a server fault:
            // the SDK 6.8 throws IndexOutOfRangeException on a JSON member with an empty name ({"": 1}), which a JSON Patch
            // path "/" also produces (found by fuzzing the gateway, 2026-12-06).
            throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.Structure,
                $"The body could not be read as a FHIR {(format == WireFormat.Json ? "JSON" : "XML")} resource ({EmptyNameHint(body, format)}the parser failed with {e.GetType().Name}).");
        }
    }

    /// <summary>
    /// FHIR strings hold no character below U+0020 but tab, line feed and carriage return (R4 datatypes, string); JSON
    /// can carry them escaped (\u0000), and the SDK's parser lets them through. A NUL would then reach the database:
    /// PostgreSQL refuses it in text, so the write failed with a 500 there (found by fuzzing, 2026-12-06). XML 1.0
    /// refuses these characters itself. Only escaped strings can hold one, so a body without a backslash is not read twice.
    /// </summary>
    private static void RefuseControlCharacters(ReadOnlySpan<byte> body)
    {
        if (body.IndexOf((byte)'\\') < 0) return;
        var reader = new System.Text.Json.Utf8JsonReader(body);
        string? property = null;
        while (reader.Read())
        {
            string text;
            if (reader.TokenType == System.Text.Json.JsonTokenType.PropertyName)
            {
                text = property = reader.GetString()!;
                if (!reader.ValueIsEscaped) continue;
            }
            else if (reader.TokenType == System.Text.Json.JsonTokenType.String && reader.ValueIsEscaped) text = reader.GetString()!;
            else continue;
            foreach (var c in text)
            {
                if (c < ' ' && c is not ('\t' or '\n' or '\r'))
                    throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.Invalid,
                        $"A string in '{property}' holds the control character U+{(int)c:X4}; FHIR strings hold none but tab, line feed and carriage return.");
            }
        }
    }

    private static string EmptyNameHint(ReadOnlySpan<byte> body, WireFormat format) =>
        format == WireFormat.Json && body.IndexOf("\"\":"u8) >= 0 ? "an element has an empty name; " : "";

    /// <summary>No DTD, no external entities: bodies come from outside.</summary>
    public static readonly XmlReaderSettings SafeXmlSettings = new()
    {
        DtdProcessing = DtdProcessing.Prohibit,
        XmlResolver = null,
        IgnoreComments = true,
        IgnoreProcessingInstructions = true,
    };

    private static OperationOutcome.IssueComponent IssueFrom(CodedException ex)
    {
        var code = ex.Message.Contains("unknown", StringComparison.OrdinalIgnoreCase)
            ? OperationOutcome.IssueType.Structure
            : OperationOutcome.IssueType.Invalid;
        if (ex is ExtendedCodedException ext)
        {
            var where = ext.LineNumber is { } line ? $" (line {line}, position {ext.Position})" : "";
            return Outcomes.Issue(OperationOutcome.IssueSeverity.Error, code, ext.BaseErrorMessage + where,
                string.IsNullOrEmpty(ext.InstancePath) ? [] : [ext.InstancePath]);
        }
        return Outcomes.Issue(OperationOutcome.IssueSeverity.Error, code, ex.Message);
    }

    /// <summary>Serialises a resource honouring _summary and _elements.</summary>
    public static byte[] Serialize(Base resource, WireFormat format, bool pretty, SummaryType summary = SummaryType.False, string[]? elements = null)
    {
        // XML goes through the same SerializationFilter as JSON: the SDK's SerializeToBytes(summary, elements) path also
        // tags the resource SUBSETTED under the STU3 system (http://hl7.org/fhir/v3/ObservationValue), which R4 does not
        // know; we add the R4 tag ourselves (FhirResponse.MarkSubsetted).
        if (format == WireFormat.Xml && Filter(summary, elements) is null) return XmlSerializer.SerializeToBytes(resource, pretty: pretty);
        if (format == WireFormat.Xml)
        {
            using var stream = new MemoryStream(4096);
            using (var xml = XmlWriter.Create(stream, new XmlWriterSettings { Encoding = Utf8, Indent = pretty, OmitXmlDeclaration = true, NewLineHandling = NewLineHandling.Entitize }))
            {
                XmlSerializer.Serialize(resource, xml, Filter(summary, elements));
            }
            return stream.ToArray();
        }
        // Our own writer: relaxed escaping keeps "Hélène" readable instead of "H\u00E9l\u00E8ne".
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions
        {
            Indented = pretty,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            SkipValidation = true,
        }))
        {
            JsonSerializer.Serialize(resource, writer, Filter(summary, elements));
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static Func<SerializationFilter>? Filter(SummaryType summary, string[]? elements)
    {
        if (WithIdAndMeta(elements) is { Length: > 0 } kept) return () => new R4SubsettedFilter(SerializationFilter.ForElements(kept, true));
        return summary switch
        {
            SummaryType.True => () => new R4SubsettedFilter(SerializationFilter.ForSummary()),
            SummaryType.Text => () => new R4SubsettedFilter(SerializationFilter.ForText()),
            SummaryType.Data => () => new R4SubsettedFilter(SerializationFilter.ForData()),
            SummaryType.Count => () => new R4SubsettedFilter(SerializationFilter.ForCount()),
            _ => null,
        };
    }

    /// <summary>_elements always keeps id and meta: meta carries the SUBSETTED tag that tells the client so.</summary>
    private static string[]? WithIdAndMeta(string[]? elements) =>
        elements is { Length: > 0 } ? [.. elements.Union(["id", "meta"], StringComparer.Ordinal)] : elements;

    public static string ContentType(WireFormat format) =>
        (format == WireFormat.Json ? JsonContentType : XmlContentType) + "; charset=utf-8";

    /// <summary>_summary value of the request; bad values are a 400.</summary>
    public static SummaryType Summary(HttpRequest request)
    {
        var value = request.Query["_summary"].ToString();
        return value switch
        {
            "" or "false" => SummaryType.False,
            "true" => SummaryType.True,
            "text" => SummaryType.Text,
            "data" => SummaryType.Data,
            "count" => SummaryType.Count,
            _ => throw FhirException.BadRequest($"_summary '{value}' is not one of true, false, text, data, count.", "_summary"),
        };
    }

    public static string[]? Elements(HttpRequest request)
    {
        var value = request.Query["_elements"].ToString();
        if (value.Length == 0) return null;
        return value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public static readonly Encoding Utf8 = new UTF8Encoding(false);
}
