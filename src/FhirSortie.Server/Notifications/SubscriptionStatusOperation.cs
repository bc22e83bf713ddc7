using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// GET [base]/Subscription/{id}/$status (Subscriptions R5 Backport IG for R4, operation backport-subscription-status):
/// a searchset Bundle holding the Subscription's SubscriptionStatus of type query-status: its status (requested, active,
/// error, off), the events queued for it since it started (events-since-subscription-start, the counter the
/// notifications' event-number comes from) and, in error, why. A receiver compares the count with the last event-number
/// it received to learn it missed notifications (an endpoint down, a notification dropped), and the notifications'
/// status entry points here. Read access as for the Subscription itself: its owner or an administrator
/// (<see cref="SubscriptionRule"/>), others 404.
/// </summary>
public static class SubscriptionStatusOperation
{
    public const string Definition = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status";

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var id = FhirRequest.Id(context);
        var ct = context.RequestAborted;
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Read, "Subscription");
        var store = FhirRequest.Store(context);
        var stored = Read.Found(await store.ReadAsync("Subscription", id, ct), "Subscription", id).Stored!;
        await access.RequireInstanceAsync(Interaction.Read, stored, ct);

        SubscriberRecord? record;
        await using (var connection = await store.OpenAsync(ct))
        {
            record = await SubscriberRecord.LoadAsync(connection, null, id, ct);
        }
        var subscription = (Subscription)FhirResponse.ParseStored(stored.Json!);
        // No row: a Subscription written without a client (only administrators see it); nothing was ever queued for it.
        var status = record?.Status ?? subscription.Status?.GetLiteral() ?? SubscriberRecord.Off;
        var parameters = NotificationBundle.Status(FhirBase.Of(context), id, "query-status", status, record?.Events ?? 0);
        if (status == SubscriberRecord.Error && subscription.Error is { Length: > 0 } error)
            parameters.Add("error", new CodeableConcept { Text = error });
        var bundle = new Bundle { Id = FhirRequest.NewId(), Type = Bundle.BundleType.Searchset, Total = 1, Timestamp = DateTimeOffset.UtcNow };
        bundle.Entry.Add(new Bundle.EntryComponent
        {
            FullUrl = $"urn:uuid:{parameters.Id}",
            Resource = parameters,
            Search = new Bundle.SearchComponent { Mode = Bundle.SearchEntryMode.Match },
        });
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, bundle));
    }
}
