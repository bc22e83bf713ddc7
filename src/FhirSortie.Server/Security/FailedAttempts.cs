using System.Collections.Concurrent;

namespace FhirSortie.Server.Security;

/// <summary>
/// Failures counted per key within a window: after <c>limit</c> failures of one key, that key must wait until its
/// window ends (<see cref="RetryAfter"/>). Used for client authentications at the OAuth endpoints
/// (<see cref="FailedClientAuthentications"/>) and for practitioners' passwords on the login page
/// (<see cref="FailedPractitionerLogins"/>). Per node and in memory, which is safe to lose: a restart forgets the
/// counts, and behind N nodes a guesser gets N times the budget. A limit of 0 counts nothing.
/// </summary>
public abstract class FailedAttempts(int limit, TimeSpan window, TimeProvider clock)
{
    /// <summary>More keys than this: the expired windows are dropped, and if that is not enough, all (safe to lose).</summary>
    private const int MaxKeys = 10_000;

    private readonly ConcurrentDictionary<(string, string), Window> _windows = new();

    public int Limit => limit;

    private sealed class Window(DateTimeOffset ends)
    {
        public DateTimeOffset Ends { get; } = ends;
        public int Failures;
    }

    /// <summary>How long <paramref name="key"/> must wait, or null when it may try (at most <paramref name="limit"/> failures, default the configured one).</summary>
    public TimeSpan? RetryAfter((string, string) key, int? limitOfKey = null)
    {
        var max = limitOfKey ?? limit;
        if (limit <= 0 || !_windows.TryGetValue(key, out var current)) return null;
        var left = current.Ends - clock.GetUtcNow();
        return left > TimeSpan.Zero && Volatile.Read(ref current.Failures) >= max ? left : null;
    }

    public void Failed((string, string) key)
    {
        if (limit <= 0) return;
        var now = clock.GetUtcNow();
        if (_windows.Count >= MaxKeys) Prune(now);
        var counted = _windows.AddOrUpdate(key, _ => new Window(now + window), (_, current) => current.Ends > now ? current : new Window(now + window));
        Interlocked.Increment(ref counted.Failures);
    }

    private void Prune(DateTimeOffset now)
    {
        foreach (var (key, counted) in _windows)
            if (counted.Ends <= now) _windows.TryRemove(key, out _);
        if (_windows.Count >= MaxKeys) _windows.Clear();
    }
}
