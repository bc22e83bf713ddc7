using System.Data.Common;
using System.Text;
using FhirSortie.Server.Search;

namespace FhirSortie.Server.Storage;

/// <summary>
/// Writes a resource's index rows in the same database transaction as the resource itself,
/// as one multi-row command (one round trip to PostgreSQL, whatever the number of rows).
/// </summary>
public static class IndexWriter
{
    private static readonly string[] Tables =
        ["search_string", "search_token", "search_reference", "search_date", "search_number", "search_quantity", "search_uri", "search_composite", "resource_compartment"];

    public static async Task ReplaceAsync(DbConnection connection, DbTransaction tx, long key, string type, IndexEntries? entries, bool existed, CancellationToken ct)
    {
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
