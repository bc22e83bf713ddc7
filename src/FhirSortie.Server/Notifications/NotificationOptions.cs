namespace FhirSortie.Server.Notifications;

/// <summary>Subscription delivery settings (section "FhirSortie:Notifications").</summary>
public sealed class NotificationOptions
{
    public const string Section = "FhirSortie:Notifications";

    /// <summary>False on a node that must not deliver (it still records subscriptions and queues notifications).</summary>
    public bool Deliver { get; set; } = true;

    /// <summary>How often the worker looks for due notifications.</summary>
    public int PollMilliseconds { get; set; } = 250;

    /// <summary>Notifications claimed per round.</summary>
    public int BatchSize { get; set; } = 20;

    /// <summary>Time limit of one POST to a subscriber's endpoint.</summary>
    public int AttemptTimeoutMilliseconds { get; set; } = 5_000;

    /// <summary>In-process retries of one delivery (Polly, exponential backoff from <see cref="QuickRetryDelayMilliseconds"/>).</summary>
    public int QuickRetries { get; set; } = 2;

    public int QuickRetryDelayMilliseconds { get; set; } = 200;

    /// <summary>After a failed delivery (quick retries included), the next attempt waits this long, doubled per attempt.</summary>
    public int BackoffMilliseconds { get; set; } = 5_000;

    public int MaxBackoffMilliseconds { get; set; } = 600_000;

    /// <summary>Consecutive failed deliveries after which the Subscription goes to status error and deliveries stop.</summary>
    public int MaxFailures { get; set; } = 5;

    /// <summary>
    /// How long a claimed notification is reserved for the node that claimed it. A node that dies mid-delivery
    /// leaves it claimed; another node (or the restarted one) takes it again once the lease has passed.
    /// </summary>
    public int LeaseMilliseconds { get; set; } = 60_000;
}
