using System.Data.Common;

namespace FhirSortie.Server.Storage;

/// <summary>
/// Commands prepared once on a connection that outlives its units of work (SQLite's kept writer, see
/// <see cref="Sqlite.SqliteGroupCommit"/>) and run again with new values. SQLite parsed and planned every statement
/// of the write path again for each execution (sqlite3RunParser, keywordCode in the profiles): about a hundred
/// statements per exit package. Parameters are positional, named @p0, @p1...; one writer at a time uses them.
/// </summary>
public sealed class PreparedStatements(DbConnection connection) : IDisposable
{
    private readonly Dictionary<string, (DbCommand Command, DbParameter[] Parameters)> _commands = new(StringComparer.Ordinal);

    /// <summary>Statements prepared so far on this connection (tests check that they are reused, not multiplied).</summary>
    public int Count => _commands.Count;

    /// <summary>SQLite: the index-row INSERTs, run without Microsoft.Data.Sqlite's per-execution work (Sqlite/NativeStatements.cs).</summary>
    public Sqlite.NativeStatements? Native { get; } = connection is Microsoft.Data.Sqlite.SqliteConnection sqlite ? new Sqlite.NativeStatements(sqlite) : null;

    /// <summary>The kept command for <paramref name="sql"/>, in <paramref name="transaction"/>, with @p0... set to <paramref name="values"/>.</summary>
    public DbCommand For(DbTransaction transaction, string sql, ReadOnlySpan<object?> values)
    {
        if (!_commands.TryGetValue(sql, out var kept))
        {
            var command = connection.CreateCommand();
            command.CommandText = sql;
            var parameters = new DbParameter[values.Length];
            for (var i = 0; i < values.Length; i++)
            {
                parameters[i] = command.CreateParameter();
                parameters[i].ParameterName = Name(i);
                command.Parameters.Add(parameters[i]);
            }
            kept = (command, parameters);
            _commands[sql] = kept;
        }
        if (kept.Parameters.Length != values.Length)
            throw new ArgumentException($"The statement takes {kept.Parameters.Length} values, not {values.Length}.", nameof(values));
        kept.Command.Transaction = transaction;
        for (var i = 0; i < values.Length; i++) kept.Parameters[i].Value = values[i] ?? DBNull.Value;
        return kept.Command;
    }

    private static readonly string[] Names = Enumerable.Range(0, 16).Select(i => "@p" + i).ToArray();

    public static string Name(int i) => i < Names.Length ? Names[i] : "@p" + i;

    public void Dispose()
    {
        Native?.Dispose();
        foreach (var (command, _) in _commands.Values) command.Dispose();
        _commands.Clear();
    }
}

/// <summary>
/// A command of the write path with its values bound: kept prepared (<see cref="PreparedStatements"/>) where the
/// connection allows it, a new command otherwise. Dispose it either way; only a new command is really disposed.
/// </summary>
public readonly struct Statement(DbCommand command, bool kept) : IAsyncDisposable
{
    public DbCommand Command => command;

    /// <summary>A statement on <paramref name="unit"/>: kept prepared when it has <see cref="WriteUnit.Statements"/>.</summary>
    public static Statement On(WriteUnit unit, string sql, params ReadOnlySpan<object?> values)
    {
        if (unit.Statements is { } statements) return new Statement(statements.For(unit.Transaction, sql, values), kept: true);
        var cmd = Sql.Command(unit.Connection, unit.Transaction, sql);
        for (var i = 0; i < values.Length; i++) cmd.With(PreparedStatements.Name(i), values[i]);
        return new Statement(cmd, kept: false);
    }

    public ValueTask DisposeAsync() => kept ? ValueTask.CompletedTask : command.DisposeAsync();
}
