using FhirSortie.Server.Notifications;
using FhirSortie.Tests.Consents;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Notifications;

/// <summary>
/// The outbox survives the process: a gateway that stops with notifications queued (here: one that does not deliver)
/// leaves them in the database, and the next gateway on the same database delivers them with its background worker.
/// </summary>
public abstract class SubscriptionRestartTests<TGateway> where TGateway : Gateway, new()
{
    /// <summary>Settings that point successive gateways at one database.</summary>
    protected abstract Dictionary<string, string?> SharedStorage();

    private TGateway Start(Dictionary<string, string?> storage, bool deliver)
    {
        var gateway = SubscriptionGateway<TGateway>.Configure(new TGateway(), deliver);
        foreach (var (key, value) in storage) gateway.Settings[key] = value;
        _ = gateway.Services; // starts the host (and its worker)
        return gateway;
    }

    [Fact]
    public async Task Notifications_queued_when_the_gateway_stopped_are_delivered_by_the_next_one()
    {
        await using var receiver = await NotificationReceiver.StartAsync();
        var storage = SharedStorage();
        var org = NewRun();
        var hook = "restart-" + NewRun();
        string subscription;
        using (var first = Start(storage, deliver: true))
        {
            var x = SubscriptionTests<TGateway>.As(first, "csapa-x", SubscriptionGateway<TGateway>.CsapaX);
            subscription = (await x.CreateAsync(SubscriptionTests<TGateway>.NewSubscription($"Task?owner=Organization/{org}", receiver.Url(hook)))).Id!;
            Assert.True(await NotificationReceiver.EventuallyAsync(async () =>
                (await (await x.GetAsync($"Subscription/{subscription}")).ReadAs<Subscription>()).Status == Subscription.SubscriptionStatus.Active));
        }
        string task;
        using (var second = Start(storage, deliver: false))
        {
            var usmp = second.Fhir();
            var patient = (await usmp.CreateAsync(Patient(NewRun(), "180029900000003", "Redemarrage"))).Id!;
            await usmp.CreateAsync(TestConsents.Permit(patient, SubscriptionGateway<TGateway>.CsapaX, "Task"));
            task = (await usmp.CreateAsync(SubscriptionTests<TGateway>.HandOff(patient, org))).Id!;
            await System.Threading.Tasks.Task.Delay(300);
            Assert.DoesNotContain(receiver.At(hook), r => r.Type == "event-notification");
        }
        using (var third = Start(storage, deliver: true))
        {
            Assert.True(await NotificationReceiver.EventuallyAsync(() =>
                System.Threading.Tasks.Task.FromResult(receiver.At(hook).Any(r => r.Type == "event-notification"))), "not delivered after the restart");
            var notification = Assert.Single(receiver.At(hook), r => r.Type == "event-notification");
            Assert.Equal($"Task/{task}", notification.Focus);
            // Sent once: the row is gone, nothing more comes.
            Assert.Equal(0, await third.Services.GetRequiredService<DeliveryWorker>().DeliverDueAsync(CancellationToken.None));
        }
    }
}

public sealed class SqliteSubscriptionRestartTests : SubscriptionRestartTests<SqliteGateway>, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "fhirsortie-tests", "restart-" + Guid.NewGuid().ToString("N"));

    protected override Dictionary<string, string?> SharedStorage() => new() { ["FhirSortie:DataDirectory"] = _directory };

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

public sealed class PostgresSubscriptionRestartTests : SubscriptionRestartTests<PostgresGateway>
{
    protected override Dictionary<string, string?> SharedStorage() => new() { ["FhirSortie:Storage:ConnectionString"] = TestPostgres.CreateDatabase() };
}
