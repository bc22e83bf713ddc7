using System.Data.Common;

namespace FhirSortie.Server.Storage;

/// <summary>Small ADO.NET conveniences shared by both dialects.</summary>
public static class Sql
{
    /// <summary>A command; on SQLite's kept writer connection, one that keeps its compiled statement once disposed (Sqlite/KeptCommands.cs).</summary>
    public static DbCommand Command(DbConnection connection, DbTransaction? tx, string text)
    {
        if (Sqlite.KeptCommands.Of(connection) is { } kept) return kept.Rent(tx, text);
        var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = text;
        return cmd;
    }

    public static DbCommand With(this DbCommand cmd, string name, object? value)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.Value = value ?? DBNull.Value;
        cmd.Parameters.Add(p);
        return cmd;
    }

    public static StoredResource ReadStored(DbDataReader r, int offset = 0) => new(
        Key: r.GetInt64(offset),
        Type: r.GetString(offset + 1),
        Id: r.GetString(offset + 2),
        Version: r.GetInt32(offset + 3),
        LastUpdated: DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(offset + 4)),
        Deleted: r.GetInt32(offset + 5) != 0,
        Json: r.IsDBNull(offset + 6) ? null : (byte[])r.GetValue(offset + 6),
        Method: r.FieldCount > offset + 7 ? r.GetString(offset + 7) : "PUT");

    /// <summary>Columns matching <see cref="ReadStored"/> for the resources table aliased as <paramref name="alias"/>.</summary>
    public static string StoredColumns(string alias) =>
        $"{alias}.rkey, {alias}.type, {alias}.id, {alias}.version, {alias}.last_updated, {alias}.deleted, {alias}.json";
}
