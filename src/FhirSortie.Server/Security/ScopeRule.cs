using FhirSortie.Server.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Security;

/// <summary>
/// SMART on FHIR scopes as an access rule. Letters by interaction: c = create (also update-as-create and conditional
/// create), r = read, vread and instance history, u = update and patch, d = delete, s = search (type, system and
/// compartment), type and system history. Conditional writes also need s: they run a search, and a conditional
/// create answers with the match it finds. $validate needs c or u on the type.
/// <para>
/// patient/ scopes only count inside a launch with a patient, and only for that patient's compartment: reading or
/// writing a resource outside it is 403 (not 404: ids are opaque UUIDs, and a client that knows one learns nothing
/// from "forbidden" it could not learn from "not found"), searches are filtered to it. user/ scopes are the signed-in
/// user's access (consent narrows it later). system/ scopes are the backend client's own access.
/// </para>
/// <para>
/// Granular restrictions (patient/Observation.rs?category=...): a read or write is permitted when the resource
/// matches the restriction, evaluated on its search index rows (token, string, reference and uri parameters; other
/// types never match, so an unsupported restriction grants nothing). A search is permitted by a restricted scope only
/// when the request itself carries the restriction (the same parameter with a subset of its values): the search then
/// cannot return anything the restriction excludes, and no second query language is needed in the filter. Includes,
/// system searches and histories only show types granted without restriction.
/// </para>
/// <para>
/// _include/_revinclude: included resources need s on their type, like matches (they are disclosed by a search, and
/// the one <see cref="AccessFilter"/> applies to both); a non-permitted included type is omitted, never a 403.
/// Chained parameters and _has need s (unrestricted) on every type the chain can go through.
/// </para>
/// </summary>
public sealed class ScopeRule(SearchParameters parameters) : IAccessRule
{
    public AccessDecision Decide(Caller caller, AccessRequest request)
    {
        var scopes = ScopeSet.Of(caller);
        var type = request.Type;
        var decision = request.Interaction switch
        {
            Interaction.Read or Interaction.VRead or Interaction.HistoryInstance => Need(scopes, ScopePermissions.Read, type!, restrictedOk: true),
            Interaction.Create => Need(scopes, ScopePermissions.Create, type!, restrictedOk: true),
            // Whether a PUT creates or updates is only known once the current version is read: either letter lets it try.
            Interaction.Update or Interaction.Validate => Need(scopes, ScopePermissions.Create | ScopePermissions.Update, type!, restrictedOk: true),
            Interaction.Patch => Need(scopes, ScopePermissions.Update, type!, restrictedOk: true),
            Interaction.Delete => Need(scopes, ScopePermissions.Delete, type!, restrictedOk: true),
            Interaction.SearchType => SearchType(scopes, type!, request.Query),
            Interaction.SearchCompartment => SearchCompartment(scopes, type, request),
            Interaction.SearchSystem => SearchSystem(scopes, request.Query),
            Interaction.HistoryType => Need(scopes, ScopePermissions.Search, type!, restrictedOk: false),
            Interaction.HistorySystem => scopes.Granting(ScopePermissions.Search, null).Any(s => !s.IsRestricted)
                ? AccessDecision.Permit
                : AccessDecision.Deny("Missing scope: system history needs a scope with 's' on at least one resource type (e.g. system/Patient.s)."),
            _ => AccessDecision.Deny($"The interaction {request.Interaction} is not covered by any scope."),
        };
        if (decision.Permitted && request.Conditional && type is not null) decision = SearchType(scopes, type, request.Query, "a conditional interaction runs a search: ");
        return decision;
    }

    public AccessDecision DecideInstance(Caller caller, Interaction interaction, ResourceFacts resource)
    {
        var scopes = ScopeSet.Of(caller);
        var permission = interaction switch
        {
            Interaction.Read or Interaction.VRead or Interaction.HistoryInstance or Interaction.SearchType => ScopePermissions.Read,
            Interaction.Create => ScopePermissions.Create,
            Interaction.Update or Interaction.Patch => ScopePermissions.Update,
            Interaction.Delete => ScopePermissions.Delete,
            _ => ScopePermissions.None,
        };
        var candidates = scopes.Granting(permission, resource.Type).ToList();
        if (candidates.Count == 0) return Missing(permission, resource.Type);
        // Most callers are backends with unrestricted system/ scopes: decided without parsing the resource.
        if (candidates.Any(s => s.Context != ScopeContext.Patient && !s.IsRestricted)) return AccessDecision.Permit;
        string? reason = null;
        foreach (var scope in candidates)
        {
            if (scope.Context == ScopeContext.Patient && !resource.InPatientCompartment(scopes.LaunchPatient!))
            {
                reason ??= $"The scope {scope.Text} covers the launch patient's compartment only, and this {resource.Type} is outside it.";
                continue;
            }
            if (scope.IsRestricted && !Matches(resource, scope.Restriction))
            {
                reason ??= $"The scope {scope.Text} is restricted, and this {resource.Type} does not match its restriction.";
                continue;
            }
            return AccessDecision.Permit;
        }
        return AccessDecision.Deny(reason ?? $"No scope grants '{SmartScope.Letters(permission)}' on this {resource.Type}.");
    }

    public AccessFilter Filter(Caller caller, string? type)
    {
        var scopes = ScopeSet.Of(caller);
        var searching = scopes.Granting(ScopePermissions.Search, null).ToList();
        var unrestricted = searching.Where(s => !s.IsRestricted).ToList();
        HashSet<string>? types;
        if (unrestricted.Any(s => s.ResourceType is null)) types = null;
        else
        {
            types = [.. unrestricted.Select(s => s.ResourceType!)];
            // The searched type itself may be granted by a restricted scope only: Decide has checked that the request
            // carries the restriction, so its matches can be shown.
            if (type is not null && searching.Any(s => s.Covers(type))) types.Add(type);
        }
        // patient/ scopes confine to the launch patient unless a user/ or system/ scope grants the same search. With
        // several types at once (system search, includes) a mix is resolved the safe way: confined.
        var relevant = type is null ? searching : searching.Where(s => s.Covers(type)).ToList();
        HashSet<string>? patients = relevant.Any(s => s.Context == ScopeContext.Patient)
            && (type is null || !relevant.Any(s => s.Context != ScopeContext.Patient))
            ? [scopes.LaunchPatient!]
            : null;
        return new AccessFilter(types, patients);
    }

    private static AccessDecision Need(ScopeSet scopes, ScopePermissions anyOf, string type, bool restrictedOk) =>
        scopes.Usable.Any(s => s.Covers(type) && (s.Permissions & anyOf) != 0 && (restrictedOk || !s.IsRestricted))
            ? AccessDecision.Permit
            : Missing(anyOf, type);

    private static AccessDecision Missing(ScopePermissions permission, string type, string prefix = "") =>
        AccessDecision.Deny($"{Capitalised(prefix)}Missing scope: {type} needs '{SmartScope.Letters(permission)}'"
            + $"{(permission.HasFlag(ScopePermissions.Create) && permission.HasFlag(ScopePermissions.Update) ? " (one of these letters)" : "")}"
            + $", e.g. system/{type}.{SmartScope.Letters(permission)[..1]} or user/{type}.{SmartScope.Letters(permission)[..1]}.");

    private static string Capitalised(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    private AccessDecision SearchType(ScopeSet scopes, string type, IReadOnlyList<KeyValuePair<string, string>> query, string prefix = "")
    {
        var granting = scopes.Granting(ScopePermissions.Search, type).ToList();
        if (granting.Count == 0) return Missing(ScopePermissions.Search, type, prefix);
        if (!granting.Any(s => !s.IsRestricted || Carries(query, s.Restriction)))
        {
            return AccessDecision.Deny($"{Capitalised(prefix)}Your scopes for searching {type} are restricted ("
                + string.Join(", ", granting.Select(s => s.Text)) + "): repeat the restriction's parameters in the search.");
        }
        return ChainedTypes(scopes, type, query);
    }

    private AccessDecision SearchCompartment(ScopeSet scopes, string? type, AccessRequest request)
    {
        var decision = type is null
            ? scopes.Granting(ScopePermissions.Search, null).Any() ? AccessDecision.Permit : Missing(ScopePermissions.Search, "*")
            : SearchType(scopes, type, request.Query);
        if (!decision.Permitted) return decision;
        var granting = scopes.Granting(ScopePermissions.Search, type).ToList();
        if (request.Compartment != scopes.LaunchPatient && granting.All(s => s.Context == ScopeContext.Patient))
            return AccessDecision.Deny("Your patient/ scopes cover the launch patient's compartment only, not this patient's.");
        return decision;
    }

    private AccessDecision SearchSystem(ScopeSet scopes, IReadOnlyList<KeyValuePair<string, string>> query)
    {
        // A page of an existing result set was checked when the set was made (and sets belong to their client).
        if (query.Any(p => p.Key == "_getpages"))
            return scopes.Granting(ScopePermissions.Search, null).Any() ? AccessDecision.Permit : Missing(ScopePermissions.Search, "*");
        var listed = query.Where(p => p.Key == "_type")
            .SelectMany(p => p.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Where(ModelInfo.IsKnownResource)
            .Distinct()
            .ToList();
        foreach (var t in listed)
        {
            if (!scopes.Granting(ScopePermissions.Search, t).Any(s => !s.IsRestricted)) return Missing(ScopePermissions.Search, t);
        }
        if (!scopes.Granting(ScopePermissions.Search, null).Any(s => !s.IsRestricted))
            return AccessDecision.Deny("Missing scope: a system search needs a scope with 's' on at least one resource type (e.g. system/Patient.s).");
        return ChainedTypes(scopes, null, query);
    }

    /// <summary>Every type a chained parameter or _has goes through needs an unrestricted 's'.</summary>
    private AccessDecision ChainedTypes(ScopeSet scopes, string? type, IReadOnlyList<KeyValuePair<string, string>> query)
    {
        foreach (var (key, _) in query)
        {
            foreach (var through in Referenced(type, key, depth: 0).Distinct())
            {
                if (!scopes.Granting(ScopePermissions.Search, through).Any(s => !s.IsRestricted))
                {
                    return AccessDecision.Deny($"Missing scope: the parameter '{key}' searches {through}, which needs 's' "
                        + $"(e.g. system/{through}.s); name the target type (param:Type.x) to narrow a chain.");
                }
            }
        }
        return AccessDecision.Permit;
    }

    /// <summary>The resource types a chained ("subject:Patient.name") or reverse-chained ("_has:Observation:patient:code") parameter searches.</summary>
    private IEnumerable<string> Referenced(string? type, string key, int depth)
    {
        if (depth > 8) yield break;
        if (key.StartsWith("_has:", StringComparison.Ordinal))
        {
            var parts = key.Split(':', 4);
            if (parts.Length < 4 || !ModelInfo.IsKnownResource(parts[1])) yield break;
            yield return parts[1];
            foreach (var t in Referenced(parts[1], parts[3], depth + 1)) yield return t;
            yield break;
        }
        var dot = key.IndexOf('.');
        if (dot <= 0) yield break;
        var head = key[..dot];
        var rest = key[(dot + 1)..];
        var colon = head.IndexOf(':');
        var code = colon < 0 ? head : head[..colon];
        var modifier = colon < 0 ? null : head[(colon + 1)..];
        var definition = type is null ? parameters.FindCommon(code) : parameters.Find(type, code);
        IEnumerable<string> targets = modifier is not null
            ? ModelInfo.IsKnownResource(modifier) ? [modifier] : []
            : definition is null ? [] : parameters.Targets(definition);
        var restCode = rest.Split('.', ':')[0];
        foreach (var target in targets)
        {
            // As the search engine does: only targets that have the next parameter take part in the chain.
            if (modifier is null && restCode != "_id" && restCode != "_lastUpdated" && !restCode.StartsWith("_has", StringComparison.Ordinal)
                && parameters.Find(target, restCode) is null) continue;
            yield return target;
            foreach (var t in Referenced(target, rest, depth + 1)) yield return t;
        }
    }

    /// <summary>The request repeats every parameter of the restriction with values among the restriction's.</summary>
    private static bool Carries(IReadOnlyList<KeyValuePair<string, string>> query, IReadOnlyList<KeyValuePair<string, string>> restriction) =>
        restriction.All(r =>
        {
            var allowed = SearchValues.Split(r.Value, ',');
            return query.Any(q => q.Key == r.Key && SearchValues.Split(q.Value, ',').All(allowed.Contains));
        });

    /// <summary>The resource matches every parameter of the restriction (one of its comma-separated values each).</summary>
    private bool Matches(ResourceFacts resource, IReadOnlyList<KeyValuePair<string, string>> restriction)
    {
        if (resource.Index is not { } index) return false;
        foreach (var (code, value) in restriction)
        {
            var definition = parameters.Find(resource.Type, code);
            if (definition is null) return false;
            var values = SearchValues.Split(value, ',');
            var matched = definition.Type switch
            {
                SearchParamType.Token => values.Any(v =>
                {
                    var (system, tokenCode) = SearchValues.Token(v);
                    return index.Tokens.Any(t => t.Param == code
                        && (system is null || (system.Length == 0 ? t.System is null : t.System == system))
                        && (string.IsNullOrEmpty(tokenCode) || t.Code == tokenCode));
                }),
                SearchParamType.String => values.Any(v =>
                {
                    var normalized = ResourceIndexer.Normalize(SearchValues.Unescape(v));
                    return index.Strings.Any(s => s.Param == code && s.Value.StartsWith(normalized, StringComparison.Ordinal));
                }),
                SearchParamType.Reference => values.Any(v =>
                {
                    var (targetType, targetId) = ResourceIndexer.ReferenceParts(SearchValues.Unescape(v));
                    return index.References.Any(r => r.Param == code && r.TargetId == (targetId ?? v) && (targetType is null || r.TargetType == targetType));
                }),
                SearchParamType.Uri => values.Any(v => index.Uris.Any(u => u.Param == code && u.Value == SearchValues.Unescape(v))),
                _ => false,
            };
            if (!matched) return false;
        }
        return true;
    }
}
