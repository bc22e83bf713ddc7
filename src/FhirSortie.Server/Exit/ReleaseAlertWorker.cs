using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Exit;

/// <summary>
/// The time-driven half of the release alerts (<see cref="ReleaseAlerts"/>): writes raise and lower alerts as they
/// happen, but a release entering the hand-off window (7 days) is brought by time alone. Every
/// <see cref="ReleaseAlertOptions.CheckMinutes"/>, each node looks for in-progress detention stays whose planned release
/// falls within the window and recomputes their person's alerts, one short write transaction per person. Every node runs
/// it (no leader to lose): two nodes checking the same stay take turns on its row lock and the second finds the Flag
/// already as it should be, so nothing is written or announced twice.
/// </summary>
public sealed class ReleaseAlertWorker(ResourceStore store, SearchEngine engine, ReleaseAlerts alerts, TimeProvider clock, ILogger<ReleaseAlertWorker> logger)
    : BackgroundService
{
    private const int MaxStays = 5_000;

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (alerts.Options.CheckMinutes <= 0) return;
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(alerts.Options.CheckMinutes), clock);
        do
        {
            try
            {
                var written = await CheckAsync(clock.GetUtcNow(), stoppingToken);
                if (written > 0) logger.LogInformation("Release alert check wrote {Alerts} alert version(s)", written);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // The next round checks again; no patient data in the message.
                logger.LogError(e, "Release alert check failed");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>Recomputes the alerts of everyone whose planned release is within the window as of <paramref name="now"/>; returns the Flag versions written.</summary>
    public async Task<int> CheckAsync(DateTimeOffset now, CancellationToken ct)
    {
        var until = now.AddDays(alerts.Options.HandoffDays).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        IReadOnlyList<StoredResource> stays;
        await using (var connection = await store.OpenAsync(ct))
        {
            stays = await engine.FindAsync(connection, null, "Encounter",
            [
                new("type", $"{ReleaseDates.EncounterTypes}|{ReleaseDates.DetentionStayCode}"), new("status", "in-progress"), new("release-date", "le" + until),
            ], AccessFilter.None, MaxStays, ct);
        }
        var patients = stays.Select(s => s.Json is { } json ? FhirResponse.ParseStored(json) : null).OfType<Encounter>()
            .Select(e => e.Subject?.Reference).OfType<string>().Where(r => r.StartsWith("Patient/", StringComparison.Ordinal))
            .Select(r => r["Patient/".Length..]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        var written = 0;
        foreach (var patient in patients)
            written += await store.WriteAsync(session => alerts.RecomputeAsync(session, patient, now, ct), ct);
        return written;
    }
}
