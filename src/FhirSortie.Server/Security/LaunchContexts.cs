using System.Data.Common;
using System.Security.Cryptography;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Security;

/// <summary>How a launch context came to be.</summary>
public enum LaunchKind
{
    /// <summary>EHR launch: a host (USMP, telemedicine) minted a `launch` value for one patient.</summary>
    Ehr,
    /// <summary>Standalone launch: the signed-in practitioner picked the patient in our patient picker.</summary>
    Picked,
}

/// <summary>A launch context: which patient an authorization for one client is about.</summary>
public sealed record LaunchContext(string Id, LaunchKind Kind, string ClientId, string PatientId, string? UserName, DateTimeOffset Expires);

/// <summary>
/// Launch contexts, kept in the database (not in memory) so that a launch minted or a patient picked on one gateway
/// node can be redeemed on another. Each is bound to one client (and, for a picked patient, one user), expires after
/// a few minutes and is deleted when redeemed, so it can be used once.
/// </summary>
public sealed class LaunchContexts(StorageDialect dialect, TimeProvider clock)
{
    /// <summary>Long enough for a practitioner to sign in; short because a launch value sits in browser URLs.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(10);

    public async Task<LaunchContext> CreateAsync(LaunchKind kind, string clientId, string patientId, string? userName, CancellationToken ct)
    {
        // 256 random bits: the value is a bearer secret until redeemed.
        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var now = clock.GetUtcNow();
        var context = new LaunchContext(id, kind, clientId, patientId, userName, now + Lifetime);
        // A write unit like any other: on SQLite it may be a savepoint of a group commit, answered once durable.
        await using (var unit = await dialect.BeginWriteAsync(ct))
        {
            var (connection, tx) = (unit.Connection, unit.Transaction);
            await using (var purge = Sql.Command(connection, tx, "DELETE FROM smart_launches WHERE expires < @now").With("@now", now.ToUnixTimeMilliseconds()))
                await purge.ExecuteNonQueryAsync(ct);
            await using (var insert = Sql.Command(connection, tx,
                "INSERT INTO smart_launches (launch_id, kind, client_id, patient_id, user_name, created, expires) VALUES (@id, @kind, @client, @patient, @user, @created, @expires)")
                .With("@id", id).With("@kind", kind.ToString()).With("@client", clientId).With("@patient", patientId)
                .With("@user", userName).With("@created", now.ToUnixTimeMilliseconds()).With("@expires", context.Expires.ToUnixTimeMilliseconds()))
                await insert.ExecuteNonQueryAsync(ct);
            await unit.CommitAsync(ct);
        }
        return context;
    }

    /// <summary>The launch context if it exists, has not expired and was issued for this client (not consumed).</summary>
    public async Task<LaunchContext?> FindAsync(string id, LaunchKind kind, string clientId, CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        await using var cmd = Sql.Command(connection, null,
            "SELECT launch_id, kind, client_id, patient_id, user_name, expires FROM smart_launches WHERE launch_id = @id AND kind = @kind AND client_id = @client AND expires >= @now")
            .With("@id", id).With("@kind", kind.ToString()).With("@client", clientId).With("@now", clock.GetUtcNow().ToUnixTimeMilliseconds());
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Read(reader) : null;
    }

    /// <summary>
    /// Redeems the launch context: deletes it and returns it when it was still valid for this client, so that of two
    /// nodes redeeming the same value at once only one gets it.
    /// </summary>
    public async Task<LaunchContext?> RedeemAsync(string id, LaunchKind kind, string clientId, CancellationToken ct)
    {
        await using var unit = await dialect.BeginWriteAsync(ct);
        LaunchContext? found = null;
        await using (var cmd = Sql.Command(unit.Connection, unit.Transaction,
            "DELETE FROM smart_launches WHERE launch_id = @id AND kind = @kind AND client_id = @client AND expires >= @now "
            + "RETURNING launch_id, kind, client_id, patient_id, user_name, expires")
            .With("@id", id).With("@kind", kind.ToString()).With("@client", clientId).With("@now", clock.GetUtcNow().ToUnixTimeMilliseconds()))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            if (await reader.ReadAsync(ct)) found = Read(reader);
        }
        await unit.CommitAsync(ct);
        return found;
    }

    private static LaunchContext Read(DbDataReader r) => new(
        r.GetString(0),
        Enum.Parse<LaunchKind>(r.GetString(1)),
        r.GetString(2),
        r.GetString(3),
        r.IsDBNull(4) ? null : r.GetString(4),
        DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(5)));
}
