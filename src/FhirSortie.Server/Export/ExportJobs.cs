using System.Data.Common;
using System.Globalization;
using System.Text;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;

namespace FhirSortie.Server.Export;

/// <summary>
/// The export jobs in the database (<see cref="ExportSchema"/>): created at kick-off, claimed by any node's worker with a
/// lease, fenced by their attempt number, their output appended chunk by chunk, removed when cancelled or expired.
/// Every state change is one short write unit, so two nodes on one PostgreSQL never run the same attempt.
/// </summary>
public sealed class ExportJobs(StorageDialect dialect, TimeProvider clock)
{
    private const string Columns = "id, client_id, spec, status, created, lease_owner, lease_until, attempts, progress, transaction_time, manifest, error, expires";

    public async Task CreateAsync(ExportJob job, CancellationToken ct)
    {
        await using var unit = await dialect.BeginWriteAsync(ct);
        await using (var insert = Sql.Command(unit.Connection, unit.Transaction,
            $"INSERT INTO export_jobs ({Columns}) VALUES (@id, @c, @s, @st, @cr, @lo, @lu, @a, @p, @tt, @m, @e, @x)"))
        {
            await insert.With("@id", job.Id).With("@c", job.ClientId).With("@s", job.Spec.ToJson()).With("@st", job.Status)
                .With("@cr", job.Created.ToUnixTimeMilliseconds()).With("@lo", job.LeaseOwner).With("@lu", job.LeaseUntil?.ToUnixTimeMilliseconds())
                .With("@a", job.Attempts).With("@p", job.Progress).With("@tt", job.TransactionTime?.ToUnixTimeMilliseconds())
                .With("@m", job.Manifest).With("@e", job.Error).With("@x", job.Expires?.ToUnixTimeMilliseconds())
                .ExecuteNonQueryAsync(ct);
        }
        await unit.CommitAsync(ct);
    }

    /// <summary>The job <paramref name="id"/> of <paramref name="clientId"/>, or null (unknown, another client's, or expired).</summary>
    public async Task<ExportJob?> FindAsync(string id, string clientId, CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        await using var select = Sql.Command(connection, null, $"SELECT {Columns} FROM export_jobs WHERE id = @id AND client_id = @c").With("@id", id).With("@c", clientId);
        await using var reader = await select.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct)) return null;
        var job = Read(reader);
        return job.Expires is { } expires && expires <= clock.GetUtcNow() ? null : job;
    }

    /// <summary>
    /// Claims the oldest export waiting, or one whose node stopped renewing its lease, for <paramref name="owner"/>: its
    /// partial output goes (an attempt starts from the beginning, never from another node's half file), its attempt
    /// number goes up. A job already tried <paramref name="maxAttempts"/> times fails instead. Null: nothing to run.
    /// </summary>
    public async Task<ExportJob?> ClaimAsync(string owner, TimeSpan lease, int maxAttempts, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        // A read first: an idle worker must not open a write unit (on SQLite, a commit) every poll.
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync(ct);
            await using var any = Sql.Command(connection, null, "SELECT 1 FROM export_jobs WHERE status = @accepted OR (status = @running AND lease_until < @now) LIMIT 1")
                .With("@accepted", ExportStatus.Accepted).With("@running", ExportStatus.Running).With("@now", now.ToUnixTimeMilliseconds());
            if (await any.ExecuteScalarAsync(ct) is null) return null;
        }
        await using var unit = await dialect.BeginWriteAsync(ct);
        var skipLocked = dialect is PostgresDialect ? " FOR UPDATE SKIP LOCKED" : "";
        ExportJob? job;
        await using (var select = Sql.Command(unit.Connection, unit.Transaction,
            $"SELECT {Columns} FROM export_jobs WHERE status = @accepted OR (status = @running AND lease_until < @now) ORDER BY created LIMIT 1{skipLocked}")
            .With("@accepted", ExportStatus.Accepted).With("@running", ExportStatus.Running).With("@now", now.ToUnixTimeMilliseconds()))
        await using (var reader = await select.ExecuteReaderAsync(ct))
        {
            job = await reader.ReadAsync(ct) ? Read(reader) : null;
        }
        if (job is null) return null;
        await DeleteOutputAsync(unit, job.Id, ct);
        if (job.Attempts >= maxAttempts)
        {
            await using var fail = Sql.Command(unit.Connection, unit.Transaction,
                "UPDATE export_jobs SET status = @failed, lease_owner = NULL, lease_until = NULL, error = @e, expires = @x WHERE id = @id AND attempts = @a")
                .With("@failed", ExportStatus.Failed).With("@id", job.Id).With("@a", job.Attempts)
                .With("@e", $"The export was interrupted {job.Attempts} times (the nodes running it stopped); kick it off again.")
                .With("@x", (now + Lifetime).ToUnixTimeMilliseconds());
            await fail.ExecuteNonQueryAsync(ct);
            await unit.CommitAsync(ct);
            return null;
        }
        await using (var update = Sql.Command(unit.Connection, unit.Transaction,
            "UPDATE export_jobs SET status = @running, lease_owner = @o, lease_until = @u, attempts = attempts + 1, progress = @p, transaction_time = @t " +
            "WHERE id = @id AND attempts = @a")
            .With("@running", ExportStatus.Running).With("@o", owner).With("@u", (now + lease).ToUnixTimeMilliseconds()).With("@p", "started")
            .With("@t", now.ToUnixTimeMilliseconds()).With("@id", job.Id).With("@a", job.Attempts))
        {
            if (await update.ExecuteNonQueryAsync(ct) != 1) return null;
        }
        await unit.CommitAsync(ct);
        return job with { Status = ExportStatus.Running, LeaseOwner = owner, LeaseUntil = now + lease, Attempts = job.Attempts + 1, TransactionTime = now };
    }

    /// <summary>The files' lifetime, set by the worker from its options (the same on every node).</summary>
    public TimeSpan Lifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// One step of a running attempt, in one write unit: the lease renewed and the progress noted, then (only if the
    /// attempt still holds the job: not cancelled, not claimed by another node) a chunk of a file and the patients it
    /// names. False: the attempt lost the job and must stop; nothing was written.
    /// </summary>
    public async Task<bool> StepAsync(ExportJob job, TimeSpan lease, string progress, (int FileNo, int ChunkNo, byte[] Data)? chunk,
        IReadOnlyCollection<string> patients, CancellationToken ct)
    {
        await using var unit = await dialect.BeginWriteAsync(ct);
        if (!await RenewAsync(unit, job, lease, progress, ct)) return false;
        if (chunk is { } c)
        {
            await using var insert = Sql.Command(unit.Connection, unit.Transaction, "INSERT INTO export_chunks (job_id, file_no, chunk_no, data) VALUES (@j, @f, @n, @d)")
                .With("@j", job.Id).With("@f", c.FileNo).With("@n", c.ChunkNo).With("@d", c.Data);
            await insert.ExecuteNonQueryAsync(ct);
        }
        foreach (var part in patients.Chunk(500))
        {
            var sql = new StringBuilder("INSERT INTO export_patients (job_id, patient_id) VALUES ");
            await using var insert = Sql.Command(unit.Connection, unit.Transaction, "").With("@j", job.Id);
            for (var i = 0; i < part.Length; i++)
            {
                var name = "@p" + i.ToString(CultureInfo.InvariantCulture);
                sql.Append(i == 0 ? "" : ", ").Append("(@j, ").Append(name).Append(')');
                insert.With(name, part[i]);
            }
            insert.CommandText = sql.Append(" ON CONFLICT DO NOTHING").ToString();
            await insert.ExecuteNonQueryAsync(ct);
        }
        await unit.CommitAsync(ct);
        return true;
    }

    /// <summary>The attempt's end: completed with its manifest, if it still holds the job.</summary>
    public async Task<bool> CompleteAsync(ExportJob job, string manifest, CancellationToken ct)
    {
        await using var unit = await dialect.BeginWriteAsync(ct);
        await using (var update = Sql.Command(unit.Connection, unit.Transaction,
            "UPDATE export_jobs SET status = @completed, manifest = @m, progress = NULL, lease_owner = NULL, lease_until = NULL, expires = @x " +
            "WHERE id = @id AND attempts = @a AND status = @running")
            .With("@completed", ExportStatus.Completed).With("@m", manifest).With("@x", (clock.GetUtcNow() + Lifetime).ToUnixTimeMilliseconds())
            .With("@id", job.Id).With("@a", job.Attempts).With("@running", ExportStatus.Running))
        {
            if (await update.ExecuteNonQueryAsync(ct) != 1) return false;
        }
        // The patient list served its purpose (the audit records name them); the files stay until they expire.
        await using (var delete = Sql.Command(unit.Connection, unit.Transaction, "DELETE FROM export_patients WHERE job_id = @id").With("@id", job.Id))
            await delete.ExecuteNonQueryAsync(ct);
        await unit.CommitAsync(ct);
        return true;
    }

    /// <summary>The attempt's end on an error: failed with a message the client may read, its partial output removed.</summary>
    public async Task FailAsync(ExportJob job, string error, CancellationToken ct)
    {
        await using var unit = await dialect.BeginWriteAsync(ct);
        await using (var update = Sql.Command(unit.Connection, unit.Transaction,
            "UPDATE export_jobs SET status = @failed, error = @e, progress = NULL, lease_owner = NULL, lease_until = NULL, expires = @x " +
            "WHERE id = @id AND attempts = @a AND status = @running")
            .With("@failed", ExportStatus.Failed).With("@e", error).With("@x", (clock.GetUtcNow() + Lifetime).ToUnixTimeMilliseconds())
            .With("@id", job.Id).With("@a", job.Attempts).With("@running", ExportStatus.Running))
        {
            if (await update.ExecuteNonQueryAsync(ct) != 1) return;
        }
        await DeleteOutputAsync(unit, job.Id, ct);
        await unit.CommitAsync(ct);
    }

    /// <summary>DELETE on the status URL: the job and its output go at once; a node running it stops at its next step.</summary>
    public async Task<bool> CancelAsync(string id, string clientId, CancellationToken ct)
    {
        await using var unit = await dialect.BeginWriteAsync(ct);
        await using (var delete = Sql.Command(unit.Connection, unit.Transaction, "DELETE FROM export_jobs WHERE id = @id AND client_id = @c").With("@id", id).With("@c", clientId))
        {
            if (await delete.ExecuteNonQueryAsync(ct) != 1) return false;
        }
        await DeleteOutputAsync(unit, id, ct);
        await unit.CommitAsync(ct);
        return true;
    }

    /// <summary>Removes the exports whose files have expired (completed or failed). Returns how many.</summary>
    public async Task<int> RemoveExpiredAsync(CancellationToken ct)
    {
        var expired = new List<string>();
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync(ct);
            await using var select = Sql.Command(connection, null, "SELECT id FROM export_jobs WHERE expires IS NOT NULL AND expires <= @now LIMIT 100")
                .With("@now", clock.GetUtcNow().ToUnixTimeMilliseconds());
            await using var reader = await select.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct)) expired.Add(reader.GetString(0));
        }
        foreach (var id in expired)
        {
            await using var unit = await dialect.BeginWriteAsync(ct);
            await using (var delete = Sql.Command(unit.Connection, unit.Transaction, "DELETE FROM export_jobs WHERE id = @id").With("@id", id))
                await delete.ExecuteNonQueryAsync(ct);
            await DeleteOutputAsync(unit, id, ct);
            await unit.CommitAsync(ct);
        }
        return expired.Count;
    }

    /// <summary>The patients an attempt's output names so far, in pages (for its audit records).</summary>
    public async IAsyncEnumerable<IReadOnlyList<string>> PatientsAsync(string jobId, int pageSize, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        var after = "";
        while (true)
        {
            var page = new List<string>(pageSize);
            await using (var select = Sql.Command(connection, null,
                $"SELECT patient_id FROM export_patients WHERE job_id = @j AND patient_id > @after ORDER BY patient_id LIMIT {pageSize.ToString(CultureInfo.InvariantCulture)}")
                .With("@j", jobId).With("@after", after))
            await using (var reader = await select.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct)) page.Add(reader.GetString(0));
            }
            if (page.Count == 0) yield break;
            yield return page;
            after = page[^1];
        }
    }

    /// <summary>Writes file <paramref name="fileNo"/> of a job to <paramref name="output"/>, one chunk in memory at a time.</summary>
    public async Task CopyFileAsync(string jobId, int fileNo, Stream output, CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        var next = 0;
        while (true)
        {
            byte[]? data;
            await using (var select = Sql.Command(connection, null, "SELECT data FROM export_chunks WHERE job_id = @j AND file_no = @f AND chunk_no = @n")
                .With("@j", jobId).With("@f", fileNo).With("@n", next))
            {
                data = await select.ExecuteScalarAsync(ct) as byte[];
            }
            if (data is null) return;
            await output.WriteAsync(data, ct);
            next++;
        }
    }

    private async Task<bool> RenewAsync(WriteUnit unit, ExportJob job, TimeSpan lease, string progress, CancellationToken ct)
    {
        await using var update = Sql.Command(unit.Connection, unit.Transaction,
            "UPDATE export_jobs SET lease_until = @u, progress = @p WHERE id = @id AND attempts = @a AND status = @running")
            .With("@u", (clock.GetUtcNow() + lease).ToUnixTimeMilliseconds()).With("@p", progress)
            .With("@id", job.Id).With("@a", job.Attempts).With("@running", ExportStatus.Running);
        return await update.ExecuteNonQueryAsync(ct) == 1;
    }

    private static async Task DeleteOutputAsync(WriteUnit unit, string jobId, CancellationToken ct)
    {
        await using (var chunks = Sql.Command(unit.Connection, unit.Transaction, "DELETE FROM export_chunks WHERE job_id = @id").With("@id", jobId))
            await chunks.ExecuteNonQueryAsync(ct);
        await using (var patients = Sql.Command(unit.Connection, unit.Transaction, "DELETE FROM export_patients WHERE job_id = @id").With("@id", jobId))
            await patients.ExecuteNonQueryAsync(ct);
    }

    private static ExportJob Read(DbDataReader r)
    {
        static DateTimeOffset? At(DbDataReader r, int i) => r.IsDBNull(i) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(i));
        static string? Text(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
        return new ExportJob(r.GetString(0), r.GetString(1), ExportSpec.FromJson(r.GetString(2)), r.GetString(3),
            DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)), Text(r, 5), At(r, 6), r.GetInt32(7), Text(r, 8), At(r, 9), Text(r, 10), Text(r, 11), At(r, 12));
    }
}
