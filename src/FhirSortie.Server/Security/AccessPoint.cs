using System.Data.Common;
using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Security;

/// <summary>
/// The one access point of a request: every interaction asks it once per type decision (<see cref="Require(AccessRequest)"/>)
/// and once per resource decision (<see cref="RequireInstance(Interaction, StoredResource)"/>, and through
/// <see cref="IWriteAccess"/> for every version a write session saves or deletes); searches get its
/// <see cref="Filter"/> through the <see cref="AccessFilterResolver"/>. It asks every <see cref="IAccessRule"/> in DI
/// (scopes now, consent later) and the first deny answers 403. No caller: 401.
/// </summary>
public sealed class AccessPoint : IWriteAccess
{
    private readonly Caller? _caller;
    private readonly IReadOnlyList<IAccessRule> _rules;
    private readonly ResourceIndexer _indexer;

    private AccessPoint(Caller? caller, IReadOnlyList<IAccessRule> rules, ResourceIndexer indexer)
    {
        _caller = caller;
        _rules = rules;
        _indexer = indexer;
    }

    /// <summary>The access point of this request, made once and kept on the HttpContext.</summary>
    public static AccessPoint Of(HttpContext context)
    {
        if (context.Items.TryGetValue(typeof(AccessPoint), out var cached) && cached is AccessPoint point) return point;
        var services = context.RequestServices;
        var caller = Caller.Of(context);
        if (caller is null)
        {
            throw new FhirException(HttpStatusCode.Unauthorized, Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Login,
                "This request needs a valid access token (Authorization: Bearer ...)."));
        }
        point = For(caller, services);
        context.Items[typeof(AccessPoint)] = point;
        return point;
    }

    /// <summary>The access point of <paramref name="caller"/> outside a request (a notification decided for its subscriber).</summary>
    public static AccessPoint For(Caller caller, IServiceProvider services) =>
        new(caller, services.GetServices<IAccessRule>().ToList(), services.GetRequiredService<ResourceIndexer>());

    /// <summary>The resolver registered in DI: the filter for the route's type (null for system routes and transactions).</summary>
    public static AccessFilter FilterOf(HttpContext context)
    {
        var type = context.Request.RouteValues.TryGetValue("type", out var raw) && raw is string t && t != "*" && ModelInfo.IsKnownResource(t) ? t : null;
        return Of(context).Filter(type);
    }

    public void Require(Interaction interaction, string? type) => Require(new AccessRequest(interaction, type));

    /// <summary>403 unless every rule permits the request; before any work is done.</summary>
    public void Require(AccessRequest request)
    {
        var decision = Decide(request);
        if (!decision.Permitted) throw Forbidden(decision);
    }

    /// <summary>Whether every rule permits the request (the first deny otherwise), without throwing.</summary>
    public AccessDecision Decide(AccessRequest request)
    {
        if (_caller is null) return AccessDecision.Permit;
        foreach (var rule in _rules)
        {
            var decision = rule.Decide(_caller, request);
            if (!decision.Permitted) return decision;
        }
        return AccessDecision.Permit;
    }

    /// <summary>403 unless every rule permits <paramref name="interaction"/> on this stored version (nothing to check on a deletion).</summary>
    public void RequireInstance(Interaction interaction, StoredResource stored)
    {
        if (stored.Json is not { } json)
        {
            // A deletion has no content to decide on: only a caller unrestricted on the type may go on.
            RequireInstance(interaction, new ResourceFacts(stored.Type, stored.Id, () => null, _indexer));
            return;
        }
        RequireInstance(interaction, new ResourceFacts(stored.Type, stored.Id, () => FhirResponse.ParseStored(json), _indexer));
    }

    /// <summary>
    /// <see cref="RequireInstance(Interaction, StoredResource)"/>, then the rules that decide on the database (consent):
    /// for every disclosure of a stored resource. A hidden resource answers 404, another deny 403.
    /// </summary>
    public async Task RequireInstanceAsync(Interaction interaction, StoredResource stored, CancellationToken ct)
    {
        RequireInstance(interaction, stored);
        if (_caller is null) return;
        foreach (var rule in _rules)
        {
            var decision = await rule.DecideStoredAsync(_caller, interaction, stored, ct);
            if (!decision.Permitted) throw decision.Hidden ? FhirException.NotFound($"{stored.Type}/{stored.Id} is not known.") : Forbidden(decision);
        }
    }

    /// <summary>
    /// Whether the caller may see this one version, decided on its own content (labels and patients as that version
    /// carried them) by every rule, on the given connection. Never throws for a deny: history filters with it.
    /// A version without content (a deletion) is decided by the caller on the version before it. <paramref name="quiet"/>:
    /// a history filtering its entries; the scopes are not asked again and hidden versions are not noted as denials.
    /// </summary>
    public async Task<AccessDecision> DecideVersionAsync(Interaction interaction, StoredResource version, DbConnection connection, DbTransaction? transaction,
        bool quiet, CancellationToken ct)
    {
        if (_caller is null) return AccessDecision.Permit;
        var facts = new ResourceFacts(version.Type, version.Id, () => version.Json is { } json ? FhirResponse.ParseStored(json) : null, _indexer);
        // A history filtering its entries (quiet) had the scopes decided on the request and the current resource.
        for (var i = 0; !quiet && i < _rules.Count; i++)
        {
            var decision = _rules[i].DecideInstance(_caller, interaction, facts);
            if (!decision.Permitted) return decision;
        }
        foreach (var rule in _rules)
        {
            var decision = await rule.DecideVersionAsync(_caller, interaction, facts, connection, transaction, quiet, ct);
            if (!decision.Permitted) return decision;
        }
        return AccessDecision.Permit;
    }

    /// <summary><see cref="DecideVersionAsync"/> for a disclosure of that version (vread): a hidden version is 404, another deny 403.</summary>
    public async Task RequireVersionAsync(Interaction interaction, StoredResource version, DbConnection connection, DbTransaction? transaction, CancellationToken ct)
    {
        var decision = await DecideVersionAsync(interaction, version, connection, transaction, quiet: false, ct);
        if (!decision.Permitted)
            throw decision.Hidden ? FhirException.NotFound($"{version.Type}/{version.Id} is not known.") : Forbidden(decision);
    }

    /// <summary>
    /// Before a write changes an existing resource (update, patch, their conditional forms and bundle entries):
    /// the write is decided like a disclosure of the stored current version, so a caller that may not see it gets the
    /// read's 404 before anything (If-Match, patch errors, the representation) can tell it about the resource.
    /// A deleted resource is decided on the version it deleted (like read and vread), so that a patch's 410 tells
    /// nothing to a caller who could not see it. Nothing to decide when the resource does not exist, nor for a PUT on a
    /// deleted resource (it creates it again, which scopes decide). Deletes: <see cref="RequireDeletableAsync"/>.
    /// </summary>
    public static async Task RequireWritableAsync(WriteSession session, Interaction interaction, StoredResource? current, CancellationToken ct)
    {
        // A PUT on a deleted resource creates it again: scopes decide that, as for any create.
        if (session.Access is not AccessPoint point || current is null || (current.Deleted && interaction == Interaction.Update)) return;
        var decided = current is { Deleted: true, Version: > 1 }
            ? await session.Store.ReadVersionAsync(session.Connection, session.Transaction, current.Type, current.Id, current.Version - 1, ct)
            : current;
        if (decided is { Deleted: false }) await point.RequireVersionAsync(interaction, decided, session.Connection, session.Transaction, ct);
    }

    /// <summary>
    /// Before a delete of an existing resource (not deleted: there is nothing to decide on a delete of nothing, Rest/Delete.cs):
    /// decided like a disclosure of its current version, then by the scopes on its content. A caller that may not see it
    /// gets <see cref="Delete.Refused"/> (403, no reason, no content: the reason goes to the audit record through the
    /// rules' notes); any other deny is the 403 with its reason, as on a read.
    /// </summary>
    public static async Task RequireDeletableAsync(WriteSession session, StoredResource current, CancellationToken ct)
    {
        if (session.Access is not AccessPoint point || current.Deleted) return;
        var decision = await point.DecideVersionAsync(Interaction.Delete, current, session.Connection, session.Transaction, quiet: false, ct);
        if (!decision.Permitted) throw decision.Hidden ? Delete.Refused(current.Type, current.Id) : Forbidden(decision);
    }

    /// <summary>
    /// The matches of a conditional interaction the caller may see, among <paramref name="matches"/> (found without any
    /// access filter so that uniqueness holds over every resource): searched again with the caller's filter.
    /// </summary>
    public static async Task<bool> SeesAllAsync(WriteSession session, SearchEngine search, string type,
        IReadOnlyList<KeyValuePair<string, string>> query, IReadOnlyList<StoredResource> matches, CancellationToken ct)
    {
        if (matches.Count == 0 || session.Access is not AccessPoint point) return true;
        // Only the consent part: what scopes forbid on a match is already a 403 on the resource itself (CheckRead/CheckSave).
        if (point.Filter(type).Consent is not { } consent) return true;
        var filter = new AccessFilter { Consent = consent };
        var visible = await search.FindAsync(session.Connection, session.Transaction, type, query, filter, limit: matches.Count, ct);
        return matches.All(m => visible.Any(v => v.Key == m.Key));
    }

    public void RequireInstance(Interaction interaction, Resource resource) =>
        RequireInstance(interaction, new ResourceFacts(resource.TypeName, resource.Id ?? "", () => resource, _indexer));

    private void RequireInstance(Interaction interaction, ResourceFacts facts)
    {
        if (_caller is null) return;
        foreach (var rule in _rules)
        {
            var decision = rule.DecideInstance(_caller, interaction, facts);
            if (!decision.Permitted) throw Forbidden(decision);
        }
    }

    /// <summary>What the caller may see in a search on <paramref name="type"/>: every rule's filter, intersected.</summary>
    public AccessFilter Filter(string? type)
    {
        if (_caller is null) return AccessFilter.None;
        var filter = AccessFilter.None;
        foreach (var rule in _rules) filter = Intersect(filter, rule.Filter(_caller, type));
        return filter;
    }

    /// <summary>Wraps a unit of work so that every version its session saves or deletes is checked first.</summary>
    public Func<WriteSession, Task<T>> Guard<T>(Func<WriteSession, Task<T>> work) => session =>
    {
        session.Access = this;
        return work(session);
    };

    void IWriteAccess.CheckSave(Resource next, StoredResource? current, string method)
    {
        if (current is null || current.Deleted)
        {
            RequireInstance(Interaction.Create, next);
            return;
        }
        // Both sides: a caller may neither change a resource it may not touch nor move one out of what it may touch.
        var interaction = method == "PATCH" ? Interaction.Patch : Interaction.Update;
        RequireInstance(interaction, current);
        RequireInstance(interaction, next);
    }

    void IWriteAccess.CheckDelete(StoredResource current) => RequireInstance(Interaction.Delete, current);

    void IWriteAccess.CheckRead(StoredResource found) => RequireInstance(Interaction.Read, found);

    void IWriteAccess.CheckSearch(string type, IReadOnlyList<KeyValuePair<string, string>> query) =>
        Require(new AccessRequest(Interaction.SearchType, type) { Query = query });

    private static FhirException Forbidden(AccessDecision decision) =>
        new(HttpStatusCode.Forbidden, Outcomes.Single(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Forbidden,
            decision.Reason ?? "Access denied."));

    private static AccessFilter Intersect(AccessFilter a, AccessFilter b)
    {
        if (a.IsUnrestricted) return b;
        if (b.IsUnrestricted) return a;
        return new AccessFilter(
            Both(a.ResourceTypes, b.ResourceTypes),
            Both(a.PatientIds, b.PatientIds),
            [.. a.DeniedLabels ?? [], .. b.DeniedLabels ?? []])
        {
            // Only the consent rule gives one.
            Consent = a.Consent ?? b.Consent,
        };
    }

    private static IReadOnlySet<string>? Both(IReadOnlySet<string>? a, IReadOnlySet<string>? b) =>
        a is null ? b : b is null ? a : a.Where(b.Contains).ToHashSet();
}
