using System.Globalization;
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using FhirSortie.Tests.Search;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// SQLite's audit journal (Audit/AuditJournal.cs): records durable in a lane when the call returns, moved into the
/// audit store once each, also when a crash left them moved and not yet deleted, and moved in the background without
/// any reader asking.
/// </summary>
public sealed class AuditJournalTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "fhirsortie-journal-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static AuditEntry ReadOf(string patient) => new()
    {
        Id = Server.Rest.FhirRequest.NewId(),
        Recorded = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        Interaction = "read",
        Status = 200,
        ClientId = "csapa-journal",
        Finess = "130000000",
        Entities = [$"Patient/{patient}", $"MedicationRequest/mr-{patient}"],
        Patients = [patient],
    };

    private async Task<SqliteDialect> DatabaseAsync()
    {
        var dialect = new SqliteDialect(_directory);
        await Migrator.MigrateAsync(dialect, NullLogger.Instance, CancellationToken.None);
        return dialect;
    }

    private static async Task<long> CountAsync(StorageDialect dialect, string sql, string id)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        await using var cmd = Sql.Command(connection, null, sql).With("@i", id);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Records_a_crash_left_moved_but_not_deleted_are_in_the_store_once_with_their_keys_once()
    {
        var first = Enumerable.Range(0, 40).Select(i => ReadOf($"crash{i}")).ToList();
        var dialect = await DatabaseAsync();
        var journal = new AuditJournal(dialect);
        await System.Threading.Tasks.Task.WhenAll(first.Select(journal.AppendAsync));
        foreach (var entry in first) Assert.True(await DurableAuditRecords.ExistsAsync(dialect, entry.Id));
        Assert.Equal(40, (await journal.MoveAsync(CancellationToken.None)).Rows);
        // The lanes delete moved rows with their next batch, which never comes: the "crash" leaves them in both places.
        journal.Dispose();
        await dialect.DisposeAsync();

        var restarted = await DatabaseAsync();
        var again = new AuditJournal(restarted);
        var second = Enumerable.Range(0, 10).Select(i => ReadOf($"after{i}")).ToList();
        await System.Threading.Tasks.Task.WhenAll(second.Select(again.AppendAsync));
        await again.DrainAsync(CancellationToken.None);
        foreach (var entry in first.Concat(second))
        {
            Assert.Equal(1, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_events WHERE id = @i", entry.Id));
            Assert.Equal(AuditStore.Keys(entry).Count, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_keys WHERE audit_id = @i", entry.Id));
        }
        Assert.Equal(50, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_events WHERE id <> @i", ""));
        again.Dispose();
        await restarted.DisposeAsync();
    }

    [Fact]
    public async Task Records_appended_and_never_moved_are_found_by_the_next_process_drain()
    {
        var dialect = await DatabaseAsync();
        var journal = new AuditJournal(dialect);
        var entries = Enumerable.Range(0, 25).Select(i => ReadOf($"left{i}")).ToList();
        await System.Threading.Tasks.Task.WhenAll(entries.Select(journal.AppendAsync));
        journal.Dispose();
        await dialect.DisposeAsync();

        var restarted = await DatabaseAsync();
        var again = new AuditJournal(restarted);
        again.Start();
        Assert.Equal(25, again.Backlog);
        await again.DrainAsync(CancellationToken.None);
        Assert.Equal(0, again.Backlog);
        foreach (var entry in entries) Assert.Equal(1, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_events WHERE id = @i", entry.Id));
        again.Dispose();
        await restarted.DisposeAsync();
    }

    [Fact]
    public async Task Concurrent_records_share_lane_transactions_and_each_is_durable_when_its_call_returns()
    {
        var dialect = await DatabaseAsync();
        var journal = new AuditJournal(dialect);
        var entries = Enumerable.Range(0, 200).Select(i => ReadOf($"busy{i}")).ToList();
        // Concurrent as requests are: a caller that finds the lane idle writes inline, the others queue behind it.
        var durable = await System.Threading.Tasks.Task.WhenAll(entries.Select(entry => System.Threading.Tasks.Task.Run(async () =>
        {
            await journal.AppendAsync(entry);
            return await DurableAuditRecords.ExistsAsync(dialect, entry.Id);
        })));
        Assert.All(durable, Assert.True);
        Assert.True(journal.Batches < 200, $"{journal.Batches} transactions for 200 concurrent records");
        journal.Dispose();
        await dialect.DisposeAsync();
    }

    /// <summary>Offsets of the frames written in a segment file (walking the length fields, as far as they are not zero).</summary>
    private static List<long> FrameOffsets(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var offsets = new List<long>();
        for (long offset = 0; offset + 16 <= bytes.Length;)
        {
            var length = BitConverter.ToUInt32(bytes, (int)offset);
            if (length == 0) break;
            offsets.Add(offset);
            offset += 16 + length;
        }
        return offsets;
    }

    private string LaneDirectory => Path.Combine(_directory, "audit-journal-0");

    [Fact]
    public async Task A_torn_last_frame_is_ignored_and_the_records_before_it_are_moved_once_after_a_restart()
    {
        var dialect = await DatabaseAsync();
        var journal = new AuditJournal(dialect);
        var entries = Enumerable.Range(0, 30).Select(i => ReadOf($"torn{i}")).ToList();
        foreach (var entry in entries) await journal.AppendAsync(entry);
        journal.Dispose();
        await dialect.DisposeAsync();
        // A crash in the middle of the last write: its frame is torn (the bytes of its payload not all there).
        var segment = Assert.Single(Directory.GetFiles(LaneDirectory, "*.seg"));
        var last = FrameOffsets(segment)[^1];
        await using (var file = new FileStream(segment, FileMode.Open, FileAccess.Write))
        {
            file.Position = last + 40;
            file.Write(new byte[200]);
        }

        var restarted = await DatabaseAsync();
        var again = new AuditJournal(restarted);
        again.Start();
        Assert.Equal(29, again.Backlog);
        // Appended after the restart: a new segment, never after the torn frame.
        var later = Enumerable.Range(0, 5).Select(i => ReadOf($"later{i}")).ToList();
        foreach (var entry in later) await again.AppendAsync(entry);
        Assert.Equal(2, Directory.GetFiles(LaneDirectory, "*.seg").Length);
        await again.DrainAsync(CancellationToken.None);
        foreach (var entry in entries.Take(29).Concat(later))
            Assert.Equal(1, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_events WHERE id = @i", entry.Id));
        Assert.Equal(0, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_events WHERE id = @i", entries[^1].Id));
        again.Dispose();
        await restarted.DisposeAsync();
    }

    [Fact]
    public async Task A_frame_whose_checksum_does_not_match_ends_the_segment()
    {
        var dialect = await DatabaseAsync();
        var journal = new AuditJournal(dialect);
        var entries = Enumerable.Range(0, 10).Select(i => ReadOf($"crc{i}")).ToList();
        foreach (var entry in entries) await journal.AppendAsync(entry);
        journal.Dispose();
        await dialect.DisposeAsync();
        var segment = Assert.Single(Directory.GetFiles(LaneDirectory, "*.seg"));
        var seventh = FrameOffsets(segment)[6];
        var bytes = File.ReadAllBytes(segment);
        bytes[seventh + 30] ^= 0x20;
        File.WriteAllBytes(segment, bytes);

        var restarted = await DatabaseAsync();
        var again = new AuditJournal(restarted);
        again.Start();
        Assert.Equal(6, again.Backlog);
        await again.DrainAsync(CancellationToken.None);
        Assert.Equal(6, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_events WHERE id <> @i", ""));
        again.Dispose();
        await restarted.DisposeAsync();
    }

    [Fact]
    public async Task Moved_segments_are_deleted_or_reused_and_a_reused_ones_old_frames_are_never_moved_again()
    {
        var dialect = await DatabaseAsync();
        // 16 KB segments: about a dozen records each.
        var journal = new AuditJournal(dialect, 16 * 1024);
        var first = Enumerable.Range(0, 300).Select(i => ReadOf($"seg{i}")).ToList();
        foreach (var entry in first) await journal.AppendAsync(entry);
        Assert.True(Directory.GetFiles(LaneDirectory, "*.seg").Length > 5);
        await journal.DrainAsync(CancellationToken.None);
        // Only the newest segment is left, and one spare.
        Assert.Single(Directory.GetFiles(LaneDirectory, "*.seg"));
        Assert.True(File.Exists(Path.Combine(LaneDirectory, "spare.seg.tmp")));
        var second = Enumerable.Range(0, 300).Select(i => ReadOf($"again{i}")).ToList();
        foreach (var entry in second) await journal.AppendAsync(entry);
        journal.Dispose();
        await dialect.DisposeAsync();

        var restarted = await DatabaseAsync();
        var again = new AuditJournal(restarted, 16 * 1024);
        again.Start();
        await again.DrainAsync(CancellationToken.None);
        Assert.Equal(600, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_events WHERE id <> @i", ""));
        foreach (var entry in first.Concat(second))
            Assert.Equal(AuditStore.Keys(entry).Count, await CountAsync(restarted, "SELECT COUNT(*) FROM audit_keys WHERE audit_id = @i", entry.Id));
        again.Dispose();
        await restarted.DisposeAsync();
    }

    [Fact]
    public async Task Records_an_older_build_left_in_its_SQLite_journal_file_are_moved_once_and_the_file_deleted()
    {
        var dialect = await DatabaseAsync();
        var legacy = Path.Combine(_directory, "audit-journal-0.db");
        var old = Enumerable.Range(0, 3).Select(i => ReadOf($"old{i}")).ToList();
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={legacy};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var create = connection.CreateCommand();
            create.CommandText = Schema.AuditJournalV1;
            await create.ExecuteNonQueryAsync();
            foreach (var e in old)
            {
                var keys = "[" + string.Join(",", AuditStore.Keys(e).Select(k => System.Text.Json.JsonSerializer.Serialize(new[] { k.Param, k.System, k.Value }))) + "]";
                await using var insert = connection.CreateCommand();
                insert.CommandText = "INSERT INTO audit_journal (id, recorded, interaction, action, outcome, entry, keys) VALUES ($i, $r, 'read', 'R', '0', $e, $k)";
                insert.Parameters.AddWithValue("$i", e.Id);
                insert.Parameters.AddWithValue("$r", e.Recorded);
                insert.Parameters.AddWithValue("$e", e.ToJson());
                insert.Parameters.AddWithValue("$k", keys);
                await insert.ExecuteNonQueryAsync();
            }
        }
        var journal = new AuditJournal(dialect);
        await journal.DrainAsync(CancellationToken.None);
        foreach (var entry in old)
        {
            Assert.Equal(1, await CountAsync(dialect, "SELECT COUNT(*) FROM audit_events WHERE id = @i", entry.Id));
            Assert.Equal(AuditStore.Keys(entry).Count, await CountAsync(dialect, "SELECT COUNT(*) FROM audit_keys WHERE audit_id = @i", entry.Id));
        }
        Assert.False(File.Exists(legacy));
        journal.Dispose();
        await dialect.DisposeAsync();
    }

    [Fact]
    public async Task The_gateway_moves_a_reads_record_into_the_store_without_any_reader_asking()
    {
        await using var gateway = new SqliteGateway();
        var fhir = gateway.Fhir();
        var patient = await fhir.CreateAsync(new Patient { Name = [new HumanName { Family = "Moved" }] });
        Assert.Equal(HttpStatusCode.OK, (await fhir.GetAsync($"Patient/{patient.Id}")).StatusCode);
        var dialect = gateway.Services.GetRequiredService<StorageDialect>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        long inStore;
        do
        {
            await System.Threading.Tasks.Task.Delay(100);
            inStore = await CountAsync(dialect, "SELECT COUNT(*) FROM audit_events a WHERE a.interaction = 'read' AND a.id IN (SELECT audit_id FROM audit_keys WHERE param = 'patient' AND value = @i)", patient.Id!);
        }
        while (inStore == 0 && DateTime.UtcNow < deadline);
        Assert.Equal(1, inStore);
    }
}
