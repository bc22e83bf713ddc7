using System.Data.Common;
using System.Text.Json;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// A row of the subscriptions table: who subscribed (recorded from the token of the client that wrote the
/// Subscription: delivery re-checks access as that client), what it matches and where it delivers.
/// </summary>
public sealed record SubscriberRecord(
    string Id,
    string ClientId,
    ActorKind Kind,
    string? Finess,
    string Scopes,
    string CriteriaType,
    string Criteria,
    string Endpoint,
    string? Payload,
    IReadOnlyList<string> Headers,
    string Status,
    int Failures,
    long Events,
    string BaseUrl)
{
    public const string Requested = "requested";
    public const string Active = "active";
    public const string Error = "error";
    public const string Off = "off";

    /// <summary>The subscriber as a caller, for the access rules at delivery time (no launch patient, no user).</summary>
    public Caller Caller => new(ClientId, Kind, Finess, Scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries), null, null);

    public bool FullResource => Payload == SubscriptionHook.FullResourcePayload;

    private const string Columns = "id, client_id, actor_kind, finess, scopes, criteria_type, criteria, endpoint, payload, headers, status, failures, events, base_url";

    public static async Task<SubscriberRecord?> LoadAsync(DbConnection connection, DbTransaction? tx, string id, CancellationToken ct)
    {
        await using var cmd = Sql.Command(connection, tx, $"SELECT {Columns} FROM subscriptions WHERE id = @i").With("@i", id);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Read(reader) : null;
    }

    private static readonly string ActiveForSql = $"SELECT {Columns} FROM subscriptions WHERE criteria_type = @p0 AND status = 'active' ORDER BY id";

    /// <summary>The active subscriptions on a type, in a write session (asked on every save: kept prepared on SQLite's writer).</summary>
    public static async Task<IReadOnlyList<SubscriberRecord>> ActiveForAsync(WriteSession session, string type, CancellationToken ct)
    {
        await using var statement = session.Statement(ActiveForSql, type);
        return await ReadAllAsync(statement.Command, ct);
    }

    private static async Task<IReadOnlyList<SubscriberRecord>> ReadAllAsync(DbCommand cmd, CancellationToken ct)
    {
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var found = new List<SubscriberRecord>();
        while (await reader.ReadAsync(ct)) found.Add(Read(reader));
        return found;
    }

    public async Task SaveAsync(DbConnection connection, DbTransaction tx, CancellationToken ct)
    {
        await using (var delete = Sql.Command(connection, tx, "DELETE FROM subscriptions WHERE id = @i").With("@i", Id))
        {
            await delete.ExecuteNonQueryAsync(ct);
        }
        await using var insert = Sql.Command(connection, tx,
            $"INSERT INTO subscriptions ({Columns}, error) VALUES (@i, @c, @k, @f, @s, @t, @q, @e, @p, @h, @st, @fa, @ev, @b, NULL)")
            .With("@i", Id).With("@c", ClientId).With("@k", Kind.ToString()).With("@f", Finess).With("@s", Scopes)
            .With("@t", CriteriaType).With("@q", Criteria).With("@e", Endpoint).With("@p", Payload)
            .With("@h", JsonSerializer.Serialize(Headers)).With("@st", Status).With("@fa", Failures).With("@ev", Events).With("@b", BaseUrl);
        await insert.ExecuteNonQueryAsync(ct);
    }

    private static SubscriberRecord Read(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), Enum.Parse<ActorKind>(r.GetString(2)), r.IsDBNull(3) ? null : r.GetString(3), r.GetString(4),
        r.GetString(5), r.GetString(6), r.GetString(7), r.IsDBNull(8) ? null : r.GetString(8),
        JsonSerializer.Deserialize<List<string>>(r.GetString(9)) ?? [], r.GetString(10), Convert.ToInt32(r.GetValue(11), System.Globalization.CultureInfo.InvariantCulture),
        Convert.ToInt64(r.GetValue(12), System.Globalization.CultureInfo.InvariantCulture), r.GetString(13));
}
