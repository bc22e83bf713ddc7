using System.Data.Common;
using System.Globalization;
using System.Text;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;

namespace FhirSortie.Server.Audit;

/// <summary>
/// The append-only audit store, which IS the AuditEvent store (tables audit_events and audit_keys, Storage/Schema.cs
/// AuditStoreV1): one row per interaction, written on the request path (or in the write's transaction) and kept for
/// good; an AuditEvent is served from its row, its JSON built on demand by <see cref="AuditEventRows.Json"/> (version 1,
/// lastUpdated = recorded). Nothing is materialised as a generic resource: the materialised copy (a resource, a version
/// and ~20 index rows per read) was the single biggest cost of a read.
/// Every node reads and writes the same tables: two nodes on one PostgreSQL see the same AuditEvents at once.
/// </summary>
public static class AuditStore
{
    public const string Type = "AuditEvent";

    /// <summary>Columns <see cref="ReadRecord"/> reads, for the audit_events table aliased as <paramref name="alias"/>.</summary>
    public static string Columns(string alias) =>
        $"{alias}.seq, {alias}.id, {alias}.recorded, {alias}.entry, {alias}.json, {alias}.last_updated";

    /// <summary>One audit_events row as a stored AuditEvent (version 1; Key is the row's seq, not a resources rkey).</summary>
    public static StoredResource ReadRecord(DbDataReader r)
    {
        var recorded = r.GetInt64(2);
        var lastUpdated = DateTimeOffset.FromUnixTimeMilliseconds(r.IsDBNull(5) ? recorded : r.GetInt64(5));
        // An AuditEvent an older build materialised keeps its stored JSON byte for byte; the others are built from the entry.
        var json = !r.IsDBNull(4)
            ? (byte[])r.GetValue(4)
            : AuditEventRows.Json(AuditEntry.FromJson(r.GetString(3)), lastUpdated);
        return new StoredResource(r.GetInt64(0), Type, r.GetString(1), 1, lastUpdated, false, json, "POST");
    }

    /// <summary>The AuditEvent with this id, or null.</summary>
    public static async Task<StoredResource?> ReadAsync(DbConnection connection, string id, CancellationToken ct) =>
        await ReadAsync(connection, null, id, ct);

    /// <summary>The AuditEvent <paramref name="id"/> on a connection that may be in a transaction (batch and transaction GET entries).</summary>
    public static async Task<StoredResource?> ReadAsync(DbConnection connection, DbTransaction? transaction, string id, CancellationToken ct)
    {
        await using var select = Sql.Command(connection, transaction, $"SELECT {Columns("a")} FROM audit_events a WHERE a.id = @id").With("@id", id);
        await using var reader = await select.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? ReadRecord(reader) : null;
    }

    /// <summary>
    /// Parameters per statement at most: a search's record names every patient of its page (up to about 2,000 with its
    /// includes, 6 parameters each), and 64 such records in one statement passed what the databases bind (SQLite 32,766,
    /// PostgreSQL 65,535).
    /// </summary>
    internal const int MaxParameters = 30_000;

    /// <summary>
    /// Adds <paramref name="entries"/> to the audit store in the given transaction: one INSERT per table, or a few when
    /// the records' search keys need more than <see cref="MaxParameters"/> parameters.
    /// </summary>
    public static async System.Threading.Tasks.Task AppendAsync(DbConnection connection, DbTransaction? transaction, IReadOnlyList<AuditEntry> entries, CancellationToken ct)
    {
        var statement = new List<(AuditEntry Entry, List<Key> Keys)>();
        var parameters = 0;
        foreach (var e in entries)
        {
            var keys = Keys(e);
            var needed = 6 + 3 * keys.Count;
            if (statement.Count > 0 && parameters + needed > MaxParameters)
            {
                await InsertAsync(connection, transaction, statement, ct);
                statement.Clear();
                parameters = 0;
            }
            statement.Add((e, keys));
            parameters += needed;
        }
        if (statement.Count > 0) await InsertAsync(connection, transaction, statement, ct);
    }

    private static async System.Threading.Tasks.Task InsertAsync(DbConnection connection, DbTransaction? transaction, List<(AuditEntry Entry, List<Key> Keys)> entries, CancellationToken ct)
    {
        await using var insert = Sql.Command(connection, transaction, "");
        var sql = new StringBuilder("INSERT INTO audit_events (id, recorded, interaction, action, outcome, entry) VALUES ");
        var keys = new StringBuilder();
        var k = 0;
        for (var i = 0; i < entries.Count; i++)
        {
            var (e, entryKeys) = entries[i];
            var n = i.ToString(CultureInfo.InvariantCulture);
            sql.Append(i == 0 ? "(" : ", (").Append("@i").Append(n).Append(", @r").Append(n).Append(", @s").Append(n)
                .Append(", @a").Append(n).Append(", @o").Append(n).Append(", @e").Append(n).Append(')');
            insert.With("@i" + n, e.Id).With("@r" + n, e.Recorded).With("@s" + n, e.Interaction)
                .With("@a" + n, AuditEventRows.ActionCode(e.Interaction)).With("@o" + n, AuditEventRows.OutcomeCode(e.Status)).With("@e" + n, e.ToJson());
            foreach (var key in entryKeys)
            {
                var m = k++.ToString(CultureInfo.InvariantCulture);
                keys.Append(keys.Length == 0 ? "" : ", ").Append("(@i").Append(n).Append(", @kp").Append(m).Append(", @ks").Append(m).Append(", @kv").Append(m).Append(')');
                insert.With("@kp" + m, key.Param).With("@ks" + m, key.System).With("@kv" + m, key.Value);
            }
        }
        sql.Append(';');
        if (keys.Length > 0) sql.Append(" INSERT INTO audit_keys (audit_id, param, sys, value) VALUES ").Append(keys).Append(';');
        insert.CommandText = sql.ToString();
        await insert.ExecuteNonQueryAsync(ct);
    }

    /// <summary>One searchable value of an AuditEvent: a reference (System = its type) or an identifier (System = its system).</summary>
    public readonly record struct Key(string Param, string System, string Value);

    /// <summary>
    /// The values <c>patient</c>, <c>entity</c>, <c>agent</c>, <c>agent:identifier</c> and <c>address</c> find the AuditEvent by: what the
    /// generic indexer derived from the materialised AuditEvent (<see cref="AuditEventRows.Index"/>), each value once.
    /// </summary>
    public static List<Key> Keys(AuditEntry e)
    {
        var keys = new List<Key>(e.Entities.Count + 2 * e.Patients.Count + 4);
        void Add(string param, string system, string value)
        {
            // A refused request can name what it asked for with a NUL in it (Patient?patient=%00): PostgreSQL refuses a NUL
            // in text, and the record of the refusal must still be written (the entry's JSON keeps it escaped as \u0000).
            var key = new Key(param, system.Replace('\0', '\uFFFD'), value.Replace('\0', '\uFFFD'));
            if (!keys.Contains(key)) keys.Add(key);
        }
        void Reference(string param, string reference)
        {
            if (reference.StartsWith('#')) return;
            var (type, id) = ResourceIndexer.ReferenceParts(reference);
            if (type is not null && id is not null) Add(param, type, id);
        }
        Add("agent:identifier", AuditRecords.ClientIds, e.ClientId ?? "anonymous");
        // address (agent.network.address, a string parameter): its normalised value, as the generic string index held it.
        if (e.Address is { } address) Add("address", "", ResourceIndexer.Normalize(address));
        if (e.Finess is { } finess) Add("agent:identifier", ConsentGrants.Finess, finess);
        if (e.User is { Length: > 0 } user)
        {
            Reference("agent", user);
            if (ResourceIndexer.ReferenceParts(user).Type == "Patient") Reference("patient", user);
        }
        foreach (var what in AuditEventRows.EntityReferences(e))
        {
            Reference("entity", what);
            if (!what.StartsWith('#') && ResourceIndexer.ReferenceParts(what).Type == "Patient") Reference("patient", what);
        }
        return keys;
    }

    /// <summary>
    /// Moves the rows an older build left queued in audit_log (not yet materialised) into the audit store, in batches,
    /// each in one write unit that also deletes them: a row is in one table or the other, never lost, never twice.
    /// Run at start, after the migrations. On PostgreSQL FOR UPDATE SKIP LOCKED keeps two starting nodes off the same rows.
    /// </summary>
    /// <returns>The number of rows moved.</returns>
    public static async Task<int> ImportQueuedAsync(StorageDialect dialect, CancellationToken ct)
    {
        var moved = 0;
        while (true)
        {
            int batch;
            await using (var unit = await dialect.BeginWriteAsync(ct))
            {
                var rows = new List<(long Seq, AuditEntry Entry)>();
                var skipLocked = dialect is PostgresDialect ? " FOR UPDATE SKIP LOCKED" : "";
                await using (var select = Sql.Command(unit.Connection, unit.Transaction, $"SELECT seq, entry FROM audit_log ORDER BY seq LIMIT 200{skipLocked}"))
                await using (var reader = await select.ExecuteReaderAsync(ct))
                {
                    while (await reader.ReadAsync(ct)) rows.Add((reader.GetInt64(0), AuditEntry.FromJson(reader.GetString(1))));
                }
                batch = rows.Count;
                if (batch > 0)
                {
                    for (var i = 0; i < rows.Count; i += 50)
                        await AppendAsync(unit.Connection, unit.Transaction, rows.Skip(i).Take(50).Select(r => r.Entry).ToList(), ct);
                    var seqs = string.Join(",", rows.Select(r => r.Seq.ToString(CultureInfo.InvariantCulture)));
                    await using var delete = Sql.Command(unit.Connection, unit.Transaction, $"DELETE FROM audit_log WHERE seq IN ({seqs})");
                    await delete.ExecuteNonQueryAsync(ct);
                }
                await unit.CommitAsync(ct);
            }
            if (batch == 0) return moved;
            moved += batch;
        }
    }
}
