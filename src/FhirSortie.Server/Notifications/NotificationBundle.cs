using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// The body POSTed to a rest-hook endpoint, in the shape of the Subscriptions R5 Backport IG for R4: a history
/// Bundle whose first entry is a SubscriptionStatus <see cref="Parameters"/> (subscription, status, type,
/// events-since-subscription-start, and per event notification-event with event-number, timestamp and focus).
/// Id-only (the default): the focus entry carries only its fullUrl and request, never the resource. Full resource:
/// only when the Subscription asked for application/fhir+json and the access rules allowed it at delivery.
/// Criteria-based R4 Subscriptions have no SubscriptionTopic, so no topic parameter is sent.
/// </summary>
public static class NotificationBundle
{
    public const string StatusProfile = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";
    public const string NotificationProfile = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";

    public static Bundle Handshake(string baseUrl, SubscriberRecord subscriber, DateTimeOffset now) =>
        Build(baseUrl, subscriber, "handshake", SubscriberRecord.Requested, now, null, null);

    public static Bundle Event(string baseUrl, SubscriberRecord subscriber, long eventNumber, StoredResource focus, Resource? content, DateTimeOffset now) =>
        Build(baseUrl, subscriber, "event-notification", SubscriberRecord.Active, now, (eventNumber, focus), content);

    /// <summary>A SubscriptionStatus (R4 backport: a Parameters resource) of <paramref name="type"/> handshake, event-notification or query-status.</summary>
    public static Parameters Status(string baseUrl, string subscriptionId, string type, string status, long eventsSinceStart)
    {
        var parameters = new Parameters { Id = Rest.FhirRequest.NewId(), Meta = new Meta { Profile = [StatusProfile] } };
        parameters.Add("subscription", new ResourceReference($"{baseUrl}/Subscription/{subscriptionId}"));
        parameters.Add("status", new Code(status));
        parameters.Add("type", new Code(type));
        // string in the R4 backport: R4 has no 64-bit integer.
        parameters.Add("events-since-subscription-start", new FhirString(eventsSinceStart.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return parameters;
    }

    private static Bundle Build(string baseUrl, SubscriberRecord subscriber, string type, string status, DateTimeOffset now,
        (long Number, StoredResource Focus)? notification, Resource? content)
    {
        var statusParameters = Status(baseUrl, subscriber.Id, type, status, notification?.Number ?? 0);
        var bundle = new Bundle
        {
            Id = Rest.FhirRequest.NewId(),
            Meta = new Meta { Profile = [NotificationProfile] },
            Type = Bundle.BundleType.History,
            Timestamp = now,
        };
        bundle.Entry.Add(new Bundle.EntryComponent
        {
            FullUrl = $"urn:uuid:{statusParameters.Id}",
            Resource = statusParameters,
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.GET, Url = $"{baseUrl}/Subscription/{subscriber.Id}/$status" },
            Response = new Bundle.ResponseComponent { Status = "200" },
        });
        if (notification is { } n)
        {
            var focusUrl = $"{baseUrl}/{n.Focus.Type}/{n.Focus.Id}";
            statusParameters.Parameter.Add(new Parameters.ParameterComponent
            {
                Name = "notification-event",
                Part =
                [
                    new Parameters.ParameterComponent { Name = "event-number", Value = new FhirString(n.Number.ToString(System.Globalization.CultureInfo.InvariantCulture)) },
                    new Parameters.ParameterComponent { Name = "timestamp", Value = new Instant(n.Focus.LastUpdated) },
                    new Parameters.ParameterComponent { Name = "focus", Value = new ResourceReference($"{focusUrl}/_history/{n.Focus.Version}") },
                ],
            });
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = focusUrl,
                Resource = content,
                Request = new Bundle.RequestComponent
                {
                    Method = n.Focus.Deleted ? Bundle.HTTPVerb.DELETE : n.Focus.Version == 1 ? Bundle.HTTPVerb.POST : Bundle.HTTPVerb.PUT,
                    Url = $"{n.Focus.Type}/{n.Focus.Id}",
                },
                // A deletion has no content to send, whatever the payload asked for (as a history entry of a delete).
                Response = new Bundle.ResponseComponent { Status = n.Focus.Deleted ? "204" : n.Focus.Version == 1 ? "201" : "200" },
            });
        }
        return bundle;
    }
}
