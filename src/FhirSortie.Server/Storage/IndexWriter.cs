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
            if (existed) prepared.DeleteAll(key);
            if (entries is not null) prepared.Insert(key, type, entries);
            return;
        }
        await using var cmd = Sql.Command(connection, tx, "");
        var sql = new StringBuilder();
        // SQLite keys some index tables by their whole row (Schema.SearchIndexesSqliteV2): a repeated row is dropped there.
        var insert = connection is Microsoft.Data.Sqlite.SqliteConnection ? "INSERT OR IGNORE INTO " : "INSERT INTO ";
        cmd.With("@k", key).With("@t", type);
        if (existed)
        {
            foreach (var table in Tables) sql.Append("DELETE FROM ").Append(table).Append(" WHERE rkey = @k;\n");
        }
        if (entries is not null)
        {
            var n = 0;
            Rows(sql, cmd, insert, ref n, "search_string (rkey, type, param, value, exact)", entries.Strings, e => [e.Param, e.Value, e.Exact]);
            Rows(sql, cmd, insert, ref n, "search_token (rkey, type, param, system, code, text)", entries.Tokens, e => [e.Param, e.System, e.Code, e.Text]);
            Rows(sql, cmd, insert, ref n, "search_reference (rkey, type, param, target_type, target_id, url, version)", entries.References, e => [e.Param, e.TargetType, e.TargetId, e.Url, e.Version]);
            Rows(sql, cmd, insert, ref n, "search_date (rkey, type, param, low, high)", entries.Dates, e => [e.Param, e.Low, e.High]);
            Rows(sql, cmd, insert, ref n, "search_number (rkey, type, param, low, high)", entries.Numbers, e => [e.Param, e.Low, e.High]);
            Rows(sql, cmd, insert, ref n, "search_quantity (rkey, type, param, system, code, low, high)", entries.Quantities, e => [e.Param, e.System, e.Code, e.Low, e.High]);
            Rows(sql, cmd, insert, ref n, "search_uri (rkey, type, param, value)", entries.Uris, e => [e.Param, e.Value]);
            Rows(sql, cmd, insert, ref n, "search_composite (rkey, type, param, system1, code1, system2, code2, low2, high2)", entries.Composites, e => [e.Param, e.System1, e.Code1, e.System2, e.Code2, e.Low2, e.High2]);
            if (entries.Compartments.Count > 0)
            {
                sql.Append(insert).Append("resource_compartment (rkey, compartment_type, compartment_id) VALUES ");
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

    private static void Rows<T>(StringBuilder sql, DbCommand cmd, string insert, ref int n, string target, List<T> rows, Func<T, object?[]> values)
    {
        if (rows.Count == 0) return;
        sql.Append(insert).Append(target).Append(" VALUES ");
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
/// SQLite: one single-row INSERT per index table, run once per row on statements kept prepared on the writer
/// connection (<see cref="PreparedStatements"/>: parsed once per connection, not once per session or per resource).
/// SQLite runs in-process, so the multi-row command saves no round trip there; instead it cost a parse of a new SQL
/// text per resource and a bind of every parameter of the command by name for each of its statements
/// (Microsoft.Data.Sqlite binds a command's whole parameter collection statement by statement).
/// OR IGNORE on the tables keyed by their whole row (Schema.SearchIndexesSqliteV2): a repeated row is kept once.
/// </summary>
public sealed class PreparedRows(PreparedStatements statements, DbTransaction tx)
{
    private const string Strings = "INSERT OR IGNORE INTO search_string (rkey, type, param, value, exact) VALUES (@p0, @p1, @p2, @p3, @p4)";
    private const string Tokens = "INSERT INTO search_token (rkey, type, param, system, code, text) VALUES (@p0, @p1, @p2, @p3, @p4, @p5)";
    private const string References = "INSERT INTO search_reference (rkey, type, param, target_type, target_id, url, version) VALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6)";
    private const string Dates = "INSERT OR IGNORE INTO search_date (rkey, type, param, low, high) VALUES (@p0, @p1, @p2, @p3, @p4)";
    private const string Numbers = "INSERT OR IGNORE INTO search_number (rkey, type, param, low, high) VALUES (@p0, @p1, @p2, @p3, @p4)";
    private const string Quantities = "INSERT INTO search_quantity (rkey, type, param, system, code, low, high) VALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6)";
    private const string Uris = "INSERT OR IGNORE INTO search_uri (rkey, type, param, value) VALUES (@p0, @p1, @p2, @p3)";
    private const string Composites = "INSERT INTO search_composite (rkey, type, param, system1, code1, system2, code2, low2, high2) VALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8)";
    private const string Compartments = "INSERT OR IGNORE INTO resource_compartment (rkey, compartment_type, compartment_id) VALUES (@p0, @p1, @p2)";

    /// <summary>Every index row of a resource, on one multi-statement DELETE (an update replaces them all).</summary>
    public static readonly string Delete = string.Concat(
        new[] { "search_string", "search_token", "search_reference", "search_date", "search_number", "search_quantity", "search_uri", "search_composite", "resource_compartment" }
            .Select(t => $"DELETE FROM {t} WHERE rkey = @p0;\n"));

    public void Insert(long key, string type, IndexEntries e)
    {
        foreach (var x in e.Strings) Run(Strings, [key, type, x.Param, x.Value, x.Exact]);
        foreach (var x in e.Tokens) Run(Tokens, [key, type, x.Param, x.System, x.Code, x.Text]);
        foreach (var x in e.References) Run(References, [key, type, x.Param, x.TargetType, x.TargetId, x.Url, x.Version]);
        foreach (var x in e.Dates) Run(Dates, [key, type, x.Param, x.Low, x.High]);
        foreach (var x in e.Numbers) Run(Numbers, [key, type, x.Param, x.Low, x.High]);
        foreach (var x in e.Quantities) Run(Quantities, [key, type, x.Param, x.System, x.Code, x.Low, x.High]);
        foreach (var x in e.Uris) Run(Uris, [key, type, x.Param, x.Value]);
        foreach (var x in e.Composites) Run(Composites, [key, type, x.Param, x.System1, x.Code1, x.System2, x.Code2, x.Low2, x.High2]);
        foreach (var x in e.Compartments) Run(Compartments, [key, x.CompartmentType, x.CompartmentId]);
    }

    // Several statements: through Microsoft.Data.Sqlite, which runs them all (SQLite's own API prepares only the first).
    public void DeleteAll(long key) => statements.For(tx, Delete, [key]).ExecuteNonQuery();

    // Synchronous on purpose: Microsoft.Data.Sqlite has no asynchronous I/O (its async methods run synchronously).
    private void Run(string sql, ReadOnlySpan<object?> values)
    {
        if (statements.Native is { } native) native.Run(sql, values);
        else statements.For(tx, sql, values).ExecuteNonQuery();
    }
}
