using System.Data.Common;
using System.Globalization;
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;

namespace FhirSortie.Server.Rest;

/// <summary>
/// batch and transaction: POST [base] with a Bundle. A transaction runs every entry in ONE database transaction
/// (all or nothing) in the spec's order (DELETE, POST, PUT/PATCH, GET/HEAD) after giving POST entries their ids and
/// rewriting references between entries; a batch runs each entry on its own. Each entry reuses the single
/// interaction's code, so it behaves exactly as that interaction would.
/// </summary>
public static class Transaction
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var body = await FhirRequest.BodyAsync(context);
        if (body is not Bundle bundle)
            throw FhirException.BadRequest($"POST [base] takes a Bundle of type batch or transaction, not a {body.TypeName}.", "resourceType");
        var services = new Services(FhirRequest.Store(context), context.RequestServices.GetRequiredService<SearchEngine>(),
            FhirRequest.Options(context), FhirBase.Of(context), Prefer.From(context.Request).Return,
            context.RequestServices, FhirSortie.Server.Search.AccessFilters.For(context), AccessPoint.Of(context)) { Context = context };
        // GET entries on AuditEvents see every record answered before this request (SQLite: the journal moved first;
        // inside the transaction it could not be, the move needs the writer).
        if (bundle.Entry.Any(e => e.Request?.Method is Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD && e.Request.Url?.Contains(Audit.AuditStore.Type, StringComparison.Ordinal) == true))
            await context.RequestServices.GetRequiredService<Audit.AuditJournal>().DrainAsync(context.RequestAborted);
        var response = bundle.Type switch
        {
            Bundle.BundleType.Transaction => await RunTransactionAsync(services, bundle, context.RequestAborted),
            Bundle.BundleType.Batch => await RunBatchAsync(services, bundle, context.RequestAborted),
            Bundle.BundleType.Document => throw FhirException.BadRequest(
                "A document Bundle is stored, not processed: POST it to [base]/Bundle.", "Bundle.type"),
            null => throw FhirException.BadRequest("Bundle.type is missing; POST [base] takes a batch or transaction Bundle.", "Bundle.type"),
            var other => throw FhirException.BadRequest(
                $"POST [base] takes a Bundle of type batch or transaction, not '{other.Value.GetLiteral()}'.", "Bundle.type"),
        };
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, response));
    }

    /// <summary>What every entry needs from the request and the host.</summary>
    public sealed record Services(ResourceStore Store, SearchEngine Search, FhirSortieOptions Options, string BaseUrl, PreferReturn Prefer, IServiceProvider Provider, FhirSortie.Server.Search.AccessFilter Access,
        AccessPoint? AccessPoint = null)
    {
        /// <summary>The request, when there is one: failed entries are noted on its <see cref="AuditNote"/>.</summary>
        public HttpContext? Context { get; init; }

        /// <summary>
        /// Run first in the transaction's database transaction (and again on every retry): a check of what the caller read
        /// before building the transaction (<see cref="Mapping.LetterVersions"/>), which throws when it changed meanwhile.
        /// </summary>
        public Func<WriteSession, CancellationToken, Task>? Precondition { get; init; }
    }

    public static async Task<Bundle> RunTransactionAsync(Services services, Bundle bundle, CancellationToken ct)
    {
        var entries = bundle.Entry.Select((e, i) => TransactionEntry.Parse(e, i, services.BaseUrl)).ToList();
        RequireDistinctFullUrls(entries);
        // All or nothing: one entry the caller may not do refuses the whole transaction (403 naming it) before any work.
        foreach (var entry in entries)
        {
            try
            {
                RequireEntry(services, entry);
            }
            catch (FhirException e)
            {
                NoteFailure(services, entry, null, e, RequestDecision(services), RequestPatients(services));
                throw ForEntry(entry, e);
            }
        }
        FhirResult[] results;
        // The first attempt's copies are made before taking the writer's turn (SQLite: one writer at a time, so work
        // done in the turn is work the other writers wait for); a retry makes fresh ones.
        Resource?[]? firstCopies = CopyResources(entries);
        try
        {
            results = await services.Store.WriteAsync(Guarded(services, session =>
                ExecuteTransactionAsync(session, services, entries, Interlocked.Exchange(ref firstCopies, null) ?? CopyResources(entries), ct)), ct);
        }
        catch (FhirException e)
        {
            // The whole transaction failed: the audit names the entry that failed it (its expression says which).
            var failed = entries.FirstOrDefault(x => e.Outcome.Issue.Any(i => i.Expression.Any(p =>
                p == x.Expression || (p?.StartsWith(x.Expression + ".", StringComparison.Ordinal) ?? false))));
            if (failed is not null) NoteFailure(services, failed, null, e, RequestDecision(services), RequestPatients(services));
            throw;
        }
        var response = NewResponseBundle(Bundle.BundleType.TransactionResponse);
        for (var i = 0; i < entries.Count; i++) response.Entry.Add(ResponseEntry(entries[i], results[i], services));
        return response;
    }

    public static async Task<Bundle> RunBatchAsync(Services services, Bundle bundle, CancellationToken ct)
    {
        var response = NewResponseBundle(Bundle.BundleType.BatchResponse);
        for (var i = 0; i < bundle.Entry.Count; i++)
        {
            Bundle.EntryComponent answer;
            TransactionEntry? entry = null;
            // Each entry's own access decision, for its audit record; the request keeps its first denial.
            var note = services.Context is { } context ? AuditNote.For(context) : null;
            var before = note?.Decision;
            var patientsBefore = note?.Patients.ToList() ?? [];
            if (note is not null)
            {
                note.Decision = null;
                note.Patients.Clear();
            }
            try
            {
                entry = TransactionEntry.Parse(bundle.Entry[i], i, services.BaseUrl);
                RequireEntry(services, entry);
                var result = await ExecuteBatchEntryAsync(services, entry, ct);
                answer = ResponseEntry(entry, result, services);
            }
            catch (FhirException e)
            {
                NoteFailure(services, entry, bundle.Entry[i], e, note?.Decision, note?.Patients.ToList());
                answer = new Bundle.EntryComponent
                {
                    Response = new Bundle.ResponseComponent { Status = TransactionEntry.StatusLine(e.Status), Outcome = e.Outcome },
                };
            }
            if (note is not null && (note.Decision is null || before is { Permitted: false })) note.Decision = before;
            note?.Patients.UnionWith(patientsBefore);
            response.Entry.Add(answer);
        }
        return response;
    }

    /// <summary>A batch entry is its own unit of work: its failure leaves the others alone.</summary>
    private static async Task<FhirResult> ExecuteBatchEntryAsync(Services services, TransactionEntry entry, CancellationToken ct)
    {
        if (entry.Method is Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD)
        {
            await using var connection = await services.Store.OpenAsync(ct);
            return await ExecuteReadAsync(services, connection, null, entry, ct);
        }
        return await services.Store.WriteAsync(Guarded(services, async session =>
        {
            var resource = entry.Resource?.DeepCopy() as Resource;
            if (resource is not null)
            {
                // Batch entries cannot point at each other: only conditional references are resolved.
                await TransactionReferences.RewriteAsync(resource, new Dictionary<string, string>(),
                    (type, query) => ResolveConditionalAsync(session, services.Search, type, query, entry.Expression, ct), entry.Expression);
            }
            if (entry.Method == Bundle.HTTPVerb.DELETE) return await ExecuteDeleteAsync(session, services, entry, ct);
            return await ExecuteWriteAsync(session, services, entry, resource, assignedId: null, ct);
        }), ct);
    }

    private static Consents.AccessDecision? RequestDecision(Services services) =>
        services.Context is { } context ? AuditNote.For(context).Decision : null;

    private static List<string>? RequestPatients(Services services) =>
        services.Context is { } context ? AuditNote.For(context).Patients.ToList() : null;

    /// <summary>
    /// Notes a failed entry for the audit trail: its interaction, target and status, and the denial when the access
    /// point refused it (the decision noted while it ran, or the 403's reason).
    /// </summary>
    private static void NoteFailure(Services services, TransactionEntry? entry, Bundle.EntryComponent? raw, FhirException e, Consents.AccessDecision? decided,
        IReadOnlyList<string>? decidedPatients)
    {
        if (services.Context is not { } context) return;
        var status = (int)e.Status;
        var decision = decided is { Permitted: false } ? decided
            : e.Status == HttpStatusCode.Forbidden ? Consents.AccessDecision.Deny(e.Outcome.Issue.FirstOrDefault()?.Diagnostics ?? "access denied")
            : null;
        string interaction;
        string target;
        string? query = null;
        if (entry is null)
        {
            // The entry could not be parsed: name what it asked for, as far as it can be read.
            interaction = raw?.Request?.Method switch
            {
                Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD => "read",
                Bundle.HTTPVerb.POST => "create",
                Bundle.HTTPVerb.PUT => "update",
                Bundle.HTTPVerb.PATCH => "patch",
                Bundle.HTTPVerb.DELETE => "delete",
                _ => "operation",
            };
            target = raw?.Request?.Url?.Split('?')[0] ?? "Bundle";
        }
        else
        {
            interaction = entry.Method switch
            {
                Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD => entry.Id is null ? "search-type" : entry.Version is null ? "read" : "vread",
                Bundle.HTTPVerb.POST => "create",
                Bundle.HTTPVerb.PUT => "update",
                Bundle.HTTPVerb.PATCH => "patch",
                _ => "delete",
            };
            target = entry.Id is null ? entry.Type : entry.Version is { } v ? $"{entry.Type}/{entry.Id}/_history/{v}" : $"{entry.Type}/{entry.Id}";
            query = entry.Method == Bundle.HTTPVerb.POST ? entry.IfNoneExist : entry.Id is null ? entry.Query : null;
        }
        // The patients the access decisions of the entry looked at, and those its content names.
        IReadOnlyList<string> patients = [.. decidedPatients ?? [], .. entry?.Resource is { } resource ? Consents.PatientReferences.Of(resource) : []];
        if (entry is { Type: "Patient", Id: { } patientId }) patients = [.. patients, patientId];
        patients = patients.Distinct(StringComparer.Ordinal).ToList();
        AuditNote.For(context).FailedEntries.Add(new AuditNote.EntryFailure(interaction, target, status, decision, patients, query));
    }

    /// <summary>The type-level access decision on one entry, as the single interaction would ask it.</summary>
    private static void RequireEntry(Services services, TransactionEntry entry)
    {
        if (services.AccessPoint is not { } access) return;
        var interaction = entry.Method switch
        {
            Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD => entry.Id is null ? Interaction.SearchType : entry.Version is null ? Interaction.Read : Interaction.VRead,
            Bundle.HTTPVerb.POST => Interaction.Create,
            Bundle.HTTPVerb.PUT => Interaction.Update,
            Bundle.HTTPVerb.PATCH => Interaction.Patch,
            _ => Interaction.Delete,
        };
        var condition = entry.Method == Bundle.HTTPVerb.POST ? entry.IfNoneExist : entry.Id is null ? entry.Query : null;
        access.Require(new AccessRequest(interaction, entry.Type)
        {
            Conditional = interaction is not (Interaction.SearchType or Interaction.Read or Interaction.VRead) && condition is not null,
            Query = Conditional.Pairs(condition),
        });
    }

    private static Func<WriteSession, Task<T>> Guarded<T>(Services services, Func<WriteSession, Task<T>> work) =>
        services.AccessPoint is { } access ? access.Guard(work) : work;

    /// <summary>Fresh copies for every attempt: the unit of work may be retried, and ids and references are rewritten in place.</summary>
    private static Resource?[] CopyResources(List<TransactionEntry> entries) => entries.Select(e => e.Resource?.DeepCopy() as Resource).ToArray();

    private static async Task<FhirResult[]> ExecuteTransactionAsync(WriteSession session, Services services, List<TransactionEntry> entries, Resource?[] resources,
        CancellationToken ct)
    {
        if (services.Precondition is { } precondition) await precondition(session, ct);
        var results = new FhirResult[entries.Count];
        var order = entries.OrderBy(e => e.ProcessingRank).ThenBy(e => e.Index).ToList();

        foreach (var entry in order.Where(e => e.Method == Bundle.HTTPVerb.DELETE))
            results[entry.Index] = await Guard(entry, () => ExecuteDeleteAsync(session, services, entry, ct));

        // Identities first, so that every reference to an entry's fullUrl can be rewritten before anything is written.
        var identities = new Dictionary<string, string>(StringComparer.Ordinal);
        var assignedIds = new string?[entries.Count];
        // The match a conditional create found when identities were assigned, in this same database transaction: the
        // create answers with it instead of searching again (two searches each, the consent-filtered one included).
        var matched = new StoredResource?[entries.Count];
        var expected = new string?[entries.Count];
        var written = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in entries.Where(e => e.Method is Bundle.HTTPVerb.POST or Bundle.HTTPVerb.PUT or Bundle.HTTPVerb.PATCH or Bundle.HTTPVerb.DELETE))
        {
            var id = entry.Method == Bundle.HTTPVerb.DELETE ? entry.Id
                : await Guard(entry, () => IdentityAsync(session, services, entry, resources[entry.Index], assignedIds, matched, ct));
            if (id is null) continue;
            var identity = $"{entry.Type}/{id}";
            if (written.TryGetValue(identity, out var other))
            {
                throw FhirException.BadRequest(
                    $"Entries {other} and {entry.Index} both write {identity}; a transaction may touch a resource once.", entry.Expression);
            }
            written[identity] = entry.Index;
            expected[entry.Index] = identity;
            if (entry.FullUrl is { } fullUrl && entry.Method != Bundle.HTTPVerb.DELETE) identities[fullUrl] = identity;
        }

        var conditionalCache = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            if (resources[entry.Index] is not { } resource || entry.Method is Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD) continue;
            await Guard(entry, async () =>
            {
                await TransactionReferences.RewriteAsync(resource, identities, async (type, query) =>
                {
                    var key = type + "?" + query;
                    if (!conditionalCache.TryGetValue(key, out var target))
                        conditionalCache[key] = target = await ResolveConditionalAsync(session, services.Search, type, query, entry.Expression, ct);
                    return target;
                }, entry.Expression);
                return true;
            });
        }

        foreach (var entry in order.Where(e => e.Method != Bundle.HTTPVerb.DELETE))
        {
            if (entry.Method is Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD)
            {
                results[entry.Index] = await Guard(entry, () => ExecuteReadAsync(services, session.Connection, session.Transaction, entry, ct));
                continue;
            }
            var result = await Guard(entry, () => ExecuteWriteAsync(session, services, entry, resources[entry.Index], assignedIds[entry.Index], ct, matched[entry.Index]));
            // A conditional create/update that found no match when ids were assigned but finds one now (a concurrent
            // writer committed it): references were rewritten to the wrong id, so run the whole unit of work again.
            if (result.Stored is { } stored && expected[entry.Index] is { } identity && identity != $"{stored.Type}/{stored.Id}")
                throw new ConcurrentWriteException(entry.Type, stored.Id);
            results[entry.Index] = WithWritten(result, resources[entry.Index]);
        }
        return results;
    }

    /// <summary>
    /// The resource object a create or update just saved is the stored version (its JSON was serialised from it once its
    /// meta was set): a response entry asking for the representation takes it instead of parsing the stored JSON again.
    /// </summary>
    private static FhirResult WithWritten(FhirResult result, Resource? written) =>
        result is { Resource: null, Stored: { Deleted: false } stored } && written is not null && written.TypeName == stored.Type && written.Id == stored.Id
            && written.Meta?.VersionId == stored.Version.ToString(CultureInfo.InvariantCulture) && written.Meta.LastUpdated == stored.LastUpdated
            ? result with { Resource = written }
            : result;

    /// <summary>
    /// The id an entry will have once written: a new id for a create, the match of a conditional create/update/patch,
    /// the URL's id otherwise. Conditional matches run in the transaction, so they cannot change before commit.
    /// </summary>
    private static async Task<string?> IdentityAsync(WriteSession session, Services services, TransactionEntry entry, Resource? resource, string?[] assignedIds,
        StoredResource?[] matched, CancellationToken ct)
    {
        if (entry.Id is not null) return entry.Id;
        if (entry.Method == Bundle.HTTPVerb.POST)
        {
            if (entry.IfNoneExist is { } condition)
            {
                var matches = await Conditional.MatchAsync(session, services.Search, entry.Type, condition, ct);
                if (matches.Count > 1) throw Conditional.MultipleMatches("create", entry.Type, condition);
                if (matches.Count == 1)
                {
                    matched[entry.Index] = matches[0];
                    return matches[0].Id;
                }
            }
            return assignedIds[entry.Index] = FhirRequest.NewId();
        }
        var found = await Conditional.MatchAsync(session, services.Search, entry.Type, entry.Query!, ct);
        var verb = entry.Method == Bundle.HTTPVerb.PUT ? "update" : "patch";
        if (found.Count > 1) throw Conditional.MultipleMatches(verb, entry.Type, entry.Query!);
        if (found.Count == 1) return found[0].Id;
        if (entry.Method == Bundle.HTTPVerb.PATCH) return null; // reported as 404 by the patch itself
        // A conditional update without a match creates: with the body's id if it has one, else one we choose now.
        resource!.Id ??= FhirRequest.NewId();
        return resource.Id;
    }

    private static async Task<string> ResolveConditionalAsync(WriteSession session, SearchEngine search, string type, string query, string where, CancellationToken ct)
    {
        // A conditional reference is a search: whether it matches must not tell a caller what it may not search.
        session.Access?.CheckSearch(type, Conditional.Pairs(query));
        var matches = await Conditional.MatchAsync(session, search, type, query, ct);
        return matches.Count switch
        {
            1 => $"{type}/{matches[0].Id}",
            0 => throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotFound,
                $"The conditional reference {type}?{query} matches no resource.", where),
            _ => throw FhirException.Error(HttpStatusCode.PreconditionFailed, OperationOutcome.IssueType.MultipleMatches,
                $"The conditional reference {type}?{query} matches more than one resource.", where),
        };
    }

    private static async Task<FhirResult> ExecuteWriteAsync(WriteSession session, Services services, TransactionEntry entry, Resource? resource, string? assignedId, CancellationToken ct,
        StoredResource? matched = null)
    {
        switch (entry.Method)
        {
            case Bundle.HTTPVerb.POST:
                // A conditional create with an assigned id found no match when identities were assigned, in this same
                // database transaction: Create does not search a second time (its claim still catches a concurrent one).
                return await Create.ExecuteAsync(session, services.Search, entry.Type, resource!, entry.IfNoneExist, ct, assignedId,
                    searchedNoMatch: assignedId is not null && entry.IfNoneExist is not null, matched: entry.IfNoneExist is not null ? matched : null);
            case Bundle.HTTPVerb.PUT:
                return entry.Id is { } id
                    ? await Update.ExecuteAsync(session, entry.Type, id, resource!, entry.IfMatch, ct)
                    : await Update.ExecuteConditionalAsync(session, services.Search, entry.Type, entry.Query!, resource!, entry.IfMatch, ct);
            case Bundle.HTTPVerb.PATCH:
                var patch = PatchDocument.FromBundleResource(resource!, entry.Expression);
                return entry.Id is { } patchId
                    ? await Patch.ExecuteAsync(session, entry.Type, patchId, patch, entry.IfMatch, ct)
                    : await Patch.ExecuteConditionalAsync(session, services.Search, entry.Type, entry.Query!, patch, entry.IfMatch, ct);
            default:
                throw new InvalidOperationException($"{entry.Method} is not a write.");
        }
    }

    private static async Task<FhirResult> ExecuteDeleteAsync(WriteSession session, Services services, TransactionEntry entry, CancellationToken ct)
    {
        if (entry.Id is not { } id) return await Delete.ExecuteConditionalAsync(session, services.Search, entry.Type, entry.Query!, ct);
        if (entry.IfMatch is { } expected)
        {
            var current = await session.ReadForUpdateAsync(entry.Type, id, ct);
            // Before ifMatch tells anything; nothing there (unknown or deleted, seen or not) is the same 412.
            if (current is { Deleted: false }) await AccessPoint.RequireDeletableAsync(session, current, ct);
            if (current is null || current.Deleted || current.Version != expected)
            {
                throw FhirException.Error(HttpStatusCode.PreconditionFailed, OperationOutcome.IssueType.Conflict,
                    $"ifMatch W/\"{expected}\" does not match the current version of {entry.Type}/{id}.");
            }
        }
        return await Delete.ExecuteAsync(session, entry.Type, id, ct);
    }

    /// <summary>read, vread and search entries, on the given connection (inside a transaction: it sees the transaction's writes).</summary>
    private static async Task<FhirResult> ExecuteReadAsync(Services services, DbConnection connection, DbTransaction? tx, TransactionEntry entry, CancellationToken ct)
    {
        if (entry.Id is null)
            return FhirResult.Of(HttpStatusCode.OK, await SearchAsync(services, connection, tx, entry.Type, entry.Query ?? "", ct));
        FhirResult result;
        if (entry.Type == Audit.AuditStore.Type)
        {
            // Served by the audit store, as GET AuditEvent/{id} is; one version ever. Scopes decided the type already.
            var record = entry.Version is null or 1 ? await Audit.AuditStore.ReadAsync(connection, tx, entry.Id, ct) : null;
            if (record is null) throw FhirException.NotFound($"AuditEvent/{entry.Id} is not known.");
            return entry.IfNoneMatch is { Length: > 0 } tags && tags.Split(',').Any(tag => tag.Trim() == "*" || SameVersion(tag, 1))
                ? new FhirResult(HttpStatusCode.NotModified) { Stored = record }
                : FhirResult.Of(HttpStatusCode.OK, record);
        }
        if (entry.Version is { } version)
        {
            var stored = await services.Store.ReadVersionAsync(connection, tx, entry.Type, entry.Id, version, ct)
                ?? throw FhirException.NotFound($"{entry.Type}/{entry.Id} has no version {version}.");
            if (stored.Deleted)
                throw FhirException.Error(HttpStatusCode.Gone, OperationOutcome.IssueType.Deleted, $"Version {version} of {entry.Type}/{entry.Id} is its deletion.");
            result = FhirResult.Of(HttpStatusCode.OK, stored);
        }
        else
        {
            result = Read.Found(await services.Store.ReadAsync(connection, tx, entry.Type, entry.Id, forUpdate: false, ct), entry.Type, entry.Id);
        }
        if (services.AccessPoint is { } access)
        {
            // A vread is decided on the version itself (its own labels and patients), a read on the current resource.
            if (entry.Version is null) await access.RequireInstanceAsync(Interaction.Read, result.Stored!, ct);
            else await access.RequireVersionAsync(Interaction.VRead, result.Stored!, connection, tx, ct);
        }
        if (entry.IfNoneMatch is { Length: > 0 } ifNoneMatch && result.Stored is { } current
            && ifNoneMatch.Split(',').Any(tag => tag.Trim() == "*" || SameVersion(tag, current.Version)))
        {
            return new FhirResult(HttpStatusCode.NotModified) { Stored = current };
        }
        return result;
    }

    private static bool SameVersion(string tag, int version)
    {
        try
        {
            return FhirRequest.IfMatchVersion(tag.Trim()) == version;
        }
        catch (FhirException)
        {
            return false;
        }
    }

    /// <summary>
    /// A search entry. The one call site of search from batch/transaction: it uses the search engine of
    /// Rest/Search.cs as it is today (first page only, no paging links); re-point it here when search changes.
    /// </summary>
    /// <summary>A search entry: the same search service as GET [base]/[type], inside this entry's database transaction.</summary>
    internal static Task<Bundle> SearchAsync(Services services, DbConnection connection, DbTransaction? tx, string type, string query, CancellationToken ct)
    {
        var pairs = query.Length == 0 ? [] : Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery("?" + query)
            .SelectMany(p => p.Value.Select(v => new KeyValuePair<string, string>(p.Key, v ?? ""))).ToList();
        var request = new SearchRequest(services.BaseUrl, type, pairs) { Access = services.Access };
        return Search.ExecuteAsync(services.Provider, request, connection, tx, ct);
    }

    /// <summary>Runs one entry's step; its error names the entry (Bundle.entry[n]) and keeps its status.</summary>
    private static async Task<T> Guard<T>(TransactionEntry entry, Func<Task<T>> step)
    {
        try
        {
            return await step();
        }
        catch (FhirException e)
        {
            throw ForEntry(entry, e);
        }
    }

    private static FhirException ForEntry(TransactionEntry entry, FhirException e)
    {
        var outcome = new OperationOutcome();
        foreach (var issue in e.Outcome.Issue)
        {
            var copy = (OperationOutcome.IssueComponent)issue.DeepCopy();
            var expressions = issue.Expression.Where(x => x is not null && x.StartsWith("Bundle.entry[", StringComparison.Ordinal)).ToList();
            if (expressions.Count == 0) expressions.Add(entry.Expression);
            copy.Expression = expressions;
            copy.Diagnostics = $"Entry {entry.Index} ({entry.Method} {entry.Type}): {issue.Diagnostics}";
            outcome.Issue.Add(copy);
        }
        return new FhirException(e.Status, outcome);
    }

    private static void RequireDistinctFullUrls(List<TransactionEntry> entries)
    {
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            if (entry.FullUrl is not { } fullUrl) continue;
            if (!seen.TryAdd(fullUrl, entry.Index))
            {
                throw FhirException.BadRequest(
                    $"Entries {seen[fullUrl]} and {entry.Index} have the same fullUrl; each entry needs its own.", $"{entry.Expression}.fullUrl");
            }
        }
    }

    private static Bundle NewResponseBundle(Bundle.BundleType type) =>
        new() { Type = type, Id = FhirRequest.NewId(), Meta = new Meta { LastUpdated = DateTimeOffset.UtcNow } };

    private static Bundle.EntryComponent ResponseEntry(TransactionEntry entry, FhirResult result, Services services)
    {
        var response = new Bundle.ResponseComponent { Status = TransactionEntry.StatusLine(result.Status) };
        var answer = new Bundle.EntryComponent { Response = response };
        var isRead = entry.Method is Bundle.HTTPVerb.GET or Bundle.HTTPVerb.HEAD;
        if (result.Stored is { } stored)
        {
            response.Etag = stored.ETag;
            response.LastModified = stored.LastUpdated;
            if (!stored.Deleted)
            {
                answer.FullUrl = $"{services.BaseUrl}/{stored.Type}/{stored.Id}";
                if (!isRead) response.Location = $"{services.BaseUrl}/{stored.Type}/{stored.Id}/_history/{stored.Version}";
            }
        }
        if (result.Status is HttpStatusCode.NoContent or HttpStatusCode.NotModified || entry.Method == Bundle.HTTPVerb.HEAD) return answer;
        var prefer = isRead ? PreferReturn.Representation : services.Prefer;
        switch (prefer)
        {
            case PreferReturn.Representation:
                answer.Resource = result.Resource ?? (result.Stored?.Json is { } json ? FhirResponse.ParseStored(json) : null);
                break;
            case PreferReturn.OperationOutcome:
                response.Outcome = result.Outcome ?? Outcomes.Information($"{entry.Method} {entry.Type} succeeded.");
                break;
        }
        // What the normalisation changed is reported whatever Prefer says (Mapping/NormalisationOutcome.cs).
        if (response.Outcome is null && result.Stored?.Normalised is not null) response.Outcome = result.Outcome;
        return answer;
    }
}
