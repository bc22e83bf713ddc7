using System.Collections.Concurrent;

namespace FhirSortie.Server.Storage;

/// <summary>
/// Items that concurrent callers each need written durably before they go on (audit records), written in batches:
/// the caller that finds the writer idle writes its own item and every one queued meanwhile, up to
/// <paramref name="maxBatch"/>, in one call of <paramref name="write"/> (one transaction, one COMMIT and fsync); callers
/// arriving during that write queue for the next batch, which a thread-pool task writes. No timer: a lone caller pays
/// one commit. An item's task completes once its batch is written, or fails with the batch's exception, so the queue
/// only ever holds what nobody has been told is written: it is safe to lose.
/// The first batch runs on the caller's thread: no thread to wake and no hand-over for it, which matters where context
/// switches are dear (bench/results/2026-11-23-audit-journal.md). SQLite's calls run synchronously, so that caller only
/// gets its answer after its batch, never after later ones: those go to the pool.
/// <paramref name="written"/>, when given, is told the size of every batch written (Telemetry/: the audit batch sizes).
/// </summary>
public sealed class GroupedWrites<T>(Func<List<T>, Task> write, int maxBatch, Action<int>? written = null)
{
    private readonly ConcurrentQueue<(T Item, TaskCompletionSource Written)> _queue = new();
    private int _writing; // 1 while a batch is being written (and until the queue is seen empty)

    /// <summary>True while a batch is being written: an item queued now waits for the next one.</summary>
    public bool Busy => Volatile.Read(ref _writing) == 1;

    public int Queued => _queue.Count;

    private long _batches;

    /// <summary>Batches written so far: fewer than the items when callers run concurrently.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    public Task WriteAsync(T item)
    {
        var written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Enqueue((item, written));
        if (Interlocked.CompareExchange(ref _writing, 1, 0) == 0) _ = LeadAsync();
        return written.Task;
    }

    /// <summary>The caller's batch, then (on the pool) whatever was queued meanwhile. Never throws.</summary>
    private async Task LeadAsync()
    {
        await WriteBatchAsync();
        if (!Release()) _ = Task.Run(WriteQueuedAsync);
    }

    private async Task WriteQueuedAsync()
    {
        do
        {
            await WriteBatchAsync();
        }
        while (!Release());
    }

    /// <summary>
    /// Gives the writer up when nothing is queued; false (still holding it) when items are waiting, including one queued
    /// between the last batch and the release, which saw the writer busy and left it to us.
    /// </summary>
    private bool Release()
    {
        if (!_queue.IsEmpty) return false;
        Volatile.Write(ref _writing, 0);
        return _queue.IsEmpty || Interlocked.CompareExchange(ref _writing, 1, 0) != 0;
    }

    private async Task WriteBatchAsync()
    {
        var batch = new List<(T Item, TaskCompletionSource Written)>(Math.Min(maxBatch, Math.Max(1, _queue.Count)));
        while (batch.Count < maxBatch && _queue.TryDequeue(out var next)) batch.Add(next);
        if (batch.Count == 0) return;
        try
        {
            await write(batch.Select(b => b.Item).ToList());
            Interlocked.Increment(ref _batches);
            written?.Invoke(batch.Count);
            foreach (var (_, done) in batch) done.TrySetResult();
        }
        catch (Exception e)
        {
            // Every caller of the batch fails as a lone one would have: none is told its item is written.
            foreach (var (_, done) in batch) done.TrySetException(e);
        }
    }
}
