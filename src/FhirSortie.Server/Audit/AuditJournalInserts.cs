using FhirSortie.Server.Storage;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace FhirSortie.Server.Audit;

/// <summary>
/// The two statements a move of the audit journal runs per record (<see cref="AuditJournal.MoveAsync"/>), run on the
/// store's write unit with the journal's UTF-8 bytes bound as they are (SQLitePCL, positional parameters). Through
/// Microsoft.Data.Sqlite, each record's strings were decoded from UTF-8, then encoded again by every bind, and every
/// parameter looked up by name: binding was 38% of a move's CPU (perf, micro-audit). Prepared once per move.
/// </summary>
internal sealed class AuditJournalInserts : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _event;
    private readonly sqlite3_stmt _key;

    public AuditJournalInserts(WriteUnit unit)
    {
        _db = ((SqliteConnection)unit.Connection).Handle!;
        // A record a move committed before a crash (its segment not yet deleted) is skipped, keys and all.
        _event = Prepare("INSERT INTO audit_events (id, recorded, interaction, action, outcome, entry) SELECT ?1, ?2, ?3, ?4, ?5, ?6 " +
            "WHERE NOT EXISTS (SELECT 1 FROM audit_events WHERE id = ?1)");
        try
        {
            _key = Prepare("INSERT INTO audit_keys (audit_id, param, sys, value) VALUES (?1, ?2, ?3, ?4)");
        }
        catch
        {
            _event.Dispose();
            throw;
        }
    }

    /// <summary>Inserts the record of <paramref name="payload"/> (<see cref="AuditJournalSegment.WritePayload"/>) unless its id is in the store.</summary>
    public void Insert(ReadOnlySpan<byte> payload)
    {
        var p = new AuditJournalSegment.Payload(payload);
        var id = p.NextString();
        Check(raw.sqlite3_bind_text(_event, 1, id));
        Check(raw.sqlite3_bind_int64(_event, 2, p.NextInt64()));
        Check(raw.sqlite3_bind_text(_event, 3, p.NextString()));
        Check(raw.sqlite3_bind_text(_event, 4, p.NextString()));
        Check(raw.sqlite3_bind_text(_event, 5, p.NextString()));
        Check(raw.sqlite3_bind_text(_event, 6, p.NextString()));
        Run(_event);
        if (raw.sqlite3_changes(_db) == 0) return;
        for (var count = p.NextCount(); count > 0; count--)
        {
            Check(raw.sqlite3_bind_text(_key, 1, id));
            Check(raw.sqlite3_bind_text(_key, 2, p.NextString()));
            Check(raw.sqlite3_bind_text(_key, 3, p.NextString()));
            Check(raw.sqlite3_bind_text(_key, 4, p.NextString()));
            Run(_key);
        }
    }

    private sqlite3_stmt Prepare(string sql)
    {
        Check(raw.sqlite3_prepare_v2(_db, sql, out var statement));
        return statement;
    }

    private void Run(sqlite3_stmt statement)
    {
        var rc = raw.sqlite3_step(statement);
        raw.sqlite3_reset(statement);
        if (rc != raw.SQLITE_DONE) SqliteException.ThrowExceptionForRC(rc, _db);
    }

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK) SqliteException.ThrowExceptionForRC(rc, _db);
    }

    public void Dispose()
    {
        _event.Dispose();
        _key.Dispose();
    }
}
