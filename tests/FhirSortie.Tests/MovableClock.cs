namespace FhirSortie.Tests;

/// <summary>A clock that tests move by hand (expiries, refresh intervals), for stores that take a <see cref="TimeProvider"/>.</summary>
internal sealed class MovableClock : TimeProvider
{
    private long _ticks = DateTimeOffset.UtcNow.Ticks;

    public DateTimeOffset Now
    {
        get => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
        set => Interlocked.Exchange(ref _ticks, value.UtcTicks);
    }

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);

    public override DateTimeOffset GetUtcNow() => Now;

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
}
