using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using FhirSortie.Server.Storage;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Audit;

/// <summary>
/// One file of the audit journal (<see cref="AuditJournal"/>) and the thread that appends to it. Records queued here are
/// written by that thread in batches of up to <see cref="MaxBatch"/>, one transaction per batch (BEGIN IMMEDIATE,
/// one INSERT per record, COMMIT with its WAL fsync), on a connection kept for it; a record's task completes once its
/// batch is committed. A dedicated thread rather than the thread pool: it spends most of its time blocked in fsync, and
/// several of them (one per lane) would take the few pool threads a 2-core machine has away from requests.
/// </summary>
internal sealed class AuditJournalLane : IDisposable
{
    public const int MaxBatch = 64;

    private readonly string _connectionString;
    private readonly ConcurrentQueue<(AuditEntry Entry, TaskCompletionSource Durable)> _queue = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();
    private SqliteConnection? _connection; // used by the lane's thread only
    private SqliteCommand? _insert;
    private SqliteCommand? _delete;
    private volatile bool _writing;
    private long _appended; // the highest seq committed in this file
    private long _moved; // rows up to this seq are committed in the audit store
    private long _deleted; // rows up to this seq were deleted from this file (lane thread only)
    private long _batches;

    public AuditJournalLane(int index, string path)
    {
        Index = index;
        Schema = "journal" + index;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString();
        _thread = new Thread(Run) { IsBackground = true, Name = "audit-journal-" + index };
    }

    public int Index { get; }

    /// <summary>The name the store's writer connection attaches this file under (Storage/Sqlite/SqliteDialect.cs).</summary>
    public string Schema { get; }

    /// <summary>True while the lane is writing a batch: a record queued now waits for the next one.</summary>
    public bool Busy => _writing;

    public int Queued => _queue.Count;

    public long Appended => Volatile.Read(ref _appended);

    public long Moved => Volatile.Read(ref _moved);

    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Creates the file's table if needed, learns the highest seq it holds and starts the lane's thread.</summary>
    public void Start()
    {
        using (var connection = Open())
        using (var max = connection.CreateCommand())
        {
            max.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM audit_journal";
            Raise(ref _appended, (long)max.ExecuteScalar()!);
        }
        _thread.Start();
    }

    public Task AppendAsync(AuditEntry entry)
    {
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Enqueue((entry, durable));
        _signal.Release();
        return durable.Task;
    }

    /// <summary>The store committed this file's rows up to <paramref name="seq"/>: the lane deletes them with its next batch.</summary>
    public void MovedUpTo(long seq)
    {
        Raise(ref _moved, seq);
        Raise(ref _appended, seq);
    }

    private void Run()
    {
        var batch = new List<(AuditEntry Entry, TaskCompletionSource Durable)>(MaxBatch);
        var stopping = false;
        while (!stopping)
        {
            try
            {
                _signal.Wait(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                stopping = true; // write what is queued, then end
            }
            while (!_queue.IsEmpty)
            {
                batch.Clear();
                while (batch.Count < MaxBatch && _queue.TryDequeue(out var next)) batch.Add(next);
                _writing = true;
                try
                {
                    WriteWithRetries(batch);
                    foreach (var (_, durable) in batch) durable.TrySetResult();
                }
                catch (Exception e)
                {
                    // Every request of the batch fails as a lone one would have: none is answered as audited.
                    foreach (var (_, durable) in batch) durable.TrySetException(e);
                }
                finally
                {
                    _writing = false;
                }
            }
        }
    }

    private void WriteWithRetries(List<(AuditEntry Entry, TaskCompletionSource Durable)> batch)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                Write(batch);
                Interlocked.Increment(ref _batches);
                return;
            }
            catch (SqliteException e) when (attempt < 3 && e.SqliteErrorCode is 5 or 6)
            {
                // BUSY or LOCKED (another process on the file): nothing was written, try again.
            }
        }
    }

    private void Write(List<(AuditEntry Entry, TaskCompletionSource Durable)> batch)
    {
        try
        {
            _connection ??= Open();
            _insert ??= Prepare(_connection,
                "INSERT INTO audit_journal (id, recorded, interaction, action, outcome, entry, keys) VALUES ($i, $r, $s, $a, $o, $e, $k)",
                "$i", "$r", "$s", "$a", "$o", "$e", "$k");
            _delete ??= Prepare(_connection, "DELETE FROM audit_journal WHERE seq <= $m", "$m");
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
            foreach (var (e, _) in batch)
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

    /// <summary>The record's search keys as a JSON array of [param, system, value] (the move expands it with json_each).</summary>
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

    /// <summary>Stops the thread once the records queued so far are written, and closes the file.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        if (_thread.IsAlive) _thread.Join();
        while (_queue.TryDequeue(out var left)) left.Durable.TrySetException(new ObjectDisposedException(nameof(AuditJournal)));
        Drop();
    }
}
