using System.Diagnostics.Metrics;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// How far notification delivery lags, read from the notification_outbox when a metric reader collects (OTLP: once a
/// minute; with no reader, never): the rows waiting, and the age of the oldest. Read from the database, not counted in
/// memory, because every node claims from the same outbox. A query that fails gives no measurement instead of failing
/// the exporter.
/// </summary>
public sealed class OutboxGauges
{
    public OutboxGauges(StorageDialect dialect, TimeProvider clock, Meter meter, ILogger<OutboxGauges> logger)
    {
        meter.CreateObservableGauge("fhirsortie.notifications.outbox.queued", () => Read(dialect, logger, "SELECT COUNT(*) FROM notification_outbox", v => v),
            "{notification}", "Notifications waiting in the outbox (due, being retried, or claimed and in flight).");
        meter.CreateObservableGauge("fhirsortie.notifications.outbox.oldest.age", () => Read(dialect, logger, "SELECT MIN(created) FROM notification_outbox",
                created => Math.Max(0, (clock.GetUtcNow().ToUnixTimeMilliseconds() - created) / 1000.0)),
            "s", "Age of the oldest notification in the outbox (0 when it is empty).");
    }

    private static IEnumerable<Measurement<double>> Read(StorageDialect dialect, ILogger logger, string sql, Func<double, double> measure)
    {
        double value;
        try
        {
            using var connection = dialect.CreateConnection();
            connection.Open();
            using var cmd = Sql.Command(connection, null, sql);
            var scalar = cmd.ExecuteScalar();
            value = scalar is null or DBNull ? 0 : measure(Convert.ToDouble(scalar, System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (System.Data.Common.DbException e)
        {
            logger.LogWarning(e, "Could not read the notification outbox for its gauges");
            yield break;
        }
        yield return new Measurement<double>(value);
    }
}
