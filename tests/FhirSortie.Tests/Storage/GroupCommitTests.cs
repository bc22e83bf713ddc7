using System.Net;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Tests.Storage;

/// <summary>
/// SQLite group commit: concurrent units of work share one transaction and one COMMIT, each in its own savepoint.
/// A failed unit must not take the others down, and nobody may be answered before the shared COMMIT.
/// </summary>
public sealed class SqliteGroupCommitTests : IAsyncLifetime
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "fhirsortie-tests", Guid.NewGuid().ToString("N"));
    private SqliteDialect _dialect = null!;
    private ResourceStore _store = null!;

    public async System.Threading.Tasks.Task InitializeAsync()
    {
        _dialect = new SqliteDialect(_folder);
        await Migrator.MigrateAsync(_dialect, NullLogger.Instance, CancellationToken.None);
        var conformance = Path.Combine(AppContext.BaseDirectory, "conformance");
        _store = new ResourceStore(_dialect, new ResourceIndexer(new SearchParameters([]), Compartments.Load(conformance)), TimeProvider.System);
    }

    public async System.Threading.Tasks.Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    private static Patient NewPatient(string family) => new() { Id = Guid.NewGuid().ToString(), Name = [new HumanName { Family = family }] };

    /// <summary>Waits until <paramref name="count"/> writers queue behind the one holding the turn.</summary>
    private async System.Threading.Tasks.Task WaitForWaitersAsync(int count)
    {
        for (var i = 0; i < 500 && _dialect.GroupCommit.Waiting < count; i++) await System.Threading.Tasks.Task.Delay(10);
        Assert.Equal(count, _dialect.GroupCommit.Waiting);
    }

    [Fact]
    public async System.Threading.Tasks.Task A_failing_unit_rolls_back_alone_and_the_others_of_its_group_commit_together()
    {
        var commits = _dialect.GroupCommit.Commits;
        var units = _dialect.GroupCommit.Units;
        var first = NewPatient("Premier");
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstWrite = _store.WriteAsync(async session =>
        {
            await session.SaveAsync(first, null, "POST", CancellationToken.None);
            holding.SetResult();
            await release.Task; // the others queue up meanwhile
            return 0;
        }, CancellationToken.None);
        await holding.Task;

        var others = Enumerable.Range(0, 5).Select(i => NewPatient($"Suivant{i}")).ToList();
        var writes = others.Select((patient, i) => _store.WriteAsync(async session =>
        {
            await session.SaveAsync(patient, null, "POST", CancellationToken.None);
            if (i == 2) throw new InvalidOperationException("this unit fails after writing");
            // Nobody of the group may be answered before the shared COMMIT, which comes after the last unit.
            Assert.False(firstWrite.IsCompleted);
            return i;
        }, CancellationToken.None)).ToList();
        await WaitForWaitersAsync(others.Count);
        release.SetResult();

        await firstWrite;
        for (var i = 0; i < writes.Count; i++)
        {
            if (i == 2) await Assert.ThrowsAsync<InvalidOperationException>(() => writes[i]);
            else Assert.Equal(i, await writes[i]);
        }

        Assert.NotNull(await _store.ReadAsync("Patient", first.Id!, CancellationToken.None));
        for (var i = 0; i < others.Count; i++)
        {
            var stored = await _store.ReadAsync("Patient", others[i].Id!, CancellationToken.None);
            if (i == 2) Assert.Null(stored);
            else Assert.NotNull(stored);
        }
        // Five units committed, with one COMMIT.
        Assert.Equal(1, _dialect.GroupCommit.Commits - commits);
        Assert.Equal(5, _dialect.GroupCommit.Units - units);
    }

    [Fact]
    public async System.Threading.Tasks.Task A_unit_of_a_group_sees_the_writes_of_the_units_before_it()
    {
        var patient = NewPatient("Partage");
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var create = _store.WriteAsync(async session =>
        {
            var stored = await session.SaveAsync(patient, null, "POST", CancellationToken.None);
            holding.SetResult();
            await release.Task;
            return stored;
        }, CancellationToken.None);
        await holding.Task;
        var update = _store.WriteAsync(async session =>
        {
            var current = await session.ReadForUpdateAsync("Patient", patient.Id!, CancellationToken.None);
            Assert.NotNull(current);
            var changed = (Patient)patient.DeepCopy();
            changed.Name[0].Family = "Modifiee";
            return await session.SaveAsync(changed, current, "PUT", CancellationToken.None);
        }, CancellationToken.None);
        await WaitForWaitersAsync(1);
        release.SetResult();

        Assert.Equal(1, (await create).Version);
        Assert.Equal(2, (await update).Version);
        var read = await _store.ReadAsync("Patient", patient.Id!, CancellationToken.None);
        Assert.Equal(2, read!.Version);
    }

    [Fact]
    public async System.Threading.Tasks.Task A_lone_writer_commits_at_once()
    {
        var commits = _dialect.GroupCommit.Commits;
        var patient = NewPatient("Seul");
        await _store.WriteAsync(session => session.SaveAsync(patient, null, "POST", CancellationToken.None), CancellationToken.None);
        Assert.Equal(1, _dialect.GroupCommit.Commits - commits);
        Assert.NotNull(await _store.ReadAsync("Patient", patient.Id!, CancellationToken.None));
    }

    [Fact]
    public async System.Threading.Tasks.Task A_failing_first_unit_leaves_nothing_and_the_writers_waiting_behind_it_commit()
    {
        // The first unit of a group has no savepoint: its failure must roll back its own writes and nothing else.
        var failed = NewPatient("Echec");
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = _store.WriteAsync<int>(async session =>
        {
            await session.SaveAsync(failed, null, "POST", CancellationToken.None);
            holding.SetResult();
            await release.Task;
            throw new InvalidOperationException("the first unit fails after writing");
        }, CancellationToken.None);
        await holding.Task;
        var others = Enumerable.Range(0, 3).Select(i => NewPatient("Suivant" + i)).ToList();
        var writes = others.Select(p => _store.WriteAsync(session => session.SaveAsync(p, null, "POST", CancellationToken.None), CancellationToken.None)).ToList();
        await WaitForWaitersAsync(3);
        release.SetResult();

        await Assert.ThrowsAsync<InvalidOperationException>(() => first);
        await System.Threading.Tasks.Task.WhenAll(writes);
        Assert.Null(await _store.ReadAsync("Patient", failed.Id!, CancellationToken.None));
        foreach (var p in others) Assert.NotNull(await _store.ReadAsync("Patient", p.Id!, CancellationToken.None));
    }

    [Fact]
    public async System.Threading.Tasks.Task A_lost_group_transaction_is_retried_on_a_new_writer_connection()
    {
        var patient = NewPatient("Reprise");
        var attempts = 0;
        System.Data.Common.DbConnection? lost = null;
        var stored = await _store.WriteAsync(async session =>
        {
            var saved = await session.SaveAsync((Patient)patient.DeepCopy(), null, "POST", CancellationToken.None);
            if (++attempts == 1)
            {
                // What SQLite does on some errors (I/O, full disk): the whole transaction is rolled back under us.
                lost = session.Connection;
                await using var rollback = session.Connection.CreateCommand();
                rollback.CommandText = "ROLLBACK";
                await rollback.ExecuteNonQueryAsync();
            }
            else
            {
                Assert.NotSame(lost, session.Connection); // the kept connection was dropped with the failed group
            }
            return saved;
        }, CancellationToken.None);

        Assert.Equal(2, attempts);
        Assert.Equal(1, stored.Version);
        Assert.NotNull(await _store.ReadAsync("Patient", patient.Id!, CancellationToken.None));
    }

    [Fact]
    public async System.Threading.Tasks.Task Writes_reuse_the_statements_prepared_on_the_kept_writer_connection()
    {
        System.Threading.Tasks.Task<int> PreparedAsync() =>
            _store.WriteAsync(session => System.Threading.Tasks.Task.FromResult(session.Unit.Statements!.Count + session.Unit.Statements.Native!.Count), CancellationToken.None);
        await _store.WriteAsync(session => session.SaveAsync(NewPatient("Premier"), null, "POST", CancellationToken.None), CancellationToken.None);
        var prepared = await PreparedAsync();
        for (var i = 0; i < 20; i++)
            await _store.WriteAsync(session => session.SaveAsync(NewPatient("Suite" + i), null, "POST", CancellationToken.None), CancellationToken.None);

        Assert.True(prepared > 0);
        Assert.Equal(prepared, await PreparedAsync()); // the same statements again, not new ones per write
        var found = 0;
        for (var i = 0; i < 20; i++) found += (await _store.ReadAsync("Patient", (await FindIdAsync("Suite" + i))!, CancellationToken.None)) is null ? 0 : 1;
        Assert.Equal(20, found);
    }

    [Fact]
    public async System.Threading.Tasks.Task Index_rows_and_versions_are_inserted_on_native_statements_prepared_once()
    {
        System.Threading.Tasks.Task<int> NativeAsync() =>
            _store.WriteAsync(session => System.Threading.Tasks.Task.FromResult(session.Unit.Statements!.Native!.Count), CancellationToken.None);
        await _store.WriteAsync(session => session.SaveAsync(NewPatient("Premier"), null, "POST", CancellationToken.None), CancellationToken.None);
        var native = await NativeAsync();
        for (var i = 0; i < 20; i++)
            await _store.WriteAsync(session => session.SaveAsync(NewPatient("Suite" + i), null, "POST", CancellationToken.None), CancellationToken.None);

        // resources, resource_versions, and the index tables a Patient with a name fills (search_string at least).
        Assert.True(native >= 3, $"{native} native statements");
        Assert.Equal(native, await NativeAsync());
        Assert.NotNull(await FindIdAsync("Suite19")); // found by its index row
        var stored = await _store.ReadAsync("Patient", (await FindIdAsync("Suite7"))!, CancellationToken.None);
        Assert.Equal("Suite7", ((Patient)Server.Rest.FhirResponse.ParseStored(stored!.Json!)).Name[0].Family);
    }

    [Fact]
    public async System.Threading.Tasks.Task Commands_on_the_kept_writer_connection_compile_their_statement_once()
    {
        // Statements SQLite holds compiled on the writer connection (sqlite3_next_stmt walks them).
        static int Compiled(System.Data.Common.DbConnection connection)
        {
            var handle = ((Microsoft.Data.Sqlite.SqliteConnection)connection).Handle!;
            var n = 0;
            for (var stmt = SQLitePCL.raw.sqlite3_next_stmt(handle, null); stmt is not null && !stmt.IsInvalid; stmt = SQLitePCL.raw.sqlite3_next_stmt(handle, stmt)) n++;
            return n;
        }
        async System.Threading.Tasks.Task<(long Count, int Compiled)> CountAsync(string family) =>
            await _store.WriteAsync(async session =>
            {
                long count;
                await using (var cmd = Sql.Command(session.Connection, session.Transaction,
                    "SELECT count(*) FROM search_string WHERE param = 'family' AND value = @v").With("@v", family))
                {
                    count = (long)(await cmd.ExecuteScalarAsync())!;
                }
                return (count, Compiled(session.Connection)); // once the command is disposed
            }, CancellationToken.None);

        await _store.WriteAsync(session =>
        {
            ((Microsoft.Data.Sqlite.SqliteConnection)session.Connection).Handle!.enable_sqlite3_next_stmt(true);
            return session.SaveAsync(NewPatient("Gardé"), null, "POST", CancellationToken.None);
        }, CancellationToken.None);
        var before = await _store.WriteAsync(session => System.Threading.Tasks.Task.FromResult(Compiled(session.Connection)), CancellationToken.None);
        var first = await CountAsync("garde");
        var second = await CountAsync("garde");
        var other = await CountAsync("autre");
        Assert.Equal(before + 1, first.Compiled); // kept compiled once disposed...
        Assert.Equal(1, first.Count);
        Assert.Equal(1, second.Count);
        Assert.Equal(0, other.Count); // the kept command runs with the new value, not the old one
        Assert.Equal(first.Compiled, second.Compiled); // ...and reused, not compiled again
        Assert.Equal(first.Compiled, other.Compiled);
    }

    [Fact]
    public async System.Threading.Tasks.Task A_kept_command_disposed_with_its_reader_open_is_not_reused()
    {
        await _store.WriteAsync(async session =>
        {
            const string text = "SELECT 1 UNION ALL SELECT 2";
            var cmd = Sql.Command(session.Connection, session.Transaction, text);
            var reader = await cmd.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            await cmd.DisposeAsync(); // the reader is still open: this command is not put back
            await using var again = Sql.Command(session.Connection, session.Transaction, text);
            Assert.NotSame(cmd, again);
            await using (var rows = await again.ExecuteReaderAsync())
            {
                var values = new List<long>();
                while (await rows.ReadAsync()) values.Add(rows.GetInt64(0));
                Assert.Equal([1L, 2L], values);
            }
            await reader.DisposeAsync();
            return true;
        }, CancellationToken.None);
    }

    private async System.Threading.Tasks.Task<string?> FindIdAsync(string family)
    {
        await using var connection = await _store.OpenAsync(CancellationToken.None);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT r.id FROM resources r JOIN search_string s ON s.rkey = r.rkey WHERE s.param = 'family' AND s.value = @v";
        var p = cmd.CreateParameter();
        p.ParameterName = "@v";
        p.Value = family.ToLowerInvariant();
        cmd.Parameters.Add(p);
        return await cmd.ExecuteScalarAsync() as string;
    }
}

/// <summary>Concurrent transaction bundles through HTTP, on both dialects: a failing one leaves the others whole.</summary>
public abstract class ConcurrentTransactionTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private static Bundle Package(string family, bool broken)
    {
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        bundle.Entry.Add(new Bundle.EntryComponent
        {
            FullUrl = "urn:uuid:" + Guid.NewGuid(),
            Resource = new Patient { Name = [new HumanName { Family = family }] },
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Patient" },
        });
        bundle.Entry.Add(new Bundle.EntryComponent
        {
            Resource = new Observation
            {
                Status = ObservationStatus.Final,
                Code = new CodeableConcept("http://loinc.org", "29463-7"),
                // A broken package points at a patient that does not exist: the whole bundle fails with 400.
                Subject = new ResourceReference(broken ? "Patient?identifier=urn:oid:1.2.3|nobody" : bundle.Entry[0].FullUrl),
            },
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Observation" },
        });
        return bundle;
    }

    [Fact]
    public async System.Threading.Tasks.Task Concurrent_transactions_commit_independently_of_a_failing_one()
    {
        var family = "Groupe" + Guid.NewGuid().ToString("N")[..8];
        var posts = Enumerable.Range(0, 12).Select(i => _fhir.PostAsync("", FhirHttp.Json(Package(family, broken: i % 4 == 1)))).ToList();
        var responses = await System.Threading.Tasks.Task.WhenAll(posts);
        for (var i = 0; i < responses.Length; i++)
            Assert.Equal(i % 4 == 1 ? HttpStatusCode.BadRequest : HttpStatusCode.OK, responses[i].StatusCode);

        var found = await (await _fhir.GetAsync($"Patient?family={family}&_count=50")).ReadAs<Bundle>();
        Assert.Equal(9, found.Total);
        foreach (var response in responses.Where(r => r.IsSuccessStatusCode))
        {
            var answer = await response.ReadAs<Bundle>();
            foreach (var entry in answer.Entry)
                Assert.Equal(HttpStatusCode.OK, (await _fhir.GetAsync(new Uri(entry.Response!.Location!).AbsolutePath.Replace("/fhir/", ""))).StatusCode);
        }
    }
}

public sealed class SqliteConcurrentTransactionTests(SqliteGateway gateway) : ConcurrentTransactionTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresConcurrentTransactionTests(PostgresGateway gateway) : ConcurrentTransactionTests(gateway), IClassFixture<PostgresGateway>;
