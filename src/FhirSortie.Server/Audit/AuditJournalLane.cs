using System.Buffers;
using System.Text.Json;
using FhirSortie.Server.Storage;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Audit;

/// <summary>
/// One file of the audit journal (<see cref="AuditJournal"/>). Records are written in batches of up to
/// <see cref="MaxBatch"/> (<see cref="GroupedWrites{T}"/>: the caller that finds the lane idle writes the batch), one
/// transaction per batch (BEGIN IMMEDIATE, one INSERT per record, COMMIT with its WAL fsync), on a connection kept for
/// it; a record's task completes once its batch is committed. Not a thread per lane: context switches cost dearly on
/// this VM, and a thread per lane took 7.2 per read against 3.0 before the journal (perf stat,
/// bench/results/2026-11-23-audit-journal.md).
/// </summary>
internal sealed class AuditJournalLane : IDisposable
{
    public const int MaxBatch = 64;

    private readonly string _connectionString;
    private readonly string _readConnectionString;
    private readonly GroupedWrites<AuditEntry> _writes;
    private readonly Lock _connectionLock = new(); // a batch in progress, or the disposal
    private SqliteConnection? _connection; // used by the writer of the moment only
    private SqliteCommand? _insert;
    private SqliteCommand? _delete;
    private bool _disposed;
    private long _appended; // the highest seq committed in this file
    private long _moved; // rows up to this seq are committed in the audit store
    private long _deleted; // rows up to this seq were deleted from this file (writer only)

    public AuditJournalLane(string path)
    {
        _writes = new GroupedWrites<AuditEntry>(batch =>
        {
            WriteWithRetries(batch);
            return System.Threading.Tasks.Task.CompletedTask;
        }, MaxBatch);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString();
        _readConnectionString = new SqliteConnectionStringBuilder(_connectionString) { Mode = SqliteOpenMode.ReadOnly, Pooling = true }.ToString();
    }

    /// <summary>True while the lane is writing a batch: a record queued now waits for the next one.</summary>
    public bool Busy => _writes.Busy;

    public int Queued => _writes.Queued;

    public long Appended => Volatile.Read(ref _appended);

    public long Moved => Volatile.Read(ref _moved);

    public long Batches => _writes.Batches;

    /// <summary>Creates the file's table if needed and learns the highest seq it holds.</summary>
    public void Start()
    {
        using (var connection = Open())
        using (var max = connection.CreateCommand())
        {
            max.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM audit_journal";
            Raise(ref _appended, (long)max.ExecuteScalar()!);
        }
    }

    public Task AppendAsync(AuditEntry entry) =>
        _disposed ? System.Threading.Tasks.Task.FromException(new ObjectDisposedException(nameof(AuditJournal))) : _writes.WriteAsync(entry);

    /// <summary>One journal row as the move reads it.</summary>
    public sealed record Row(long Seq, string Id, long Recorded, string Interaction, string Action, string Outcome, string Entry, List<AuditStore.Key> Keys);

    /// <summary>
    /// Up to <paramref name="limit"/> rows after <paramref name="seq"/>, in order, read one at a time (nothing of a move is
    /// held in memory) on a connection of their own: a WAL reader, it neither waits for the lane's writer nor holds it back.
    /// </summary>
    public RowCursor ReadAfter(long seq, int limit) => new(_readConnectionString, seq, limit);

    /// <summary>The rows of one move, read as they are inserted.</summary>
    public sealed class RowCursor : IDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _select;
        private readonly SqliteDataReader _reader;

        public RowCursor(string connectionString, long seq, int limit)
        {
            _connection = new SqliteConnection(connectionString);
            try
            {
                _connection.Open();
                _select = _connection.CreateCommand();
                _select.CommandText = "SELECT seq, id, recorded, interaction, action, outcome, entry, keys FROM audit_journal WHERE seq > $s ORDER BY seq LIMIT $n";
                _select.Parameters.AddWithValue("$s", seq);
                _select.Parameters.AddWithValue("$n", limit);
                _reader = _select.ExecuteReader();
            }
            catch
            {
                _connection.Dispose();
                throw;
            }
        }

        /// <summary>The row <see cref="Read"/> moved to.</summary>
        public Row Current { get; private set; } = null!;

        public int Count { get; private set; }

        public bool Read()
        {
            if (!_reader.Read()) return false;
            Current = new Row(_reader.GetInt64(0), _reader.GetString(1), _reader.GetInt64(2), _reader.GetString(3), _reader.GetString(4),
                _reader.GetString(5), _reader.GetString(6), ParseKeys(_reader.GetString(7)));
            Count++;
            return true;
        }

        public void Dispose()
        {
            _reader.Dispose();
            _select.Dispose();
            _connection.Dispose();
        }
    }

    /// <summary>The store committed this file's rows up to <paramref name="seq"/>: the lane deletes them with its next batch.</summary>
    public void MovedUpTo(long seq)
    {
        Raise(ref _moved, seq);
        Raise(ref _appended, seq);
    }

    private void WriteWithRetries(List<AuditEntry> batch)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                lock (_connectionLock)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);
                    Write(batch);
                }
                return;
            }
            catch (SqliteException e) when (attempt < 3 && e.SqliteErrorCode is 5 or 6)
            {
                // BUSY or LOCKED (another process on the file): nothing was written, try again.
            }
        }
    }

    private void Write(List<AuditEntry> batch)
    {
        try
        {
            _connection ??= Open();
            _insert ??= Prepare(_connection,
                "INSERT INTO audit_journal (id, recorded, interaction, action, outcome, entry, keys) VALUES ($i, $r, $s, $a, $o, $e, $k)",
                "$i", "$r", "$s", "$a", "$o", "$e", "$k");
            // The newest row stays (moved or not): new rowids follow it, so seq never goes back below what was moved.
            _delete ??= Prepare(_connection, "DELETE FROM audit_journal WHERE seq <= $m AND seq < (SELECT MAX(seq) FROM audit_journal)", "$m");
            using var transaction = _connection.BeginTransaction(deferred: false);
            // Rows the store holds now are deleted in this transaction: no commit of their own.
            var moved = Moved;
            if (moved > _deleted)
            {
                _delete.Transaction = transaction;
                _delete.Parameters[0].Value = moved;
                _delete.ExecuteNonQuery();
            }
            _insert.Transaction = transaction;
            var p = _insert.Parameters;
            foreach (var e in batch)
            {
                p[0].Value = e.Id;
                p[1].Value = e.Recorded;
                p[2].Value = e.Interaction;
                p[3].Value = AuditEventRows.ActionCode(e.Interaction);
                p[4].Value = AuditEventRows.OutcomeCode(e.Status);
                p[5].Value = e.ToJson();
                p[6].Value = KeysJson(AuditStore.Keys(e));
                _insert.ExecuteNonQuery();
            }
            var last = SQLitePCL.raw.sqlite3_last_insert_rowid(_connection.Handle);
            transaction.Commit();
            _deleted = Math.Max(_deleted, moved);
            Raise(ref _appended, last);
        }
        catch
        {
            // The transaction is rolled back with the connection; the next batch starts on a new one.
            Drop();
            throw;
        }
    }

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            connection.Open();
            using var setup = connection.CreateCommand();
            // synchronous=FULL: the COMMIT fsyncs the WAL, so an appended record survives a crash, as the store's do.
            setup.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000; " + Storage.Schema.AuditJournalV1;
            setup.ExecuteNonQuery();
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private static SqliteCommand Prepare(SqliteConnection connection, string sql, params string[] names)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in names) command.Parameters.Add(new SqliteParameter { ParameterName = name });
        command.Prepare();
        return command;
    }

    private static List<AuditStore.Key> ParseKeys(string json)
    {
        using var document = JsonDocument.Parse(json);
        var keys = new List<AuditStore.Key>(document.RootElement.GetArrayLength());
        foreach (var key in document.RootElement.EnumerateArray())
            keys.Add(new AuditStore.Key(key[0].GetString()!, key[1].GetString()!, key[2].GetString()!));
        return keys;
    }

    /// <summary>The record's search keys as a JSON array of [param, system, value] (the move reads it back).</summary>
    private static string KeysJson(List<AuditStore.Key> keys)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var key in keys)
            {
                json.WriteStartArray();
                json.WriteStringValue(key.Param);
                json.WriteStringValue(key.System);
                json.WriteStringValue(key.Value);
                json.WriteEndArray();
            }
            json.WriteEndArray();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
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

    private void Drop()
    {
        _insert?.Dispose();
        _delete?.Dispose();
        _insert = _delete = null;
        _connection?.Dispose();
        _connection = null;
    }

    /// <summary>Closes the file once the batch being written (if any) is done; later records fail.</summary>
    public void Dispose()
    {
        lock (_connectionLock)
        {
            _disposed = true;
            Drop();
        }
    }
}
