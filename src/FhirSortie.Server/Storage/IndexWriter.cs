using System.Data.Common;
using System.Text;
using FhirSortie.Server.Search;

namespace FhirSortie.Server.Storage;

/// <summary>
/// Writes a resource's index rows in the same database transaction as the resource itself,
/// as one multi-row command (one round trip to PostgreSQL, whatever the number of rows), or on SQLite through
/// <see cref="PreparedRows"/>.
/// </summary>
public static class IndexWriter
{
    private static readonly string[] Tables =
        ["search_string", "search_token", "search_reference", "search_date", "search_number", "search_quantity", "search_uri", "search_composite", "resource_compartment"];

    public static async Task ReplaceAsync(DbConnection connection, DbTransaction tx, long key, string type, IndexEntries? entries, bool existed, CancellationToken ct,
        PreparedRows? prepared = null)
    {
        if (prepared is not null)
        {
            if (existed) await DeleteAsync(connection, tx, key, ct);
            if (entries is not null) prepared.Insert(key, type, entries);
            return;
        }
        await using var cmd = Sql.Command(connection, tx, "");
        var sql = new StringBuilder();
        cmd.With("@k", key).With("@t", type);
        if (existed)
        {
            foreach (var table in Tables) sql.Append("DELETE FROM ").Append(table).Append(" WHERE rkey = @k;\n");
        }
        if (entries is not null)
        {
            var n = 0;
            Rows(sql, cmd, ref n, "search_string (rkey, type, param, value, exact)", entries.Strings, e => [e.Param, e.Value, e.Exact]);
            Rows(sql, cmd, ref n, "search_token (rkey, type, param, system, code, text)", entries.Tokens, e => [e.Param, e.System, e.Code, e.Text]);
            Rows(sql, cmd, ref n, "search_reference (rkey, type, param, target_type, target_id, url, version)", entries.References, e => [e.Param, e.TargetType, e.TargetId, e.Url, e.Version]);
            Rows(sql, cmd, ref n, "search_date (rkey, type, param, low, high)", entries.Dates, e => [e.Param, e.Low, e.High]);
            Rows(sql, cmd, ref n, "search_number (rkey, type, param, low, high)", entries.Numbers, e => [e.Param, e.Low, e.High]);
            Rows(sql, cmd, ref n, "search_quantity (rkey, type, param, system, code, low, high)", entries.Quantities, e => [e.Param, e.System, e.Code, e.Low, e.High]);
            Rows(sql, cmd, ref n, "search_uri (rkey, type, param, value)", entries.Uris, e => [e.Param, e.Value]);
            Rows(sql, cmd, ref n, "search_composite (rkey, type, param, system1, code1, system2, code2, low2, high2)", entries.Composites, e => [e.Param, e.System1, e.Code1, e.System2, e.Code2, e.Low2, e.High2]);
            if (entries.Compartments.Count > 0)
            {
                sql.Append("INSERT INTO resource_compartment (rkey, compartment_type, compartment_id) VALUES ");
                for (var i = 0; i < entries.Compartments.Count; i++)
                {
                    if (i > 0) sql.Append(", ");
                    sql.Append($"(@k, @c{i}a, @c{i}b)");
                    cmd.With($"@c{i}a", entries.Compartments[i].CompartmentType).With($"@c{i}b", entries.Compartments[i].CompartmentId);
                }
                sql.Append(";\n");
            }
        }
        if (sql.Length == 0) return;
        cmd.CommandText = sql.ToString();
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static async Task DeleteAsync(DbConnection connection, DbTransaction tx, long key, CancellationToken ct)
    {
        await using var cmd = Sql.Command(connection, tx, string.Concat(Tables.Select(t => $"DELETE FROM {t} WHERE rkey = @k;\n"))).With("@k", key);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static void Rows<T>(StringBuilder sql, DbCommand cmd, ref int n, string target, List<T> rows, Func<T, object?[]> values)
    {
        if (rows.Count == 0) return;
        sql.Append("INSERT INTO ").Append(target).Append(" VALUES ");
        for (var i = 0; i < rows.Count; i++)
        {
            if (i > 0) sql.Append(", ");
            sql.Append("(@k, @t");
            foreach (var v in values(rows[i]))
            {
                var name = "@p" + n++;
                sql.Append(", ").Append(name);
                cmd.With(name, v);
            }
            sql.Append(')');
        }
        sql.Append(";\n");
    }
}

/// <summary>
/// SQLite: one single-row INSERT per index table, prepared once per write session and run once per row. SQLite runs
/// in-process, so the multi-row command saves no round trip there; instead it cost a parse of a new SQL text per
/// resource and a bind of every parameter of the command by name for each of its statements (Microsoft.Data.Sqlite
/// binds a command's whole parameter collection statement by statement).
/// </summary>
public sealed class PreparedRows(DbConnection connection, DbTransaction tx) : IDisposable
{
    private readonly Dictionary<string, (DbCommand Command, DbParameter[] Values)> _statements = new(StringComparer.Ordinal);

    public void Insert(long key, string type, IndexEntries e)
    {
        foreach (var x in e.Strings) Run("search_string (rkey, type, param, value, exact)", key, type, x.Param, x.Value, x.Exact);
        foreach (var x in e.Tokens) Run("search_token (rkey, type, param, system, code, text)", key, type, x.Param, x.System, x.Code, x.Text);
        foreach (var x in e.References) Run("search_reference (rkey, type, param, target_type, target_id, url, version)", key, type, x.Param, x.TargetType, x.TargetId, x.Url, x.Version);
        foreach (var x in e.Dates) Run("search_date (rkey, type, param, low, high)", key, type, x.Param, x.Low, x.High);
        foreach (var x in e.Numbers) Run("search_number (rkey, type, param, low, high)", key, type, x.Param, x.Low, x.High);
        foreach (var x in e.Quantities) Run("search_quantity (rkey, type, param, system, code, low, high)", key, type, x.Param, x.System, x.Code, x.Low, x.High);
        foreach (var x in e.Uris) Run("search_uri (rkey, type, param, value)", key, type, x.Param, x.Value);
        foreach (var x in e.Composites) Run("search_composite (rkey, type, param, system1, code1, system2, code2, low2, high2)", key, type, x.Param, x.System1, x.Code1, x.System2, x.Code2, x.Low2, x.High2);
        foreach (var x in e.Compartments) Run("resource_compartment (rkey, compartment_type, compartment_id)", key, x.CompartmentType, x.CompartmentId);
    }

    // Synchronous on purpose: Microsoft.Data.Sqlite has no asynchronous I/O (its async methods run synchronously).
    private void Run(string target, params object?[] values)
    {
        if (!_statements.TryGetValue(target, out var statement))
        {
            var cmd = connection.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = $"INSERT INTO {target} VALUES ({string.Join(", ", values.Select((_, i) => "@v" + i))})";
            var parameters = new DbParameter[values.Length];
            for (var i = 0; i < values.Length; i++)
            {
                parameters[i] = cmd.CreateParameter();
                parameters[i].ParameterName = "@v" + i;
                cmd.Parameters.Add(parameters[i]);
            }
            statement = (cmd, parameters);
            _statements[target] = statement;
        }
        for (var i = 0; i < values.Length; i++) statement.Values[i].Value = values[i] ?? DBNull.Value;
        statement.Command.ExecuteNonQuery();
    }

    public void Dispose()
    {
        foreach (var (cmd, _) in _statements.Values) cmd.Dispose();
        _statements.Clear();
    }
}
