using System.Collections.Frozen;
using System.Text.RegularExpressions;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Security;

/// <summary>Whose data a SMART scope covers: the launch patient's, the signed-in user's, or the client's own (backend).</summary>
public enum ScopeContext
{
    Patient,
    User,
    System,
}

/// <summary>The SMART v2 permission letters, in their order c r u d s.</summary>
[Flags]
public enum ScopePermissions
{
    None = 0,
    Create = 1,
    Read = 2,
    Update = 4,
    Delete = 8,
    Search = 16,
}

/// <summary>
/// One SMART resource scope: <c>(patient|user|system)/(Type|*).[c][r][u][d][s]</c>, optionally narrowed by a query
/// (<c>patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory</c>),
/// or a v1 scope (<c>.read</c> = rs, <c>.write</c> = cud, <c>.*</c> = cruds).
/// </summary>
/// <param name="ResourceType">Null for the wildcard <c>*</c>.</param>
/// <param name="Restriction">The granular restriction's parameters (all must hold); empty when none.</param>
public sealed partial record SmartScope(
    ScopeContext Context,
    string? ResourceType,
    ScopePermissions Permissions,
    IReadOnlyList<KeyValuePair<string, string>> Restriction,
    string Text)
{
    // Case-sensitive: ModelInfo.IsKnownResource also accepts "observation", which is not a type a scope may name.
    private static readonly FrozenSet<string> Types =
        ModelInfo.SupportedResources.Where(t => t is not ("Resource" or "DomainResource")).ToFrozenSet(StringComparer.Ordinal);

    [GeneratedRegex("^c?r?u?d?s?$")]
    private static partial Regex V2Letters();

    public bool IsRestricted => Restriction.Count > 0;

    public bool Covers(string type) => ResourceType is null || ResourceType == type;

    public bool Grants(ScopePermissions permission) => (Permissions & permission) != 0;

    /// <summary>
    /// True when every access <paramref name="narrower"/> grants is granted by this scope too, so that a client
    /// registered for this one may be given that one (SMART least privilege): the same context, the same type (or this
    /// scope's <c>*</c>), no letter this scope lacks, and each of this scope's restrictions repeated, possibly with
    /// fewer values; <paramref name="narrower"/> may add restrictions of its own. v1 and v2 compare by their letters.
    /// </summary>
    public bool Includes(SmartScope narrower) =>
        Context == narrower.Context
        && (ResourceType is null || ResourceType == narrower.ResourceType)
        && (narrower.Permissions & ~Permissions) == ScopePermissions.None
        && Restriction.All(mine => narrower.Restriction.Any(theirs => theirs.Key == mine.Key && IsSubset(theirs.Value, mine.Value)));

    /// <summary>A search value's alternatives (a,b means a or b) all among the other's; an escaped comma compares whole.</summary>
    private static bool IsSubset(string value, string of)
    {
        if (value == of) return true;
        if (value.Contains('\\') || of.Contains('\\')) return false;
        var allowed = of.Split(',');
        return value.Split(',').All(v => allowed.Contains(v, StringComparer.Ordinal));
    }

    /// <summary>
    /// The scope <paramref name="text"/> names, or null when it is not a resource scope (openid, fhirUser, launch,
    /// launch/patient, offline_access) or is malformed: such strings grant no access at all.
    /// </summary>
    public static SmartScope? TryParse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Any(char.IsWhiteSpace)) return null;
        var question = text.IndexOf('?');
        var head = question < 0 ? text : text[..question];
        var slash = head.IndexOf('/');
        if (slash <= 0) return null;
        ScopeContext? context = head[..slash] switch
        {
            "patient" => ScopeContext.Patient,
            "user" => ScopeContext.User,
            "system" => ScopeContext.System,
            _ => null,
        };
        if (context is null) return null;
        var rest = head[(slash + 1)..];
        var dot = rest.IndexOf('.');
        if (dot <= 0) return null;
        var type = rest[..dot];
        var letters = rest[(dot + 1)..];
        if (type != "*" && !Types.Contains(type)) return null;

        var v1 = letters switch
        {
            "read" => ScopePermissions.Read | ScopePermissions.Search,
            "write" => ScopePermissions.Create | ScopePermissions.Update | ScopePermissions.Delete,
            "*" => ScopePermissions.Create | ScopePermissions.Read | ScopePermissions.Update | ScopePermissions.Delete | ScopePermissions.Search,
            _ => ScopePermissions.None,
        };
        ScopePermissions permissions;
        if (v1 != ScopePermissions.None)
        {
            // Granular restrictions are a v2 feature: a v1 scope carrying one is not something we can read safely.
            if (question >= 0) return null;
            permissions = v1;
        }
        else
        {
            if (letters.Length == 0 || !V2Letters().IsMatch(letters)) return null;
            permissions = ScopePermissions.None;
            foreach (var letter in letters)
            {
                permissions |= letter switch
                {
                    'c' => ScopePermissions.Create,
                    'r' => ScopePermissions.Read,
                    'u' => ScopePermissions.Update,
                    'd' => ScopePermissions.Delete,
                    _ => ScopePermissions.Search,
                };
            }
        }

        IReadOnlyList<KeyValuePair<string, string>> restriction = [];
        if (question >= 0)
        {
            // A restriction is expressed in the type's own search parameters: on "*" it has no meaning we could check.
            if (type == "*") return null;
            restriction = ParseRestriction(text[(question + 1)..]);
            if (restriction.Count == 0) return null;
        }
        return new SmartScope(context.Value, type == "*" ? null : type, permissions, restriction, text);
    }

    private static List<KeyValuePair<string, string>> ParseRestriction(string query)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var part in query.Split('&'))
        {
            var equals = part.IndexOf('=');
            if (equals <= 0 || equals == part.Length - 1) return [];
            string key, value;
            try
            {
                key = Uri.UnescapeDataString(part[..equals]);
                value = Uri.UnescapeDataString(part[(equals + 1)..]);
            }
            catch (UriFormatException)
            {
                return [];
            }
            // Result parameters (_include, _count...) and modifiers/chains are not restrictions on the resource itself.
            if (key.StartsWith('_') || key.Contains(':') || key.Contains('.')) return [];
            pairs.Add(new(key, value));
        }
        return pairs;
    }

    /// <summary>The letters of <paramref name="permission"/> as a v2 scope writes them (for messages).</summary>
    public static string Letters(ScopePermissions permission)
    {
        var letters = "";
        if (permission.HasFlag(ScopePermissions.Create)) letters += "c";
        if (permission.HasFlag(ScopePermissions.Read)) letters += "r";
        if (permission.HasFlag(ScopePermissions.Update)) letters += "u";
        if (permission.HasFlag(ScopePermissions.Delete)) letters += "d";
        if (permission.HasFlag(ScopePermissions.Search)) letters += "s";
        return letters;
    }
}

/// <summary>The resource scopes of a caller that can grant anything: patient/ scopes only count inside a launch with a patient.</summary>
public sealed class ScopeSet
{
    public ScopeSet(IEnumerable<string> scopes, string? launchPatient)
    {
        LaunchPatient = string.IsNullOrEmpty(launchPatient) ? null : launchPatient;
        Usable = scopes.Select(SmartScope.TryParse)
            .Where(s => s is not null && (s.Context != ScopeContext.Patient || LaunchPatient is not null))
            .Select(s => s!)
            .ToList();
    }

    public string? LaunchPatient { get; }

    public IReadOnlyList<SmartScope> Usable { get; }

    /// <summary>Usable scopes that grant <paramref name="permission"/> on <paramref name="type"/> (null: on some type).</summary>
    public IEnumerable<SmartScope> Granting(ScopePermissions permission, string? type) =>
        Usable.Where(s => s.Grants(permission) && (type is null || s.Covers(type)));

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Caller, ScopeSet> Parsed = new();

    /// <summary>The caller's scopes, parsed once per request (a Caller lives as long as its request).</summary>
    public static ScopeSet Of(Caller caller) => Parsed.GetValue(caller, c => new ScopeSet(c.Scopes, c.PatientId));
}
