using System.Buffers;
using FhirSortie.Server.Storage;
using Microsoft.Win32.SafeHandles;

namespace FhirSortie.Server.Audit;

/// <summary>
/// One lane of the audit journal (<see cref="AuditJournal"/>): a folder of append-only segment files
/// (<see cref="AuditJournalSegment"/>). Records are written in batches of up to <see cref="MaxBatch"/>
/// (<see cref="GroupedWrites{T}"/>: the caller that finds the lane idle writes the batch): one pwrite of the batch's
/// frames, then one fdatasync; a record's task completes once that returned. Each record gets the next seq; the mover
/// reads the segments from where its last move ended and, once the store committed them, deletes the segments it has
/// passed (one kept as the spare for the next segment). Why not a SQLite file any more: a batch there cost a
/// transaction's locks (fcntl), several WAL page writes and, with checkpoints, more fsyncs (0.39 per read for 0.2
/// batches), all on the request path; the frames need one write and one fdatasync. Not a thread per lane: context
/// switches cost dearly on this VM (bench/results/2026-11-23-audit-journal.md).
/// </summary>
internal sealed class AuditJournalLane : IDisposable
{
    public const int MaxBatch = 64;

    private readonly string _directory;
    private readonly GroupedWrites<AuditEntry> _writes;
    private readonly Lock _writing = new(); // the batch being written, or the disposal
    private readonly Lock _segmentsLock = new(); // _segments: the writer adds, the mover removes
    private readonly List<long> _segments = []; // first seq of each segment on disk, oldest first
    private readonly ArrayBufferWriter<byte> _buffer = new(64 * 1024); // the writer's frames
    private SafeFileHandle? _file; // the segment being appended to (writer only); null: the next batch starts a new one
    private long _offset; // where the next frame goes in _file
    private long _capacity; // _file's size
    private long _nextSeq = 1; // writer only
    private bool _disposed;
    private long _appended; // the highest seq acknowledged (on disk)
    private long _moved; // records up to this seq are committed in the audit store
    private Position _read; // where the next move starts reading (movers only, one at a time)

    /// <summary>Where a read of the segments stands: the segment (by its first seq), the offset in it, the seq expected there.</summary>
    public readonly record struct Position(long Segment, long Offset, long Seq);

    private readonly int _segmentBytes;

    public AuditJournalLane(string directory, int segmentBytes = AuditJournalSegment.DefaultBytes, Action<int>? written = null)
    {
        _directory = directory;
        _segmentBytes = segmentBytes;
        _writes = new GroupedWrites<AuditEntry>(batch =>
        {
            Write(batch);
            return System.Threading.Tasks.Task.CompletedTask;
        }, MaxBatch, written);
    }

    /// <summary>True while the lane is writing a batch: a record queued now waits for the next one.</summary>
    public bool Busy => _writes.Busy;

    public int Queued => _writes.Queued;

    public long Appended => Volatile.Read(ref _appended);

    public long Moved => Volatile.Read(ref _moved);

    public long Batches => _writes.Batches;

    /// <summary>
    /// Creates the folder if needed and learns what its segments hold (a crash may have left records, and a torn last
    /// frame, which is ignored). Appends go to a new segment, after every seq found: seqs never go back, and nothing is
    /// ever written after a frame that may be torn.
    /// </summary>
    public void Start()
    {
        Directory.CreateDirectory(_directory);
        var segments = AuditJournalSegment.List(_directory);
        long last = 0, newest = 0;
        foreach (var (first, path) in segments)
        {
            newest = first;
            if (AuditJournalSegment.LastSeq(path, first) is var found and > 0) last = found;
        }
        lock (_segmentsLock) _segments.AddRange(segments.Select(s => s.FirstSeq));
        _nextSeq = Math.Max(last, newest) + 1;
        Raise(ref _appended, last);
        // Segments deleted earlier were moved whole; the first one left starts where moves start.
        var start = segments.Count > 0 ? segments[0].FirstSeq : _nextSeq;
        Raise(ref _moved, Math.Min(start - 1, last));
        _read = new Position(start, 0, start);
    }

    public Task AppendAsync(AuditEntry entry) =>
        _disposed ? System.Threading.Tasks.Task.FromException(new ObjectDisposedException(nameof(AuditJournal))) : _writes.WriteAsync(entry);

    /// <summary>One journal record, its strings decoded (recovery, tests, an older build's journal file).</summary>
    public sealed record Row(long Seq, string Id, long Recorded, string Interaction, string Action, string Outcome, string Entry, List<AuditStore.Key> Keys);

    private void Write(List<AuditEntry> batch)
    {
        lock (_writing)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _buffer.ResetWrittenCount();
            var first = _nextSeq;
            var seq = first;
            foreach (var entry in batch) AuditJournalSegment.AppendFrame(_buffer, seq++, entry, AuditStore.Keys(entry));
            // Taken even if the write fails: some of those frames may be on disk, and a seq is never given twice.
            _nextSeq = seq;
            try
            {
                if (_file is null || _offset + _buffer.WrittenCount > _capacity) Roll(first, _buffer.WrittenCount);
                RandomAccess.Write(_file!, _buffer.WrittenSpan, _offset);
                AuditJournalSegment.Sync(_file!);
                _offset += _buffer.WrittenCount;
            }
            catch
            {
                // Where this segment ends on disk is unknown now: the next batch starts a new one.
                _file?.Dispose();
                _file = null;
                throw;
            }
            Raise(ref _appended, seq - 1);
        }
    }

    /// <summary>Starts a new segment whose first record is <paramref name="first"/>, big enough for <paramref name="bytes"/>.</summary>
    private void Roll(long first, long bytes)
    {
        _file?.Dispose();
        _file = null;
        _file = AuditJournalSegment.Create(_directory, AuditJournalSegment.PathOf(_directory, first), _segmentBytes, bytes, out _capacity);
        _offset = 0;
        lock (_segmentsLock) _segments.Add(first);
    }

    /// <summary>The first segment whose first seq is at least <paramref name="first"/>, if any.</summary>
    private long? SegmentFrom(long first)
    {
        lock (_segmentsLock)
        {
            foreach (var segment in _segments)
                if (segment >= first) return segment;
            return null;
        }
    }

    /// <summary>
    /// The next move's records: up to <paramref name="limit"/>, from where the last move ended, acknowledged ones only,
    /// read one at a time (nothing of a move is held in memory). Reading never holds the writer back.
    /// </summary>
    public RowCursor ReadMoves(int limit) => new(this, _read, Appended, limit);

    /// <summary>The records of one move, read as they are inserted.</summary>
    public sealed class RowCursor(AuditJournalLane lane, Position start, long lastSeq, int limit) : IDisposable
    {
        private FileStream? _stream;
        private long _end;
        private byte[] _scratch = new byte[4096];

        private int _length = -1;

        /// <summary>The seq of the record <see cref="Read"/> moved to.</summary>
        public long Seq { get; private set; }

        /// <summary>Its payload (<see cref="AuditJournalSegment.WritePayload"/>), valid until the next <see cref="Read"/>.</summary>
        public ReadOnlySpan<byte> Payload => _scratch.AsSpan(8, _length);

        public int Count { get; private set; }

        /// <summary>Where the next move starts, once this one's records are in the store.</summary>
        public Position After { get; private set; } = start;

        public bool Read()
        {
            if (Count == limit) return false;
            while (true)
            {
                // Not acknowledged yet: its frame may be being written.
                if (After.Seq > lastSeq) return false;
                if (_stream is null)
                {
                    if (lane.SegmentFrom(After.Segment) is not { } segment) return false;
                    if (segment != After.Segment) After = new Position(segment, 0, segment);
                    _stream = AuditJournalSegment.OpenRead(AuditJournalSegment.PathOf(lane._directory, segment));
                    _end = _stream.Length;
                    _stream.Position = After.Offset;
                    continue;
                }
                if (AuditJournalSegment.ReadFrame(_stream, _end, After.Seq, ref _scratch) is var length and >= 0)
                {
                    _length = length;
                    Seq = After.Seq;
                    Count++;
                    After = new Position(After.Segment, _stream.Position, Seq + 1);
                    return true;
                }
                // This segment ends here. A later one means this one is complete (a batch that failed may have left frames
                // past the last acknowledged one: read if whole, harmless); else the records expected are not written yet.
                if (lane.SegmentFrom(After.Segment + 1) is not { } next) return false;
                _stream.Dispose();
                _stream = null;
                After = new Position(next, 0, next);
            }
        }

        public void Dispose() => _stream?.Dispose();
    }

    /// <summary>
    /// The store committed the records <paramref name="moved"/> read, up to <paramref name="seq"/>: the next move starts
    /// after them, and the segments wholly before its position are deleted (one kept as the spare). The segment being
    /// appended to, and the newest one, are never before it.
    /// </summary>
    public void MovedUpTo(RowCursor moved, long seq)
    {
        _read = moved.After;
        Raise(ref _moved, seq);
        Raise(ref _appended, seq);
        List<long> done;
        lock (_segmentsLock)
        {
            done = _segments.Where(s => s < _read.Segment).ToList();
            _segments.RemoveAll(s => s < _read.Segment);
        }
        foreach (var segment in done)
        {
            var path = AuditJournalSegment.PathOf(_directory, segment);
            try
            {
                File.Move(path, Path.Combine(_directory, AuditJournalSegment.SpareName), overwrite: false);
            }
            catch (IOException)
            {
                // A spare is there already (or being taken): this one goes.
                File.Delete(path);
            }
        }
    }

    internal static void Raise(ref long field, long value)
    {
        var current = Volatile.Read(ref field);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref field, value, current);
            if (seen == current) return;
            current = seen;
        }
    }

    /// <summary>Closes the segment once the batch being written (if any) is done; later records fail.</summary>
    public void Dispose()
    {
        lock (_writing)
        {
            _disposed = true;
            _file?.Dispose();
            _file = null;
        }
    }
}
