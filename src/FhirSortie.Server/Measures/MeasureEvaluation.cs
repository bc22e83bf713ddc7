using System.Data.Common;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Measures;

/// <summary>
/// Runs one measure's aggregate SQL on a read connection and sums its rows into a <see cref="CountTable"/>: the
/// database does the counting (one GROUP BY over the index tables), the gateway only adds up a few hundred aggregate
/// rows into the total and the strata. Also reads the names of the USMPs found (FINESS → Organization.name).
/// </summary>
public static class MeasureEvaluation
{
    public sealed record Result(CountTable Table, IReadOnlyDictionary<string, string> UsmpNames);

    public static async Task<Result> RunAsync(DbConnection connection, MeasureDefinition measure, ReleaseSql sql, CancellationToken ct)
    {
        var table = new CountTable(measure.Populations, measure.Nestings, sql.Months);
        await using (var command = Sql.Command(connection, null, measure.Sql(sql)))
        {
            foreach (var (name, value) in sql.Parameters()) command.With(name, value);
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                var row = new OutcomeRow(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
                    reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5));
                var usmp = row.Usmp ?? CountTable.Unknown;
                var kind = row.Kind ?? CountTable.Unknown;
                measure.Classify(row, (population, observation) => table.Add(population, row.Month, usmp, kind, row.Count, observation));
            }
        }
        return new Result(table, await UsmpNamesAsync(connection, table.Values[CountTable.Usmp].Where(u => u != CountTable.Unknown).ToList(), ct));
    }

    private static async Task<IReadOnlyDictionary<string, string>> UsmpNamesAsync(DbConnection connection, IReadOnlyList<string> finess, CancellationToken ct)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        if (finess.Count == 0) return names;
        var list = string.Join(", ", finess.Select((_, i) => "@f" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        await using var command = Sql.Command(connection, null, $"""
            SELECT t.code, MIN(s.exact) FROM search_token t
            JOIN resources o ON o.rkey = t.rkey AND o.deleted = 0
            JOIN search_string s ON s.rkey = t.rkey AND s.param = 'name'
            WHERE t.type = 'Organization' AND t.param = 'identifier' AND t.system = @system AND t.code IN ({list})
            GROUP BY t.code
            """);
        command.With("@system", ReleaseSql.FinessSystem);
        for (var i = 0; i < finess.Count; i++) command.With("@f" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), finess[i]);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) names[reader.GetString(0)] = reader.GetString(1);
        return names;
    }
}
