using FhirSortie.Server.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace FhirSortie.Tests.Storage;

/// <summary>
/// The writer's INSERTs run through SQLite's own API (Storage/Sqlite/NativeStatements.cs) must store exactly what the
/// same INSERT through Microsoft.Data.Sqlite stored, and fail the same way.
/// </summary>
public sealed class NativeStatementsTests : IDisposable
{
    private const string Insert = "INSERT INTO t (via, s, i, l, d, b, n) VALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6)";

    private readonly SqliteConnection _connection = new("Data Source=:memory:;Pooling=False");

    public NativeStatementsTests()
    {
        _connection.Open();
        using var create = _connection.CreateCommand();
        create.CommandText = "CREATE TABLE t (via TEXT NOT NULL, s TEXT, i INTEGER, l INTEGER, d REAL NOT NULL, b BLOB, n TEXT)";
        create.ExecuteNonQuery();
    }

    public void Dispose() => _connection.Dispose();

    private List<string> Rows(string via)
    {
        using var select = _connection.CreateCommand();
        select.CommandText = "SELECT typeof(s), s, typeof(i), i, typeof(l), l, typeof(d), quote(d), typeof(b), hex(b), typeof(n) FROM t WHERE via = @v ORDER BY rowid";
        select.Parameters.AddWithValue("@v", via);
        using var reader = select.ExecuteReader();
        var rows = new List<string>();
        while (reader.Read()) rows.Add(string.Join("|", Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "NULL" : reader.GetValue(i).ToString())));
        return rows;
    }

    private void ThroughMicrosoftDataSqlite(params object?[] values)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = Insert;
        for (var i = 0; i < values.Length; i++) command.Parameters.AddWithValue("@p" + i, values[i] ?? DBNull.Value);
        command.ExecuteNonQuery();
    }

    public static TheoryData<string?, int, long, double, byte[]?> Values => new()
    {
        { "Hépatite C chronique – B18.2 ✓", 0, 0L, 0.0, [1, 2, 3] },
        { "", -7, long.MaxValue, -1.5e-300, [0] },
        { null, int.MaxValue, long.MinValue, 3.141592653589793, null },
        { "urn:oid:1.2.250.1.213.1.4.10", 1, 1_733_457_324_123L, 1e308, new byte[5000] },
    };

    [Theory]
    [MemberData(nameof(Values))]
    public void Values_are_stored_as_Microsoft_Data_Sqlite_stores_them(string? text, int small, long large, double real, byte[]? blob)
    {
        using var native = new NativeStatements(_connection);

        ThroughMicrosoftDataSqlite("mds", text, small, large, real, blob, null);
        native.Run(Insert, ["native", text, small, large, real, blob, null]);

        Assert.Single(Rows("native"));
        Assert.Equal(Rows("mds"), Rows("native"));
    }

    [Fact]
    public void A_statement_is_prepared_once_and_run_again_after_a_failed_step()
    {
        using var native = new NativeStatements(_connection);
        native.Run(Insert, ["native", "a", 1, 1L, 1.0, null, null]);

        // d is NOT NULL: SQLite's own error, as Microsoft.Data.Sqlite reports it.
        var refused = Assert.Throws<SqliteException>(() => native.Run(Insert, ["native", "b", 2, 2L, null, null, null]));
        var same = Assert.Throws<SqliteException>(() => ThroughMicrosoftDataSqlite("mds", "b", 2, 2L, null, null, null));
        Assert.Equal(same.SqliteErrorCode, refused.SqliteErrorCode);
        Assert.Equal(same.SqliteExtendedErrorCode, refused.SqliteExtendedErrorCode);

        native.Run(Insert, ["native", "c", 3, 3L, 3.0, null, null]);
        Assert.Equal(1, native.Count);
        Assert.Equal(2, Rows("native").Count);
    }

    [Fact]
    public void NaN_is_refused_as_Microsoft_Data_Sqlite_refuses_it()
    {
        using var native = new NativeStatements(_connection);

        Assert.Throws<InvalidOperationException>(() => ThroughMicrosoftDataSqlite("mds", "a", 1, 1L, double.NaN, null, null));
        Assert.Throws<InvalidOperationException>(() => native.Run(Insert, ["native", "a", 1, 1L, double.NaN, null, null]));
        native.Run(Insert, ["native", "b", 1, 1L, 2.0, null, null]); // the statement was left ready for the next row
        Assert.Single(Rows("native"));
    }

    [Fact]
    public void A_text_of_several_statements_or_the_wrong_number_of_values_is_refused()
    {
        using var native = new NativeStatements(_connection);

        Assert.Throws<ArgumentException>(() => native.Run("DELETE FROM t WHERE s = @p0; DELETE FROM t WHERE l = @p0", ["a"]));
        Assert.Throws<ArgumentException>(() => native.Run(Insert, ["native", "a", 1, 1L, 1.0, null]));
        Assert.Empty(Rows("native"));
    }
}
