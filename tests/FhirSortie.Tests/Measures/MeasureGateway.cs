using FhirSortie.Server.Measures;
using FhirSortie.Server.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Measures;

/// <summary>
/// One gateway per database for the indicator tests, on a clock the tests set (the time a package is stored is what
/// measure 1 compares with the release date). Tests share it: each crafts its own prisons (own FINESS) and its own year,
/// so that neither a USMP's nor an observer's evaluation sees another test's releases.
/// </summary>
public sealed class MeasureGateway<TGateway> : IDisposable where TGateway : Gateway, new()
{
    internal MovableClock Clock { get; } = new();

    public TGateway Gateway { get; }

    public MeasureGateway()
    {
        Gateway = new TGateway { TestServices = services => services.AddSingleton<TimeProvider>(Clock) };
        Gateway.Settings["FhirSortie:Notifications:Deliver"] = "false";
        Gateway.Settings["FhirSortie:ReleaseAlerts:CheckMinutes"] = "0";
    }

    /// <summary>The measure's counts before suppression, straight from its SQL (what the crafted-data tests check exactly).</summary>
    public async Task<CountTable> CountsAsync(MeasureDefinition measure, DateOnly start, DateOnly end, params string[] usmps)
    {
        var store = Gateway.Services.GetRequiredService<ResourceStore>();
        await using var connection = await store.OpenAsync(CancellationToken.None);
        var result = await MeasureEvaluation.RunAsync(connection, measure, new ReleaseSql(start, end, usmps.Length == 0 ? null : usmps), CancellationToken.None);
        return result.Table;
    }

    public void Dispose() => Gateway.Dispose();
}

[CollectionDefinition(Name)]
public sealed class SqliteMeasureCollection : ICollectionFixture<MeasureGateway<SqliteGateway>>
{
    public const string Name = "measures-sqlite";
}

[CollectionDefinition(Name)]
public sealed class PostgresMeasureCollection : ICollectionFixture<MeasureGateway<PostgresGateway>>
{
    public const string Name = "measures-postgres";
}
