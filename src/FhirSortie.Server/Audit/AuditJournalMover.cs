namespace FhirSortie.Server.Audit;

/// <summary>
/// Moves the audit journal's rows into the audit store in the background (SQLite; nothing to do on PostgreSQL): as soon
/// as a full move is waiting, else every <see cref="Interval"/>. Readers of AuditEvents do not
/// wait for it (they drain the journal themselves); it keeps the journal short and the store current.
/// </summary>
public sealed class AuditJournalMover(AuditJournal journal, ILogger<AuditJournalMover> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!journal.Enabled) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await journal.WaitForBacklogAsync(Interval, stoppingToken);
                // A backlog larger than one move (after a crash, or under a read storm) goes in successive units, each
                // short enough not to hold other writers back long.
                while ((await journal.MoveAsync(stoppingToken)).More) { }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The rows stay in the journal (durable) and are moved by the next attempt or the next reader.
                logger.LogWarning(e, "Moving audit records from the journal to the audit store failed; retrying");
                await System.Threading.Tasks.Task.Delay(Interval, stoppingToken);
            }
        }
    }
}
