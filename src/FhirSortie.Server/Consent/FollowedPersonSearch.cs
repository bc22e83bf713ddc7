using FhirSortie.Server.Security;

namespace FhirSortie.Server.Consents;

/// <summary>
/// Issue 5 rule 1, "no search across patients for them beyond identifying the person they follow", as a type-level
/// decision on the request's parameters (403 before any work, audited like every refusal). For justice and social actors:
/// <list type="bullet">
/// <item><c>Patient?</c> only by an exact identifier (<c>identifier=system|value</c>, both parts, one value: an INS or a
/// justice identifier) and/or one <c>_id</c>; any other parameter (name, birthdate, none at all) is refused.</item>
/// <item>Appointment and DocumentReference: one patient only, by <c>patient=</c> or <c>subject=</c> (one value), one <c>_id</c>, or a
/// Patient compartment search; other filters of that patient's resources are allowed.</item>
/// <item>Never chains nor <c>_has</c> (they search other patients' data through references), nor <c>_type</c> outside one patient's compartment.</item>
/// <item><c>_include</c>/<c>_revinclude</c> only between the types these actors may see, never <c>*</c>.</item>
/// <item>No system search (except the pages of a search already allowed), no type or system history.</item>
/// </list>
/// Organization and Location are directories (no patient data): searched freely, with the same limits on chains and includes.
/// </summary>
public static class FollowedPersonSearch
{
    /// <summary>Parameters that shape the answer without selecting anyone.</summary>
    private static readonly HashSet<string> Shaping = new(StringComparer.Ordinal)
    {
        "_format", "_pretty", "_summary", "_elements", "_count", "_total", "_sort", "_include", "_revinclude", "_getpages", "_getpagesoffset",
    };

    private static readonly IReadOnlySet<string> Visible = new HashSet<string>(StringComparer.Ordinal)
    {
        "Patient", "Appointment", "DocumentReference", "Organization", "Location",
    };

    /// <returns>Why the request is refused, or null when it stays within the person followed.</returns>
    public static string? Refusal(Security.AccessRequest request)
    {
        var query = request.Query;
        switch (request.Interaction)
        {
            case Interaction.HistorySystem:
            case Interaction.HistoryType when request.Type is not ("Organization" or "Location"):
                return "Justice and social actors cannot list histories across patients; read the history of one resource instead.";
            case Interaction.SearchSystem:
                // A page of a result set that was allowed when it was made (sets belong to their client).
                return query.Any(p => p.Key == "_getpages") ? null : "Justice and social actors cannot search across resource types.";
            case Interaction.SearchType:
            case Interaction.SearchCompartment:
                break;
            default:
                return null;
        }
        foreach (var (key, value) in query)
        {
            // Inside one patient's compartment ($everything, Patient/[id]/*) _type only narrows.
            if (key == "_type" && request.Interaction != Interaction.SearchCompartment) return "Justice and social actors cannot search across resource types.";
            if (key.StartsWith("_has", StringComparison.Ordinal) || key.Contains('.', StringComparison.Ordinal))
                return $"Justice and social actors cannot use chained or reverse-chained parameters ('{key}').";
            if (Bare(key) is "_include" or "_revinclude" && IncludeRefusal(Bare(key), value) is { } refused) return refused;
        }
        if (request.Interaction == Interaction.SearchCompartment) return null;
        return request.Type switch
        {
            "Patient" => PatientRefusal(query),
            "Appointment" or "DocumentReference" or "Encounter" => OnePatientRefusal(request.Type, query),
            _ => null,
        };
    }

    private static string? PatientRefusal(IReadOnlyList<KeyValuePair<string, string>> query)
    {
        var identifying = 0;
        foreach (var (key, value) in query)
        {
            if (Shaping.Contains(Bare(key))) continue;
            var exact = key switch
            {
                "identifier" => value.Split('|') is [{ Length: > 0 }, { Length: > 0 }] && !value.Contains(','),
                "_id" => value.Length > 0 && !value.Contains(','),
                _ => false,
            };
            if (!exact)
                return "Justice and social actors identify the person they follow by one exact identifier (identifier=system|value) or _id only.";
            identifying++;
        }
        return identifying > 0 ? null : "Justice and social actors must identify the person: Patient?identifier=system|value or Patient?_id=.";
    }

    private static string? OnePatientRefusal(string type, IReadOnlyList<KeyValuePair<string, string>> query)
    {
        // One _id is one resource, so one patient's at most.
        var patients = query.Where(p => p.Key is "patient" or "subject" or "patient:Patient" or "subject:Patient" or "_id").ToList();
        return patients.Count > 0 && patients.All(p => p.Value.Length > 0 && !p.Value.Contains(','))
            ? null
            : $"Justice and social actors search {type} for one patient only (patient= or subject= with one value, or Patient/[id]/{type}).";
    }

    /// <summary>"Appointment:patient" / "Appointment:actor:Location": the types both ends must be visible to these actors.</summary>
    private static string? IncludeRefusal(string key, string value)
    {
        var parts = value.Split(':');
        var refused = value.Contains('*', StringComparison.Ordinal) || parts.Length < 2 || !Visible.Contains(parts[0])
            || (parts.Length > 2 && !Visible.Contains(parts[2]));
        return refused ? $"Justice and social actors may {key} only between Patient, Appointment, DocumentReference, Organization and Location ('{value}')." : null;
    }

    /// <summary>The parameter name without its modifier (_include:iterate → _include).</summary>
    private static string Bare(string key) => key.Split(':')[0];
}
