using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace FhirSortie.Server.Storage.Sqlite;

/// <summary>
/// The single-row INSERTs the write path runs most (the index rows: about 150 per exit package; resources, versions and
/// origins: about 40), prepared with SQLite's
/// own API on the kept writer connection and run by bind, step, reset. Through Microsoft.Data.Sqlite every execution of
/// a kept command still created a data reader, looked each parameter's index up by its name and walked the connection's
/// command list on the way: more managed work than SQLite's own INSERT of the row, all of it inside the writer's turn.
/// Values are bound as Microsoft.Data.Sqlite binds them (text as UTF-8, long and int as int64, double as double, byte[] as a blob, null
/// as NULL),
/// so the rows are the same. One writer at a time uses them (its turn), as <see cref="PreparedStatements"/>.
/// </summary>
public sealed class NativeStatements(SqliteConnection connection) : IDisposable
{
    private readonly Dictionary<string, sqlite3_stmt> _statements = new(StringComparer.Ordinal);

    /// <summary>Statements prepared so far (tests check that they are reused).</summary>
    public int Count => _statements.Count;

    /// <summary>Runs <paramref name="sql"/> (one statement that returns no row) with ?1, ?2... or @p0, @p1... bound to <paramref name="values"/> in order.</summary>
    public void Run(string sql, ReadOnlySpan<object?> values)
    {
        var db = connection.Handle ?? throw new InvalidOperationException("The writer connection is closed.");
        if (!_statements.TryGetValue(sql, out var statement))
        {
            var prepared = raw.sqlite3_prepare_v2(db, sql, out statement, out var tail);
            if (prepared != raw.SQLITE_OK) SqliteException.ThrowExceptionForRC(prepared, db);
            if (!string.IsNullOrWhiteSpace(tail))
            {
                statement.Dispose();
                throw new ArgumentException("One statement at a time: SQLite prepares only the first.", nameof(sql));
            }
            _statements[sql] = statement;
        }
        if (raw.sqlite3_bind_parameter_count(statement) != values.Length)
            throw new ArgumentException($"The statement takes {raw.sqlite3_bind_parameter_count(statement)} values, not {values.Length}.", nameof(values));
        try
        {
            for (var i = 0; i < values.Length; i++) Bind(statement, i + 1, values[i], db);
            var rc = raw.sqlite3_step(statement);
            if (rc != raw.SQLITE_DONE) SqliteException.ThrowExceptionForRC(rc, db);
        }
        finally
        {
            raw.sqlite3_reset(statement); // its error, if any, was thrown by the step
        }
    }

    private static void Bind(sqlite3_stmt statement, int index, object? value, sqlite3 db)
    {
        var rc = value switch
        {
            null or DBNull => raw.sqlite3_bind_null(statement, index),
            string text => raw.sqlite3_bind_text(statement, index, text),
            long integer => raw.sqlite3_bind_int64(statement, index, integer),
            int integer => raw.sqlite3_bind_int64(statement, index, integer),
            // Microsoft.Data.Sqlite refuses NaN (SQLite would store NULL): refused here too.
            double real when double.IsNaN(real) => throw new InvalidOperationException("Cannot store a NaN value."),
            double real => raw.sqlite3_bind_double(statement, index, real),
            byte[] blob => raw.sqlite3_bind_blob(statement, index, blob),
            _ => throw new ArgumentException($"No native binding for a {value.GetType().Name}.", nameof(value)),
        };
        if (rc != raw.SQLITE_OK) SqliteException.ThrowExceptionForRC(rc, db);
    }

    /// <summary>Finalizes the statements (before the connection is closed).</summary>
    public void Dispose()
    {
        foreach (var statement in _statements.Values) statement.Dispose();
        _statements.Clear();
    }
}
