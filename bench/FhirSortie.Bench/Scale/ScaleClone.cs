extern alias server;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;
using NpgsqlTypes;
using server::FhirSortie.Server.Rest;
using server::FhirSortie.Server.Storage;
using server::FhirSortie.Server.Storage.Postgres;
using server::FhirSortie.Server.Storage.Sqlite;

namespace FhirSortie.Bench.Scale;

/// <summary>
/// scale-clone: the documented bulk path from the people <see cref="ScaleLoad"/> posted through the gateway (the
/// templates) up to <c>people</c> people. Person n (beyond the templates) is a copy of template ((n - 1) mod templates):
/// every row the write path left for the template (its resources and versions, every search index row, compartment
/// rows, conditional keys, consent grants, origins; found through the template patient's compartment) is copied
/// with the template's resource ids, INS and local business keys replaced by the clone's own (fresh time-ordered ids
/// from the gateway's own generator, a valid INS, "S{n}-..." keys) and its rkeys moved past the highest one. So a
/// clone's rows are the rows the write path would have written for a package with the clone's identifiers: same
/// JSON shape, same index rows (<c>scale-verify</c> re-indexes a sample of clones with the gateway's indexer and
/// compares). Shared reference data (organisations, prescribers, places) is not copied: the clones point to it.
/// Audit records are not copied (scale-audit writes them). PostgreSQL: binary COPY; SQLite: prepared INSERTs.
/// Resumable: the clones made are appended to people.tsv after each committed batch.
/// </summary>
public static class ScaleClone
{
    /// <summary>Tables keyed by rkey (the template's rows are those of its resources), and the sequence-like column to leave out.</summary>
    private static readonly (string Table, string? Skip)[] RkeyTables =
    [
        ("resources", null), ("resource_versions", "seq"), ("search_string", null), ("search_token", null), ("search_reference", null),
        ("search_date", null), ("search_number", null), ("search_quantity", null), ("search_uri", null), ("search_composite", null),
        ("resource_compartment", null), ("conditional_keys", null),
    ];

    private sealed record Rows(string Table, string[] Columns, List<object?[]> Values);

    private sealed record Template(string[] Line, long[] Rkeys, Dictionary<long, int> RkeyIndex, string[] Ids, List<Rows> Tables);

    public static async Task<int> RunAsync(string storage, string outDir, int people, int batch)
    {
        StorageDialect dialect = ScaleGateway.IsPostgres(storage) ? new PostgresDialect(storage) : new SqliteDialect(storage);
        var path = Path.Combine(outDir, ScaleLoad.PeopleFile);
        var lines = File.ReadLines(path).Select(l => l.Split('\t')).ToList();
        var templates = lines.Where(l => l.Length < 10).OrderBy(l => int.Parse(l[0], CultureInfo.InvariantCulture)).ToList();
        var done = lines.Select(l => int.Parse(l[0], CultureInfo.InvariantCulture)).ToHashSet();
        var first = templates.Count + 1;
        var todo = Enumerable.Range(first, Math.Max(0, people - first + 1)).Where(n => !done.Contains(n)).ToArray();
        Console.WriteLine($"{templates.Count} templates (posted through the gateway), {done.Count - templates.Count} clones there, {todo.Length} to make");
        if (todo.Length == 0) return 0;

        var clock = Stopwatch.StartNew();
        var captured = new List<Template>();
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync();
            foreach (var line in templates) captured.Add(await CaptureAsync(connection, line));
        }
        var rowsPerPerson = captured.Average(t => t.Tables.Sum(r => r.Values.Count));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"captured {captured.Count} templates in {clock.Elapsed.TotalSeconds:0.0} s: {captured.Average(t => t.Rkeys.Length):0.0} resources and {rowsPerPerson:0} rows per person"));

        long nextRkey;
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync();
            await using var max = Sql.Command(connection, null, "SELECT COALESCE(MAX(rkey), 0) FROM resources");
            nextRkey = Convert.ToInt64(await max.ExecuteScalarAsync(), CultureInfo.InvariantCulture) + 1;
        }

        await using var log = new StreamWriter(path, append: true) { AutoFlush = true };
        clock.Restart();
        long rows = 0;
        for (var start = 0; start < todo.Length; start += batch)
        {
            var numbers = todo.Skip(start).Take(batch).ToArray();
            var output = new Dictionary<string, Rows>(StringComparer.Ordinal);
            var newLines = new List<string>();
            foreach (var n in numbers)
            {
                var template = captured[(n - 1) % captured.Count];
                newLines.Add(Clone(template, n, nextRkey, output));
                nextRkey += template.Rkeys.Length;
            }
            await using (var connection = dialect.CreateConnection())
            {
                await connection.OpenAsync();
                await using var transaction = await connection.BeginTransactionAsync();
                foreach (var table in output.Values)
                {
                    if (connection is NpgsqlConnection pg) await CopyAsync(pg, table);
                    else await InsertAsync(connection, transaction, table);
                    rows += table.Values.Count;
                }
                await transaction.CommitAsync();
            }
            foreach (var line in newLines) log.WriteLine(line);
            var made = start + numbers.Length;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {made}/{todo.Length} clones, {rows} rows in {clock.Elapsed.TotalSeconds:0} s ({made / clock.Elapsed.TotalSeconds:0} people/s, {rows / clock.Elapsed.TotalSeconds:0} rows/s)"));
        }

        // Writes after the bulk path take keys above the copied ones.
        if (dialect is PostgresDialect)
        {
            await using var connection = dialect.CreateConnection();
            await connection.OpenAsync();
            await using var sequence = Sql.Command(connection, null,
                "SELECT setval(pg_get_serial_sequence('resources', 'rkey'), (SELECT MAX(rkey) FROM resources)); ANALYZE;");
            await sequence.ExecuteNonQueryAsync();
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cloned {todo.Length} people ({rows} rows) in {clock.Elapsed.TotalSeconds:0} s"));
        return 0;
    }

    /// <summary>Every row of the template person: its patient's compartment (and the Patient itself), consent grants and origins.</summary>
    private static async Task<Template> CaptureAsync(DbConnection connection, string[] line)
    {
        var patient = line[1];
        var rkeys = new List<long>();
        await using (var select = Sql.Command(connection, null,
            "SELECT rkey FROM resource_compartment WHERE compartment_type = 'Patient' AND compartment_id = @p " +
            "UNION SELECT rkey FROM resources WHERE type = 'Patient' AND id = @p").With("@p", patient))
        await using (var reader = await select.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync()) rkeys.Add(reader.GetInt64(0));
        }
        rkeys.Sort();
        var list = string.Join(",", rkeys.Select(k => k.ToString(CultureInfo.InvariantCulture)));
        var tables = new List<Rows>();
        foreach (var (table, skip) in RkeyTables) tables.Add(await ReadAsync(connection, table, skip, $"rkey IN ({list})", null));
        var ids = tables[0].Values.Select(v => (string)v![Array.IndexOf(tables[0].Columns, "id")]!).ToArray();
        tables.Add(await ReadAsync(connection, "consent_grants", null, "patient_id = @p", patient));
        var idList = string.Join(",", ids.Select(i => "'" + i + "'"));
        tables.Add(await ReadAsync(connection, "resource_origin", null, $"id IN ({idList})", null));
        return new Template(line, [.. rkeys], rkeys.Select((k, i) => (k, i)).ToDictionary(x => x.k, x => x.i), ids, tables);
    }

    private static async Task<Rows> ReadAsync(DbConnection connection, string table, string? skip, string where, string? patient)
    {
        await using var select = Sql.Command(connection, null, $"SELECT * FROM {table} WHERE {where}");
        if (patient is not null) select.With("@p", patient);
        await using var reader = await select.ExecuteReaderAsync();
        var columns = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).Where(c => c != skip).ToArray();
        var ordinals = columns.Select(reader.GetOrdinal).ToArray();
        var values = new List<object?[]>();
        while (await reader.ReadAsync())
            values.Add(ordinals.Select(o => reader.IsDBNull(o) ? null : reader.GetValue(o)).ToArray());
        return new Rows(table, columns, values);
    }

    /// <summary>Adds the clone's rows to <paramref name="output"/>; returns its people.tsv line.</summary>
    private static string Clone(Template template, int number, long rkeyBase, Dictionary<string, Rows> output)
    {
        var line = template.Line;
        var person = new ScalePerson(number);
        var replacements = new List<(string From, string To)>();
        foreach (var id in template.Ids) replacements.Add((id, FhirRequest.NewId()));
        var templateNumber = line[0];
        replacements.Add((line[7], person.Ins));
        replacements.Add(("\"S" + templateNumber + "-", "\"S" + number.ToString(CultureInfo.InvariantCulture) + "-"));
        replacements.Add(("|S" + templateNumber + "-", "|S" + number.ToString(CultureInfo.InvariantCulture) + "-"));
        var key = "S" + templateNumber + "-";
        var clonedKey = "S" + number.ToString(CultureInfo.InvariantCulture) + "-";
        string Map(string s)
        {
            // An index row holds the business key bare (search_token.code "S12-OUD").
            if (s.StartsWith(key, StringComparison.Ordinal)) s = clonedKey + s[key.Length..];
            foreach (var (from, to) in replacements)
                if (s.Contains(from, StringComparison.Ordinal)) s = s.Replace(from, to, StringComparison.Ordinal);
            return s;
        }
        foreach (var rows in template.Tables)
        {
            if (!output.TryGetValue(rows.Table, out var target)) output[rows.Table] = target = new Rows(rows.Table, rows.Columns, []);
            var rkey = Array.IndexOf(rows.Columns, "rkey");
            foreach (var values in rows.Values)
            {
                var copy = new object?[values.Length];
                for (var i = 0; i < values.Length; i++)
                {
                    copy[i] = values[i] switch
                    {
                        long k when i == rkey => rkeyBase + template.RkeyIndex[k],
                        string s => Map(s),
                        byte[] b => Encoding.UTF8.GetBytes(Map(Encoding.UTF8.GetString(b))),
                        var v => v,
                    };
                }
                target.Values.Add(copy);
            }
        }
        return string.Join('\t', number.ToString(CultureInfo.InvariantCulture), Map(line[1]), Map(line[2]), line[3], line[4], line[5], line[6], person.Ins, line[8], "clone-of-" + templateNumber);
    }

    private static async Task CopyAsync(NpgsqlConnection connection, Rows rows)
    {
        await using var writer = await connection.BeginBinaryImportAsync($"COPY {rows.Table} ({string.Join(", ", rows.Columns)}) FROM STDIN (FORMAT BINARY)");
        foreach (var values in rows.Values)
        {
            await writer.StartRowAsync();
            foreach (var value in values)
            {
                switch (value)
                {
                    case null: await writer.WriteNullAsync(); break;
                    case long l: await writer.WriteAsync(l, NpgsqlDbType.Bigint); break;
                    case int i: await writer.WriteAsync(i, NpgsqlDbType.Integer); break;
                    case short s: await writer.WriteAsync(s, NpgsqlDbType.Smallint); break;
                    case double d: await writer.WriteAsync(d, NpgsqlDbType.Double); break;
                    case float f: await writer.WriteAsync(f, NpgsqlDbType.Real); break;
                    case bool b: await writer.WriteAsync(b, NpgsqlDbType.Boolean); break;
                    case string t: await writer.WriteAsync(t, NpgsqlDbType.Text); break;
                    case byte[] bytes: await writer.WriteAsync(bytes, NpgsqlDbType.Bytea); break;
                    default: throw new InvalidOperationException($"{rows.Table}: no COPY mapping for {value.GetType()}");
                }
            }
        }
        await writer.CompleteAsync();
    }

    private static async Task InsertAsync(DbConnection connection, DbTransaction transaction, Rows rows)
    {
        await using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = $"INSERT INTO {rows.Table} ({string.Join(", ", rows.Columns)}) VALUES ({string.Join(", ", rows.Columns.Select((_, i) => "$" + i.ToString(CultureInfo.InvariantCulture)))})";
        var parameters = rows.Columns.Select((_, i) =>
        {
            var p = insert.CreateParameter();
            p.ParameterName = "$" + i.ToString(CultureInfo.InvariantCulture);
            insert.Parameters.Add(p);
            return p;
        }).ToArray();
        insert.Prepare();
        foreach (var values in rows.Values)
        {
            for (var i = 0; i < values.Length; i++) parameters[i].Value = values[i] ?? DBNull.Value;
            await insert.ExecuteNonQueryAsync();
        }
    }
}
