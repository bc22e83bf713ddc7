using System.Collections.Concurrent;

namespace FhirSortie.Server.Storage;

/// <summary>
/// Open connections kept idle between requests with what was prepared on them (the store's current-version readers,
/// the search connections): one request takes one, gives it back when done. Bounded: beyond <paramref name="max"/> idle
/// ones, a returned connection is closed, as it is once the queue is disposed.
/// </summary>
public sealed class IdleConnections<T>(int max) : IAsyncDisposable where T : class, IAsyncDisposable
{
    private readonly ConcurrentQueue<(T Kept, long IdleSince)> _idle = new();
    private int _count;
    private volatile bool _disposed;

    /// <summary>An idle one and how long it has been idle (ms), or false when none is.</summary>
    public bool TryTake(out T kept, out long idleMilliseconds)
    {
        if (_idle.TryDequeue(out var idle))
        {
            Interlocked.Decrement(ref _count);
            (kept, idleMilliseconds) = (idle.Kept, Environment.TickCount64 - idle.IdleSince);
            return true;
        }
        (kept, idleMilliseconds) = (null!, 0);
        return false;
    }

    /// <summary>Keeps <paramref name="kept"/> for the next request, or closes it when enough are idle or on shutdown.</summary>
    public async ValueTask ReturnAsync(T kept)
    {
        if (!_disposed && Interlocked.Increment(ref _count) <= max)
        {
            _idle.Enqueue((kept, Environment.TickCount64));
            if (_disposed) await CloseIdleAsync(); // lost a race with shutdown: close what is left
            return;
        }
        Interlocked.Decrement(ref _count);
        await kept.DisposeAsync();
    }

    /// <summary>Closes every idle one (after a failover they are most likely all dead).</summary>
    public async ValueTask CloseIdleAsync()
    {
        while (TryTake(out var kept, out _)) await kept.DisposeAsync();
    }

    public ValueTask DisposeAsync()
    {
        _disposed = true;
        return CloseIdleAsync();
    }
}
