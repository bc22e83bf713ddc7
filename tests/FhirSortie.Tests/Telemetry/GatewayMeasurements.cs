using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using FhirSortie.Server.Telemetry;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Telemetry;

/// <summary>What one gateway's meter ("FhirSortie") measured: test servers running side by side each have their own.</summary>
public sealed class GatewayMeasurements : IDisposable
{
    private readonly MeterListener _listener = new();
    public ConcurrentDictionary<string, ConcurrentBag<(double Value, KeyValuePair<string, object?>[] Tags)>> ByInstrument { get; } = new();

    public GatewayMeasurements(Gateway gateway)
    {
        var factory = gateway.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == GatewayTelemetry.MeterName && ReferenceEquals(instrument.Meter.Scope, factory))
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        _listener.Start();
    }

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
        ByInstrument.GetOrAdd(instrument.Name, _ => []).Add((value, tags.ToArray()));

    public void Observe() => _listener.RecordObservableInstruments();

    /// <summary>The value an observable instrument reports now (its earlier observations are forgotten).</summary>
    public double Current(string name)
    {
        ByInstrument.TryRemove(name, out _);
        Observe();
        return Assert.Single(Of(name)).Value;
    }

    public IReadOnlyList<(double Value, KeyValuePair<string, object?>[] Tags)> Of(string name) =>
        ByInstrument.TryGetValue(name, out var values) ? values.ToList() : [];

    public void Dispose() => _listener.Dispose();

    /// <summary>How many <paramref name="name"/> measured with tag <paramref name="key"/> = <paramref name="value"/> (sum of the values).</summary>
    public double Sum(string name, string key, string value) =>
        Of(name).Where(m => m.Tags.Contains(new KeyValuePair<string, object?>(key, value))).Sum(m => m.Value);
}
