using System.Data;
using System.Data.Common;
using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Server.Storage.Sqlite;

/// <summary>
/// Commands made with <see cref="Sql.Command"/> on SQLite's kept writer connection (<see cref="SqliteGroupCommit"/>)
/// keep their compiled statements when disposed, for the next command with the same text. The searches a write runs
/// (conditional creates and references, consent checks of matches, subscription criteria), the consent grants and the
/// audit row were compiled by SQLite again for every execution: parsing and planning were 6 % of the CPU of an
/// exit-package transaction with 8 concurrent writers (bench micro-tx-http, perf: sqlite3RunParser, whereLoop*,
/// resolveExprStep). Callers keep writing `await using var cmd = Sql.Command(...)`: disposing a kept command clears
/// its parameters and puts it back. Only one writer uses the connection at a time (its turn), and a command whose
/// reader is still open, or one beyond <see cref="MaxTexts"/> distinct texts, is really disposed.
/// </summary>
public sealed class KeptCommands : IDisposable
{
    /// <summary>Distinct statement texts kept: the write path has a few dozen; texts with inlined values would not repeat.</summary>
    public const int MaxTexts = 256;

    private static readonly ConditionalWeakTable<DbConnection, KeptCommands> Attached = new();

    private readonly SqliteConnection _connection;
    private readonly Dictionary<string, Stack<KeptCommand>> _idle = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private bool _closed;

    private KeptCommands(SqliteConnection connection) => _connection = connection;

    /// <summary>Commands compiled so far and idle (tests check that they are reused).</summary>
    public int Idle
    {
        get
        {
            lock (_lock) return _idle.Values.Sum(s => s.Count);
        }
    }

    /// <summary>Keeps the commands made on <paramref name="connection"/> from now on, until <see cref="Dispose"/>.</summary>
    public static KeptCommands Attach(SqliteConnection connection)
    {
        var kept = new KeptCommands(connection);
        Attached.AddOrUpdate(connection, kept);
        return kept;
    }

    public static KeptCommands? Of(DbConnection connection) => Attached.TryGetValue(connection, out var kept) ? kept : null;

    /// <summary>A command with <paramref name="text"/> on the connection: an idle one with its statement compiled, or a new one.</summary>
    public DbCommand Rent(DbTransaction? tx, string text)
    {
        KeptCommand? command = null;
        lock (_lock)
        {
            if (!_closed && _idle.TryGetValue(text, out var idle) && idle.Count > 0) command = idle.Pop();
        }
        command ??= new KeptCommand(this) { Connection = _connection, CommandText = text };
        command.Transaction = (SqliteTransaction?)tx;
        return command;
    }

    /// <summary>Takes a disposed command back; false when it must really be disposed.</summary>
    private bool TryReturn(KeptCommand command)
    {
        if (command.ReaderOpen || !ReferenceEquals(command.Connection, _connection)) return false;
        command.Parameters.Clear();
        command.Transaction = null;
        lock (_lock)
        {
            if (_closed) return false;
            if (!_idle.TryGetValue(command.CommandText, out var idle))
            {
                if (_idle.Count >= MaxTexts) return false;
                _idle[command.CommandText] = idle = new Stack<KeptCommand>();
            }
            idle.Push(command);
            return true;
        }
    }

    /// <summary>Disposes the idle commands and stops keeping (before the connection is closed).</summary>
    public void Dispose()
    {
        List<KeptCommand> idle;
        lock (_lock)
        {
            _closed = true;
            idle = _idle.Values.SelectMany(s => s).ToList();
            _idle.Clear();
        }
        Attached.Remove(_connection);
        foreach (var command in idle) command.Close();
    }

    private sealed class KeptCommand(KeptCommands owner) : SqliteCommand
    {
        private SqliteDataReader? _reader;

        public bool ReaderOpen => _reader is { IsClosed: false };

        // Every execution (ExecuteNonQuery, ExecuteScalar, the async forms) goes through ExecuteReader.
        public override SqliteDataReader ExecuteReader(CommandBehavior behavior) => _reader = base.ExecuteReader(behavior);

        /// <summary>Really disposes (the compiled statements with it).</summary>
        public void Close() => base.Dispose(true);

        protected override void Dispose(bool disposing)
        {
            if (disposing && owner.TryReturn(this)) return;
            base.Dispose(disposing);
        }
    }
}
