using FhirSortie.Server.Rest;
using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Export;

/// <summary>
/// Every node's export worker: claims one export at a time (<see cref="ExportJobs.ClaimAsync"/>), runs it
/// (<see cref="ExportRun"/>) and removes expired ones. A kick-off on this node wakes it at once; otherwise it looks every
/// <see cref="ExportOptions.PollMilliseconds"/>, which is also how it picks up what a dead node left once its lease passed.
/// </summary>
public sealed class ExportWorker(ExportJobs jobs, ExportRun run, IOptions<ExportOptions> options, ILogger<ExportWorker> logger) : BackgroundService
{
    /// <summary>This process's name in lease_owner (a restarted node is a new owner: it waits for its old lease like any other).</summary>
    public string Owner { get; } = Environment.MachineName + "/" + Guid.NewGuid().ToString("N")[..8];

    private readonly SemaphoreSlim _wake = new(0, 1);

    /// <summary>A new export was accepted here: look now rather than at the next poll.</summary>
    public void Wake()
    {
        try { if (_wake.CurrentCount == 0) _wake.Release(); } catch (SemaphoreFullException) { }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        jobs.Lifetime = TimeSpan.FromMinutes(o.FileLifetimeMinutes);
        if (!o.Run) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await jobs.RemoveExpiredAsync(stoppingToken);
                while (await jobs.ClaimAsync(Owner, TimeSpan.FromMilliseconds(o.LeaseMilliseconds), o.MaxAttempts, stoppingToken) is { } job)
                {
                    logger.LogInformation("Export {ExportId} attempt {Attempt} started for client {ClientId}", job.Id, job.Attempts, job.ClientId);
                    await RunOneAsync(job, stoppingToken);
                }
                await _wake.WaitAsync(o.PollMilliseconds, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // The database was away: the next round tries again (a claimed job keeps its lease until it passes).
                logger.LogWarning("Export worker round failed: {Error}", e.GetType().Name);
                await Task.Delay(o.PollMilliseconds, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    private async Task RunOneAsync(ExportJob job, CancellationToken ct)
    {
        try
        {
            await run.RunAsync(job, ct);
        }
        catch (FhirException e)
        {
            // A search the kick-off accepted but the database now refuses (a parameter dropped since): the client is told.
            await jobs.FailAsync(job, e.Message, CancellationToken.None);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is not OperationCanceledException)
        {
            // The message may quote data; the client gets a plain one and the log the error's type only.
            logger.LogError("Export {ExportId} failed: {Error}", job.Id, e.GetType().Name);
            await jobs.FailAsync(job, "The export failed on the server; kick it off again.", CancellationToken.None);
        }
    }
}
