using System.Data.Common;
using System.Globalization;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Search;

/// <summary>
/// The connections searches run on. SQLite compiles the SQL of every new command, and a search's statement is large
/// (the consent filter alone is a dozen nested sub-queries): compiling it was most of a search's database time
/// (Python's sqlite3 on the bench database: 480-600 µs per MedicationRequest?patient= search compiled every time,
/// 60-100 µs with the compiled statement kept). So on SQLite idle connections are kept open with the statements they
/// compiled, keyed by SQL text: values are always bound parameters, so searches of the same shape share one text.
/// PostgreSQL: Npgsql already keeps repeated statements prepared per connection (Max Auto Prepare, PostgresDialect),
/// so a search takes a pooled connection as before.
/// </summary>
public sealed class SearchConnections(StorageDialect dialect) : IAsyncDisposable
{
    /// <summary>Idle connections kept (beyond this, a returned one is closed): about the concurrent searches of a node.</summary>
    private const int MaxIdle = 16;

    private readonly bool _keep = dialect.Name == "Sqlite";
    private readonly IdleConnections<KeptConnection> _idle = new(MaxIdle);

    /// <summary>A connection for one search (its statements run one at a time); dispose it to give it back.</summary>
    public async Task<SearchDb> RentAsync(CancellationToken ct)
    {
        if (!_keep)
        {
            var pooled = dialect.CreateConnection();
            try
            {
                await pooled.OpenAsync(ct);
            }
            catch
            {
                await pooled.DisposeAsync();
                throw;
            }
            return new SearchDb(pooled, null, kept: null, owner: null, ownsConnection: true);
        }
        if (_idle.TryTake(out var idle, out _))
        {
            return new SearchDb(idle.Connection, null, idle, this, ownsConnection: false);
        }
        var connection = dialect.CreateConnection();
        try
        {
            await connection.OpenAsync(ct);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
        var opened = new KeptConnection(connection);
        return new SearchDb(connection, null, opened, this, ownsConnection: false);
    }

    internal ValueTask ReturnAsync(KeptConnection kept, bool healthy) => healthy ? _idle.ReturnAsync(kept) : kept.DisposeAsync();

    public ValueTask DisposeAsync() => _idle.DisposeAsync();
}

/// <summary>An open SQLite connection with the statements compiled on it, by SQL text (oldest dropped beyond a bound).</summary>
internal sealed class KeptConnection(DbConnection connection) : IAsyncDisposable
{
    /// <summary>Distinct search shapes kept per connection; a compiled search statement holds some tens of KB.</summary>
    private const int MaxStatements = 64;

    private readonly Dictionary<string, DbCommand> _statements = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();

    public DbConnection Connection => connection;

    /// <summary>The command compiled for this text, its parameters cleared; the caller must not dispose it.</summary>
    public DbCommand Command(string text)
    {
        if (_statements.TryGetValue(text, out var cmd))
        {
            cmd.Parameters.Clear();
            return cmd;
        }
        if (_statements.Count >= MaxStatements)
        {
            var oldest = _order.Dequeue();
            _statements.Remove(oldest, out var dropped);
            dropped?.Dispose();
        }
        cmd = Sql.Command(connection, null, text);
        _statements.Add(text, cmd);
        _order.Enqueue(text);
        return cmd;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var cmd in _statements.Values) await cmd.DisposeAsync();
        _statements.Clear();
        await connection.DisposeAsync();
    }
}

/// <summary>
/// The connection (and transaction, for a batch/transaction GET entry) a search runs its statements on. Statements
/// run through <see cref="StoredAsync"/> and <see cref="ScalarAsync"/>, which reuse the compiled statement on a kept
/// connection and close the data reader before returning (so an idle connection holds no read snapshot).
/// </summary>
public sealed class SearchDb : IAsyncDisposable
{
    private readonly KeptConnection? _kept;
    private readonly SearchConnections? _owner;
    private readonly bool _ownsConnection;
    private bool _healthy = true;

    internal SearchDb(DbConnection connection, DbTransaction? transaction, KeptConnection? kept, SearchConnections? owner, bool ownsConnection)
    {
        Connection = connection;
        Transaction = transaction;
        _kept = kept;
        _owner = owner;
        _ownsConnection = ownsConnection;
    }

    /// <summary>Statements on the caller's connection and transaction (a transaction sees its own writes); not disposed here.</summary>
    public static SearchDb On(DbConnection connection, DbTransaction? transaction) => new(connection, transaction, null, null, ownsConnection: false);

    public DbConnection Connection { get; }

    public DbTransaction? Transaction { get; }

    /// <summary>The rows of a query selecting <see cref="Sql.StoredColumns"/>.</summary>
    public Task<List<StoredResource>> StoredAsync(SqlQuery q, CancellationToken ct) => RowsAsync(q, r => Sql.ReadStored(r), ct);

    /// <summary>The first column of every row, as strings (the audit's patients of a page, <see cref="Audit.SearchedPatients"/>).</summary>
    public Task<List<string>> StringsAsync(SqlQuery q, CancellationToken ct) => RowsAsync(q, r => r.GetString(0), ct);

    private async Task<List<T>> RowsAsync<T>(SqlQuery q, Func<DbDataReader, T> read, CancellationToken ct)
    {
        var cmd = Command(q);
        try
        {
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            var rows = new List<T>();
            while (await reader.ReadAsync(ct)) rows.Add(read(reader));
            return rows;
        }
        catch
        {
            _healthy = false;
            throw;
        }
        finally
        {
            if (_kept is null) await cmd.DisposeAsync();
        }
    }

    /// <summary>The first column of the first row (a COUNT), as an int.</summary>
    public async Task<int> ScalarAsync(SqlQuery q, CancellationToken ct)
    {
        var cmd = Command(q);
        try
        {
            return Convert.ToInt32(await cmd.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
        }
        catch
        {
            _healthy = false;
            throw;
        }
        finally
        {
            if (_kept is null) await cmd.DisposeAsync();
        }
    }

    private DbCommand Command(SqlQuery q) => _kept is null ? q.ToCommand(Connection, Transaction) : q.BindTo(_kept.Command(q.Text.ToString()));

    public async ValueTask DisposeAsync()
    {
        // A statement that failed (cancelled mid-read, busy) may leave the connection in any state: it is not kept.
        if (_kept is not null && _owner is not null) await _owner.ReturnAsync(_kept, _healthy);
        else if (_ownsConnection) await Connection.DisposeAsync();
    }
}
