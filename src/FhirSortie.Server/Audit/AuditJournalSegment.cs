using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace FhirSortie.Server.Audit;

/// <summary>
/// One segment file of an audit journal lane (<see cref="AuditJournalLane"/>): records appended one after the other, each
/// framed as <c>[payload length u32][CRC-32 u32][seq u64][payload]</c> (little-endian), the CRC covering seq and payload.
/// A segment is created full size (zeros, fsynced with its directory) so that appending never changes the file's size
/// and the fdatasync per batch flushes data blocks only, no inode. Reading stops at the first frame that is not whole:
/// a zero length (space never written), a length past the end, a CRC that does not match (a write torn by a crash) or a
/// seq other than the one expected (a reused file's older frames): what follows is never read. A record is only
/// acknowledged once its frame and every earlier one are on disk, so nothing acknowledged lies past such a frame.
/// File name: the seq of its first record (19 digits), so that listing the folder gives the segments in order.
/// </summary>
internal static class AuditJournalSegment
{
    /// <summary>Size of a new segment: about 16,000 records of a read (about 1 KB each).</summary>
    public const int DefaultBytes = 16 << 20;

    public const int HeaderBytes = 16;

    private const string Extension = ".seg";

    /// <summary>A moved segment kept for reuse (already allocated on disk): renamed into the next segment.</summary>
    public const string SpareName = "spare.seg.tmp";

    public static string PathOf(string directory, long firstSeq) =>
        Path.Combine(directory, firstSeq.ToString("D19", CultureInfo.InvariantCulture) + Extension);

    /// <summary>The segments of <paramref name="directory"/>, oldest first.</summary>
    public static List<(long FirstSeq, string Path)> List(string directory)
    {
        var segments = new List<(long, string)>();
        if (!Directory.Exists(directory)) return segments;
        foreach (var path in Directory.EnumerateFiles(directory, "*" + Extension))
            if (long.TryParse(Path.GetFileNameWithoutExtension(path), NumberStyles.None, CultureInfo.InvariantCulture, out var first))
                segments.Add((first, path));
        segments.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return segments;
    }

    /// <summary>Appends the frame of <paramref name="entry"/> as record <paramref name="seq"/> to <paramref name="buffer"/>.</summary>
    public static void AppendFrame(ArrayBufferWriter<byte> buffer, long seq, AuditEntry entry, List<AuditStore.Key> keys)
    {
        var start = buffer.WrittenCount;
        buffer.GetSpan(HeaderBytes);
        buffer.Advance(HeaderBytes);
        WritePayload(buffer, entry.Id, entry.Recorded, entry.Interaction, AuditEventRows.ActionCode(entry.Interaction),
            AuditEventRows.OutcomeCode(entry.Status), entry.ToJson(), keys);
        // The header is filled in place once the payload's length is known (GetSpan may have moved the buffer: look again).
        var frame = MemoryMarshal.AsMemory(buffer.WrittenMemory).Span[start..];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)(frame.Length - HeaderBytes));
        BinaryPrimitives.WriteInt64LittleEndian(frame[8..], seq);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], Crc32.HashToUInt32(frame[8..]));
    }

    /// <summary>
    /// A record's payload: the audit_events columns (id, recorded, interaction, action, outcome, entry) then its search
    /// keys (count, then param, system, value each), strings as their UTF-8 length (7-bit groups) and bytes: the move
    /// binds those bytes as they are (<see cref="Payload"/>).
    /// </summary>
    public static void WritePayload(ArrayBufferWriter<byte> buffer, string id, long recorded, string interaction, string action, string outcome,
        string entry, List<AuditStore.Key> keys)
    {
        WriteString(buffer, id);
        BinaryPrimitives.WriteInt64LittleEndian(buffer.GetSpan(8), recorded);
        buffer.Advance(8);
        WriteString(buffer, interaction);
        WriteString(buffer, action);
        WriteString(buffer, outcome);
        WriteString(buffer, entry);
        WriteCount(buffer, keys.Count);
        foreach (var key in keys)
        {
            WriteString(buffer, key.Param);
            WriteString(buffer, key.System);
            WriteString(buffer, key.Value);
        }
    }

    /// <summary>A payload read field by field, its strings as UTF-8 spans (no copy).</summary>
    public ref struct Payload(ReadOnlySpan<byte> bytes)
    {
        private ReadOnlySpan<byte> _rest = bytes;

        public ReadOnlySpan<byte> NextString()
        {
            var length = ReadCount(ref _rest);
            var value = _rest[..length];
            _rest = _rest[length..];
            return value;
        }

        public long NextInt64()
        {
            var value = BinaryPrimitives.ReadInt64LittleEndian(_rest);
            _rest = _rest[8..];
            return value;
        }

        public int NextCount() => ReadCount(ref _rest);
    }

    /// <summary>The record in <paramref name="payload"/> with its strings decoded (recovery, tests).</summary>
    public static AuditJournalLane.Row Decode(long seq, ReadOnlySpan<byte> payload)
    {
        var p = new Payload(payload);
        var id = Encoding.UTF8.GetString(p.NextString());
        var recorded = p.NextInt64();
        var interaction = Encoding.UTF8.GetString(p.NextString());
        var action = Encoding.UTF8.GetString(p.NextString());
        var outcome = Encoding.UTF8.GetString(p.NextString());
        var entry = Encoding.UTF8.GetString(p.NextString());
        var count = p.NextCount();
        var keys = new List<AuditStore.Key>(count);
        for (var i = 0; i < count; i++)
            keys.Add(new AuditStore.Key(Encoding.UTF8.GetString(p.NextString()), Encoding.UTF8.GetString(p.NextString()), Encoding.UTF8.GetString(p.NextString())));
        return new AuditJournalLane.Row(seq, id, recorded, interaction, action, outcome, entry, keys);
    }

    /// <summary>
    /// Reads the frame at the stream's position if it is whole (within <paramref name="end"/>, the file's length) and holds
    /// record <paramref name="seq"/>: its payload's length, the payload being in <paramref name="scratch"/> from byte 8.
    /// Else -1, and the position is unspecified (the segment ends there).
    /// </summary>
    public static int ReadFrame(Stream stream, long end, long seq, ref byte[] scratch)
    {
        Span<byte> header = stackalloc byte[HeaderBytes];
        if (stream.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false) < HeaderBytes) return -1;
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        if (length == 0 || length > end - stream.Position) return -1;
        if (BinaryPrimitives.ReadInt64LittleEndian(header[8..]) != seq) return -1;
        if (scratch.Length < length + 8) scratch = new byte[Math.Max(length + 8, scratch.Length * 2)];
        var body = scratch.AsSpan(0, (int)length + 8);
        header[8..].CopyTo(body);
        stream.ReadExactly(body[8..]);
        return Crc32.HashToUInt32(body) == BinaryPrimitives.ReadUInt32LittleEndian(header[4..]) ? (int)length : -1;
    }

    /// <summary>Every whole record of the segment, in order, as recovery reads it.</summary>
    public static IEnumerable<AuditJournalLane.Row> ReadAll(string path, long firstSeq)
    {
        using var stream = OpenRead(path);
        var scratch = new byte[4096];
        var end = stream.Length;
        for (var seq = firstSeq; ReadFrame(stream, end, seq, ref scratch) is var length and >= 0; seq++)
            yield return Decode(seq, scratch.AsSpan(8, length));
    }

    /// <summary>The seq of the segment's last whole record (0 if it has none), its frames checked, not decoded (start).</summary>
    public static long LastSeq(string path, long firstSeq)
    {
        using var stream = OpenRead(path);
        var scratch = new byte[4096];
        var end = stream.Length;
        var seq = firstSeq;
        while (ReadFrame(stream, end, seq, ref scratch) >= 0) seq++;
        return seq == firstSeq ? 0 : seq - 1;
    }

    public static FileStream OpenRead(string path) =>
        new(path, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.ReadWrite | FileShare.Delete, BufferSize = 64 * 1024, Options = FileOptions.SequentialScan });

    /// <summary>
    /// A new segment at <paramref name="path"/> of <paramref name="size"/>, or more for a batch of <paramref name="bytes"/>: the spare (a moved segment, its blocks
    /// already on disk) renamed when there is one big enough, else a new file written full of zeros and fsynced. Either way
    /// the folder is fsynced, so that the file is still there after a crash before a record in it is acknowledged.
    /// </summary>
    public static SafeFileHandle Create(string directory, string path, long size, long bytes, out long capacity)
    {
        if (TakeSpare(directory, path, bytes))
        {
            var reused = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete);
            capacity = RandomAccess.GetLength(reused);
            SyncDirectory(directory);
            return reused;
        }
        capacity = Math.Max(size, bytes);
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete);
        try
        {
            var zeros = new byte[1 << 20];
            for (long offset = 0; offset < capacity; offset += zeros.Length)
                RandomAccess.Write(handle, zeros.AsSpan(0, (int)Math.Min(zeros.Length, capacity - offset)), offset);
            Sync(handle, dataOnly: false);
            SyncDirectory(directory);
            return handle;
        }
        catch
        {
            handle.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>Renames the spare to <paramref name="path"/> if it is there and big enough (the mover may be putting one there).</summary>
    private static bool TakeSpare(string directory, string path, long bytes)
    {
        var spare = new FileInfo(Path.Combine(directory, SpareName));
        try
        {
            if (!spare.Exists || spare.Length < bytes) return false;
            File.Move(spare.FullName, path, overwrite: false);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Flushes the file's written data to disk (fdatasync: the size never changes, so no inode to write).</summary>
    public static void Sync(SafeFileHandle handle, bool dataOnly = true)
    {
        if (OperatingSystem.IsWindows())
        {
            // Not through a FileStream: disposing it would close the segment's handle.
            if (!Native.FlushFileBuffers(handle)) throw new IOException($"FlushFileBuffers of the audit journal failed (error {Marshal.GetLastPInvokeError()})");
            return;
        }
        var fd = (int)handle.DangerousGetHandle();
        int result;
        do result = dataOnly && OperatingSystem.IsLinux() ? Native.fdatasync(fd) : Native.fsync(fd);
        while (result != 0 && Marshal.GetLastPInvokeError() == 4); // EINTR
        if (result != 0) throw new IOException($"fsync of the audit journal failed (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>Makes a file created or renamed in <paramref name="directory"/> survive a crash (Linux: fsync of the folder).</summary>
    public static void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux()) return;
        var fd = Native.open(directory, 0 /* O_RDONLY */);
        if (fd < 0) throw new IOException($"cannot open {directory} to fsync it (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            // EINVAL, EBADF: the file system cannot fsync a folder (as PostgreSQL, go on without it).
            if (Native.fsync(fd) != 0 && Marshal.GetLastPInvokeError() is not (22 or 9))
                throw new IOException($"fsync of {directory} failed (errno {Marshal.GetLastPInvokeError()})");
        }
        finally
        {
            Native.close(fd);
        }
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        public static extern int fdatasync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi, BestFitMapping = false)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);

        [DllImport("kernel32", SetLastError = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        public static extern bool FlushFileBuffers(SafeFileHandle handle);
    }

    private static void WriteCount(ArrayBufferWriter<byte> buffer, int value)
    {
        var span = buffer.GetSpan(5);
        var n = 0;
        var v = (uint)value;
        for (; v >= 0x80; v >>= 7) span[n++] = (byte)(v | 0x80);
        span[n++] = (byte)v;
        buffer.Advance(n);
    }

    private static void WriteString(ArrayBufferWriter<byte> buffer, string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        WriteCount(buffer, length);
        Encoding.UTF8.GetBytes(value, buffer.GetSpan(length));
        buffer.Advance(length);
    }

    private static int ReadCount(ref ReadOnlySpan<byte> span)
    {
        var value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = span[0];
            span = span[1..];
            value |= (b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
    }
}
