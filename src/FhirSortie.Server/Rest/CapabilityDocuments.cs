using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;

namespace FhirSortie.Server.Rest;

/// <summary>
/// The CapabilityStatement, built once per configuration rather than on every GET [base]/metadata: what it says comes
/// from the routing table, the SearchParameters, the profiles and the OAuth endpoints, all fixed while the process
/// runs. Rebuilding its ~480 KB on each call held metadata to about 95 requests/s, and clients polling it slowed every
/// other request. Kept per base URL and issuer as clients see them (both follow the request's host unless configured),
/// and for each of those per format, _pretty and _summary as bytes, with gzip and Brotli copies made once, so a poll
/// costs a copy. An ETag (a hash of the statement) and Last-Modified (when it was built) answer conditional
/// requests with 304. Nodes behind one load balancer build the same statement, so the same ETag.
/// </summary>
public sealed class CapabilityDocuments(SearchParameters parameters, EndpointDataSource endpoints, Profiles.ProfileRegistry profiles, TimeProvider clock)
{
    /// <summary>
    /// Base URLs kept. Without a configured PublicBaseUrl the base follows the Host header, which a client chooses: past
    /// this many, a statement is built for the call and not kept, so made-up hosts cannot grow the memory.
    /// </summary>
    private const int MaxKept = 8;

    private readonly ConcurrentDictionary<(string Base, string Issuer), CapabilityDocument> _documents = new();

    public CapabilityDocument For(HttpContext context)
    {
        var key = (FhirBase.Of(context), Security.AuthorizationServer.IssuerFor(context));
        if (_documents.TryGetValue(key, out var document)) return document;
        var statement = Capabilities.Build(key.Item1, parameters, endpoints.Endpoints);
        Profiles.ProfileCapabilities.Describe(statement, profiles);
        Security.SmartConfiguration.DescribeSecurity(statement, context);
        var built = new CapabilityDocument(statement, clock.GetUtcNow());
        return _documents.Count < MaxKept ? _documents.GetOrAdd(key, built) : built;
    }
}

/// <summary>One built CapabilityStatement and its serialised forms.</summary>
public sealed class CapabilityDocument
{
    private readonly CapabilityStatement _statement;
    private readonly ConcurrentDictionary<(WireFormat Format, bool Pretty, SummaryType Summary), Lazy<Encoded>> _encoded = new();

    public CapabilityDocument(CapabilityStatement statement, DateTimeOffset built)
    {
        _statement = statement;
        // Whole seconds: Last-Modified and If-Modified-Since carry no more.
        LastModified = DateTimeOffset.FromUnixTimeSeconds(built.ToUnixTimeSeconds());
        var hash = SHA256.HashData(FhirFormat.Serialize(statement, WireFormat.Json, pretty: false));
        ETag = $"W/\"{Convert.ToHexStringLower(hash.AsSpan(0, 12))}\"";
    }

    public string ETag { get; }

    public DateTimeOffset LastModified { get; }

    private sealed record Encoded(byte[] Identity, byte[] Gzip, byte[] Brotli);

    public async System.Threading.Tasks.Task WriteAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        var format = FhirFormat.ResponseFormat(request); // 406 before anything
        var summary = FhirFormat.Summary(request);
        var elements = FhirFormat.Elements(request);
        var pretty = FhirFormat.IsPretty(request);
        response.Headers.ETag = ETag;
        response.Headers.LastModified = LastModified.ToString("R");
        response.Headers.Vary = "Accept, Accept-Encoding";
        if (IsNotModified(request))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return;
        }
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = FhirFormat.ContentType(format);
        if (elements is not null)
        {
            // Rare, and as many variants as lists: serialised for the call (the compression middleware compresses it).
            var body = FhirFormat.Serialize(Subsetted(), format, pretty, summary, elements);
            response.ContentLength = body.Length;
            await response.Body.WriteAsync(body, context.RequestAborted);
            return;
        }
        var encoded = _encoded.GetOrAdd((format, pretty, summary), key => new Lazy<Encoded>(() => Encode(key.Format, key.Pretty, key.Summary))).Value;
        // Compressed here once rather than by the middleware on every call; the statement holds no secret to protect
        // from compression attacks. A response with Content-Encoding already set is left alone by the middleware.
        var (bytes, encoding) = PreferredEncoding(request) switch
        {
            "br" => (encoded.Brotli, "br"),
            "gzip" => (encoded.Gzip, "gzip"),
            _ => (encoded.Identity, null),
        };
        if (encoding is not null) response.Headers.ContentEncoding = encoding;
        response.ContentLength = bytes.Length;
        await response.Body.WriteAsync(bytes, context.RequestAborted);
    }

    private Encoded Encode(WireFormat format, bool pretty, SummaryType summary)
    {
        var identity = FhirFormat.Serialize(summary == SummaryType.False ? _statement : Subsetted(), format, pretty, summary);
        return new Encoded(identity, Compress(identity, s => new GZipStream(s, CompressionLevel.Optimal)),
            Compress(identity, s => new BrotliStream(s, CompressionLevel.Optimal)));
    }

    /// <summary>A copy tagged SUBSETTED, as every _summary or _elements answer is.</summary>
    private CapabilityStatement Subsetted()
    {
        var copy = (CapabilityStatement)_statement.DeepCopy();
        FhirResponse.MarkSubsetted(copy);
        return copy;
    }

    private static byte[] Compress(byte[] bytes, Func<Stream, Stream> compressor)
    {
        using var buffer = new MemoryStream();
        using (var stream = compressor(buffer)) stream.Write(bytes);
        return buffer.ToArray();
    }

    /// <summary>If-None-Match naming this ETag (or *), else If-Modified-Since not before the build.</summary>
    private bool IsNotModified(HttpRequest request)
    {
        var ifNoneMatch = request.Headers.IfNoneMatch.ToString();
        if (ifNoneMatch.Length > 0)
        {
            var opaque = ETag[2..]; // weak comparison (RFC 9110 13.1.2): W/ prefixes ignored
            return ifNoneMatch.Split(',').Select(t => t.Trim()).Any(t => t == "*" || (t.StartsWith("W/", StringComparison.Ordinal) ? t[2..] : t) == opaque);
        }
        return DateTimeOffset.TryParse(request.Headers.IfModifiedSince.ToString(), System.Globalization.CultureInfo.InvariantCulture,
                   System.Globalization.DateTimeStyles.AssumeUniversal, out var since)
               && LastModified <= since;
    }

    /// <summary>br, gzip or null, from Accept-Encoding (q=0 refuses a coding; * stands for any).</summary>
    private static string? PreferredEncoding(HttpRequest request)
    {
        var header = request.Headers.AcceptEncoding.ToString();
        if (header.Length == 0) return null;
        var accepted = new Dictionary<string, double>(StringComparer.OrdinalIgnoreCase);
        foreach (var value in header.Split(','))
        {
            var parts = value.Split(';');
            var q = 1.0;
            foreach (var parameter in parts.Skip(1))
            {
                if (parameter.Split('=', 2) is [var name, var v] && name.Trim() == "q"
                    && double.TryParse(v.Trim(), System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var parsed))
                    q = parsed;
            }
            accepted[parts[0].Trim()] = q;
        }
        double Of(string coding) => accepted.TryGetValue(coding, out var q) ? q : accepted.GetValueOrDefault("*", 0);
        var (br, gzip) = (Of("br"), Of("gzip"));
        if (br <= 0 && gzip <= 0) return null;
        return br >= gzip ? "br" : "gzip";
    }
}
