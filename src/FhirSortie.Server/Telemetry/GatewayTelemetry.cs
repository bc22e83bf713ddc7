using System.Diagnostics.Metrics;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace FhirSortie.Server.Telemetry;

/// <summary>
/// OpenTelemetry for the gateway: traces and metrics sent to an OTLP collector, and the gateway's own instruments.
/// <para>
/// The instruments (meter <see cref="MeterName"/>) always exist: they cost a branch when nobody listens, and
/// <c>dotnet-counters</c> can watch them on a node without a collector. The SDK and its exporter are registered only
/// when an OTLP endpoint is configured (<c>FhirSortie:Telemetry:OtlpEndpoint</c>, or the standard
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>): with none, no span is even created.
/// </para>
/// <para>
/// What leaves the node follows the log rule: routes as templates, never a path, query or URL (<see cref="UrlRedaction"/>),
/// since ids and search values (INS, names, birth dates) are patient data. No SQL spans (Npgsql's tracing): one span
/// per statement on every write would cost more than the request spans, and the write path is measured by the
/// SQLite instruments below and by PostgreSQL's own statistics.
/// </para>
/// </summary>
public static class GatewayTelemetry
{
    public const string MeterName = "FhirSortie";
    public const string Section = "FhirSortie:Telemetry";
    public const string NpgsqlMeter = "Npgsql";

    public static void AddGatewayTelemetry(this WebApplicationBuilder builder)
    {
        // One Meter per host (IMeterFactory scopes it to the service provider): test servers side by side each count their own.
        builder.Services.AddSingleton(services => services.GetRequiredService<IMeterFactory>().Create(MeterName));

        var configuration = builder.Configuration;
        var endpoint = configuration[$"{Section}:OtlpEndpoint"];
        if (string.IsNullOrWhiteSpace(endpoint) && string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"])) return;
        var protocol = ParseProtocol(configuration[$"{Section}:OtlpProtocol"]);
        var serviceName = configuration[$"{Section}:ServiceName"] is { Length: > 0 } name ? name : "fhirsortie";

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName, serviceVersion: typeof(GatewayTelemetry).Assembly.GetName().Version?.ToString()))
            .WithTracing(tracing => tracing
                .AddAspNetCoreInstrumentation(options => options.Filter = http => !http.Request.Path.StartsWithSegments("/health"))
                .AddHttpClientInstrumentation() // notification deliveries to subscribers
                .AddProcessor(new UrlRedaction()) // before the exporter: processors see a span in the order they were added
                .AddOtlpExporter(options => Configure(options, endpoint, protocol, "v1/traces")))
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(MeterName)
                .AddMeter(NpgsqlMeter) // PostgreSQL connection pools (use, waits, timeouts): Npgsql's own instruments
                .AddOtlpExporter(options => Configure(options, endpoint, protocol, "v1/metrics")));
    }

    /// <summary>Our endpoint is the collector's base address, as OTEL_EXPORTER_OTLP_ENDPOINT is; http/protobuf wants the signal's path on it.</summary>
    private static void Configure(OtlpExporterOptions options, string? endpoint, OtlpExportProtocol? protocol, string signalPath)
    {
        if (protocol is { } chosen) options.Protocol = chosen;
        if (string.IsNullOrWhiteSpace(endpoint)) return; // the exporter reads the OTEL_EXPORTER_OTLP_* variables itself
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri))
            throw new InvalidOperationException($"{Section}:OtlpEndpoint is not an absolute URL.");
        options.Endpoint = options.Protocol == OtlpExportProtocol.HttpProtobuf
            ? new Uri(uri.AbsoluteUri.TrimEnd('/') + "/" + signalPath)
            : uri;
    }

    private static OtlpExportProtocol? ParseProtocol(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "grpc" => OtlpExportProtocol.Grpc,
        "http/protobuf" or "httpprotobuf" => OtlpExportProtocol.HttpProtobuf,
        _ => throw new InvalidOperationException($"{Section}:OtlpProtocol must be grpc or http/protobuf."),
    };
}
