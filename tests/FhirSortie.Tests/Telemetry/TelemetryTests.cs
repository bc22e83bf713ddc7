using System.Diagnostics;
using System.Net;
using FhirSortie.Server.Telemetry;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Instrumentation.AspNetCore;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace FhirSortie.Tests.Telemetry;

/// <summary>The gateway's own instruments (meter "FhirSortie") and what its spans carry once OTLP export is on.</summary>
public sealed class TelemetryTests
{
    private const string Ins = "279035121518989";
    private const string Family = "Zoubeyda";
    private const string Marker = "X-Telemetry-Test";

    private static Patient NewPatient() => new()
    {
        Identifier = [new Identifier("urn:oid:1.2.250.1.213.1.4.8", Ins)],
        Name = [new HumanName { Family = Family, Given = ["Nour"] }],
        BirthDate = "1979-03-01",
    };

    [Fact]
    public async Task Sqlite_writes_measure_the_writer_turn_and_the_shared_commit()
    {
        using var gateway = new SqliteGateway();
        var fhir = gateway.Fhir();
        using var measured = new GatewayMeasurements(gateway);

        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        for (var i = 0; i < 3; i++)
        {
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = $"urn:uuid:{Guid.NewGuid()}",
                Resource = new Patient { Name = [new HumanName { Family = $"Turn{i}" }] },
                Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Patient" },
            });
        }
        var response = await fhir.PostAsync("", FhirHttp.Json(bundle));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var turns = measured.Of("fhirsortie.sqlite.write.turn.duration");
        Assert.NotEmpty(turns);
        Assert.All(turns, t => Assert.InRange(t.Value, 0, 60));
        Assert.Contains(turns, t => t.Value > 0);
        var units = measured.Of("fhirsortie.sqlite.commit.units");
        Assert.NotEmpty(units);
        Assert.All(units, u => Assert.True(u.Value >= 1, "a shared COMMIT carries at least one unit"));
        Assert.Equal(units.Count, measured.Of("fhirsortie.sqlite.commit.duration").Count);
    }

    [Fact]
    public async Task Sqlite_reads_measure_audit_batches_in_the_journal_and_its_backlog()
    {
        using var gateway = new SqliteGateway();
        var fhir = gateway.Fhir();
        var created = await (await fhir.PostAsync("Patient", FhirHttp.Json(NewPatient()))).ReadAs<Patient>();
        using var measured = new GatewayMeasurements(gateway);

        for (var i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync($"Patient/{created.Id}")).StatusCode);

        var batches = measured.Of("fhirsortie.audit.batch.size");
        Assert.True(batches.Sum(b => b.Value) >= 3, $"3 reads, 3 audit records: measured {batches.Sum(b => b.Value)}");
        Assert.All(batches, b => Assert.Contains(new KeyValuePair<string, object?>("fhirsortie.audit.store", "journal"), b.Tags));
        measured.Observe();
        var backlog = Assert.Single(measured.Of("fhirsortie.audit.journal.backlog"));
        Assert.InRange(backlog.Value, 0, 10);
    }

    [Fact]
    public async Task Postgres_reads_measure_audit_batches_written_to_the_database()
    {
        using var gateway = new PostgresGateway();
        var fhir = gateway.Fhir();
        var created = await (await fhir.PostAsync("Patient", FhirHttp.Json(NewPatient()))).ReadAs<Patient>();
        using var measured = new GatewayMeasurements(gateway);

        Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync($"Patient/{created.Id}")).StatusCode);

        var batch = Assert.Single(measured.Of("fhirsortie.audit.batch.size"));
        Assert.Equal(1, batch.Value);
        Assert.Contains(new KeyValuePair<string, object?>("fhirsortie.audit.store", "database"), batch.Tags);
        Assert.Empty(measured.Of("fhirsortie.sqlite.write.turn.duration"));
    }

    [Fact]
    public async Task Without_an_otlp_endpoint_no_span_is_recorded()
    {
        var spans = new List<Activity>();
        using var gateway = new SqliteGateway { TestServices = services => services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(spans)) };
        var fhir = gateway.Fhir();
        Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync("Patient")).StatusCode);
        Assert.Null(gateway.Services.GetService<TracerProvider>());
        lock (spans) Assert.Empty(spans);
    }

    [Fact]
    public async Task Spans_name_the_route_template_and_carry_no_id_or_search_value()
    {
        var spans = new List<Activity>();
        using var gateway = new SqliteGateway
        {
            // Nothing listens there (port 9, discard): export fails quietly, the in-memory exporter sees the spans as OTLP would.
            Settings = { ["FhirSortie:Telemetry:OtlpEndpoint"] = "http://127.0.0.1:9", ["FhirSortie:Telemetry:OtlpProtocol"] = "http/protobuf" },
            TestServices = services =>
            {
                services.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(spans));
                // Activity listeners are process-wide: keep only this test's requests, not those of gateways running beside it.
                services.PostConfigure<AspNetCoreTraceInstrumentationOptions>(options =>
                {
                    var gatewayFilter = options.Filter;
                    options.Filter = http => http.Request.Headers.ContainsKey(Marker) && (gatewayFilter?.Invoke(http) ?? true);
                });
            },
        };
        var fhir = gateway.Fhir();
        fhir.DefaultRequestHeaders.Add(Marker, "1");
        var created = await (await fhir.PostAsync("Patient", FhirHttp.Json(NewPatient()))).ReadAs<Patient>();
        Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync($"Patient/{created.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync($"Patient?family={Family}&identifier=urn:oid:1.2.250.1.213.1.4.8|{Ins}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync("/health")).StatusCode);

        // A server span ends after its response has gone: wait for the three FHIR interactions.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        List<Activity> server;
        do
        {
            lock (spans) server = spans.Where(s => s.Kind == ActivityKind.Server).ToList();
            if (server.Count >= 3) break;
            await System.Threading.Tasks.Task.Delay(20);
        }
        while (DateTime.UtcNow < deadline);

        Assert.Equal(3, server.Count); // /health is not traced
        var routes = server.Select(s => s.GetTagItem("http.route") as string).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["/fhir/{type}", "/fhir/{type}", "/fhir/{type}/{id}"], routes);
        Assert.Contains(server, s => s.DisplayName == "GET /fhir/{type}/{id}");
        List<Activity> all;
        lock (spans) all = spans.ToList();
        foreach (var span in all)
        {
            var texts = span.TagObjects.Select(t => $"{t.Key}={t.Value}").Append(span.DisplayName).ToList();
            foreach (var secret in new[] { created.Id!, Ins, Family, "/fhir/Patient" })
                Assert.DoesNotContain(texts, t => t.Contains(secret, StringComparison.OrdinalIgnoreCase));
        }
    }

    /// <summary>With an OTLP endpoint, what the metric exporter receives (an in-memory exporter beside OTLP's).</summary>
    private static async Task<List<string>> ExportedInstrumentsAsync(Gateway gateway, List<Metric> metrics, Func<HttpClient, Task> requests)
    {
        await requests(gateway.Fhir());
        // False here: the OTLP export to the closed port fails; the in-memory exporter has its copy all the same.
        gateway.Services.GetRequiredService<MeterProvider>().ForceFlush(10_000);
        lock (metrics) return metrics.Select(m => $"{m.MeterName}/{m.Name}").Distinct().ToList();
    }

    /// <summary>A gateway exporting metrics over OTLP (to a closed port) and to <paramref name="metrics"/>.</summary>
    private static T MetricGateway<T>(List<Metric> metrics) where T : Gateway, new()
    {
        var gateway = new T { TestServices = services => services.ConfigureOpenTelemetryMeterProvider(m => m.AddInMemoryExporter(metrics)) };
        gateway.Settings["FhirSortie:Telemetry:OtlpEndpoint"] = "http://127.0.0.1:9";
        gateway.Settings["FhirSortie:Telemetry:OtlpProtocol"] = "http/protobuf";
        return gateway;
    }

    [Fact]
    public async Task Sqlite_metrics_export_the_gateway_meter_and_request_durations()
    {
        var metrics = new List<Metric>();
        using var gateway = MetricGateway<SqliteGateway>(metrics);
        var exported = await ExportedInstrumentsAsync(gateway, metrics, async fhir =>
        {
            var created = await (await fhir.PostAsync("Patient", FhirHttp.Json(NewPatient()))).ReadAs<Patient>();
            Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync($"Patient/{created.Id}")).StatusCode);
        });
        Assert.Contains("FhirSortie/fhirsortie.sqlite.write.turn.duration", exported);
        Assert.Contains("FhirSortie/fhirsortie.audit.batch.size", exported);
        Assert.Contains("Microsoft.AspNetCore.Hosting/http.server.request.duration", exported);
    }

    [Fact]
    public async Task Postgres_metrics_export_npgsql_connection_pool_instruments()
    {
        var metrics = new List<Metric>();
        using var gateway = MetricGateway<PostgresGateway>(metrics);
        var exported = await ExportedInstrumentsAsync(gateway, metrics, async fhir =>
            Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync("Patient")).StatusCode));
        Assert.Contains(exported, name => name.StartsWith(GatewayTelemetry.NpgsqlMeter + "/db.client.", StringComparison.Ordinal));
        Assert.Contains("FhirSortie/fhirsortie.audit.batch.size", exported);
    }
}
