using System.Globalization;
using System.Net;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// Patient/{id}/$patient-context (GET or POST, <see cref="OperationParameters"/>): what a telemedicine module opened on one patient needs, in one call (issue 6
/// §3): the Patient, the latest current liaison letter (DocumentReference LOINC 11490-0), active MedicationRequests,
/// active CarePlans, upcoming Appointments (start ≥ now), active CareTeams, active Conditions and
/// AllergyIntolerances, and the contacts they name (Practitioner, PractitionerRole, Organization, and the Locations of appointments).
/// <para>
/// Why an operation and not <c>$everything?_type=...</c>: $everything cannot say "active", "upcoming" or "the latest
/// letter"; it returns every version of the record of those types, which the app then has to filter, and it does not
/// bring the contacts (not in the patient compartment). Each section here is an ordinary compartment search run
/// through Search.ExecuteAsync with the caller's AccessFilter, so scopes and
/// consent filter it exactly as they filter a search the app would send itself; a section the caller's scopes
/// do not allow is left out and named in an OperationOutcome entry (search.mode = outcome), never a 403 for the
/// whole context. The contacts are directory resources outside the patient compartment (a launched app's searches
/// never reach them): each one is disclosed only if a read of it would be. A Patient the caller may not see is 404, like a read.
/// </para>
/// Parameters: <c>_since</c> (instant: only sections' resources changed since; contacts are those of what is returned).
/// </summary>
public static class PatientContext
{
    public const string Name = "patient-context";
    public const string Definition = "https://fhirsortie.fr/fhir/OperationDefinition/Patient-patient-context";

    /// <summary>Each section's cap: a context is for reading on screen, not an export (the rest is one search away).</summary>
    public const int SectionLimit = 100;

    private static readonly HashSet<string> Allowed = new(StringComparer.Ordinal) { "_since", "_format", "_pretty" };

    private static readonly string[] ContactTypes = ["PractitionerRole", "Practitioner", "Organization", "Location"];

    private sealed record Section(string Type, string[] Query);

    private static IReadOnlyList<Section> Sections(DateTimeOffset now) =>
    [
        new("DocumentReference", ["type=http://loinc.org|11490-0", "status=current", "_sort=-date", "_count=1"]),
        new("MedicationRequest", ["status=active"]),
        new("CarePlan", ["status=active"]),
        new("Appointment", ["date=" + FhirRequest.DateSearchValue("ge", now), "_sort=date"]),
        new("CareTeam", ["status=active"]),
        new("Condition", ["clinical-status=active"]),
        new("AllergyIntolerance", ["clinical-status=active"]),
    ];

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var id = FhirRequest.Id(context);
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Read, "Patient");
        var store = FhirRequest.Store(context);
        var patient = Read.Found(await store.ReadAsync("Patient", id, context.RequestAborted), "Patient", id).Stored!;
        Audit.AuditNote.For(context).Patients.Add(id);
        await access.RequireInstanceAsync(Interaction.Read, patient, context.RequestAborted);

        DateTimeOffset? since = null;
        var parameters = await OperationParameters.ReadAsync(context);
        foreach (var (key, value) in parameters)
        {
            if (!Allowed.Contains(key)) throw FhirException.BadRequest($"$patient-context does not support the parameter '{key}' (only _since).", key);
            if (key == "_since") since = FhirRequest.Instant(value, key);
        }

        var now = store.Clock.GetUtcNow();
        var bundle = new Bundle { Id = Guid.NewGuid().ToString(), Type = Bundle.BundleType.Searchset, Meta = new Meta { LastUpdated = now } };
        var baseUrl = FhirBase.Of(context);
        var omitted = new List<OperationOutcome.IssueComponent>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void AddEntry(Resource resource, Bundle.SearchEntryMode mode)
        {
            if (!seen.Add($"{resource.TypeName}/{resource.Id}")) return;
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = $"{baseUrl}/{resource.TypeName}/{resource.Id}",
                Resource = resource,
                Search = new Bundle.SearchComponent { Mode = mode },
            });
        }

        var patientResource = FhirResponse.ParseStored(patient.Json!);
        if (since is null || patient.LastUpdated >= since) AddEntry(patientResource, Bundle.SearchEntryMode.Match);
        var found = new List<Resource> { patientResource };
        foreach (var section in Sections(now))
        {
            var query = section.Query.Select(Pair).ToList();
            if (!query.Any(p => p.Key == "_count")) query.Add(new("_count", SectionLimit.ToString(CultureInfo.InvariantCulture)));
            if (since is { } changed) query.Add(new("_lastUpdated", FhirRequest.DateSearchValue("ge", changed)));
            var request = new SearchRequest(baseUrl, section.Type, query) { PatientCompartment = id };
            foreach (var resource in await RunAsync(context, access, request, Interaction.SearchCompartment, omitted))
            {
                AddEntry(resource, Bundle.SearchEntryMode.Match);
                found.Add(resource);
            }
        }

        // Contacts: roles first, so that the practitioners and organisations the roles name come along. They are
        // directory resources outside every patient compartment, which a launched app's searches never reach (they are
        // confined to its patient): each is disclosed as a read of it would be, through the same access point.
        foreach (var type in ContactTypes)
        {
            var ids = found.SelectMany(References).Where(r => r.Type == type).Select(r => r.Id).Distinct(StringComparer.Ordinal)
                .Where(i => !seen.Contains($"{type}/{i}")).Take(SectionLimit).ToList();
            if (ids.Count == 0) continue;
            if (Denied(() => access.Require(Interaction.Read, type), type, omitted)) continue;
            foreach (var contactId in ids)
            {
                var stored = await store.ReadAsync(type, contactId, context.RequestAborted);
                if (stored is not { Deleted: false, Json: not null }) continue;
                try
                {
                    await access.RequireInstanceAsync(Interaction.Read, stored, context.RequestAborted);
                }
                catch (FhirException hidden) when (hidden.Status is HttpStatusCode.Forbidden or HttpStatusCode.NotFound)
                {
                    continue;
                }
                var resource = FhirResponse.ParseStored(stored.Json);
                AddEntry(resource, Bundle.SearchEntryMode.Include);
                found.Add(resource);
            }
        }

        bundle.Total = bundle.Entry.Count(e => e.Search?.Mode == Bundle.SearchEntryMode.Match);
        // The parameters as a query, also when they came in a POSTed body.
        var selfQuery = string.Join("&", parameters.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value)));
        bundle.Link.Add(new Bundle.LinkComponent { Relation = "self", Url = $"{baseUrl}/Patient/{id}/${Name}{(selfQuery.Length > 0 ? "?" + selfQuery : "")}" });
        if (omitted.Count > 0)
        {
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                Resource = new OperationOutcome { Issue = omitted },
                Search = new Bundle.SearchComponent { Mode = Bundle.SearchEntryMode.Outcome },
            });
        }
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, bundle));
    }

    /// <summary>One section: asks the access point as the same search sent by the client would; a refusal leaves the section out.</summary>
    private static async Task<IReadOnlyList<Resource>> RunAsync(HttpContext context, AccessPoint access, SearchRequest request, Interaction interaction,
        List<OperationOutcome.IssueComponent> omitted)
    {
        if (Denied(() => access.Require(new AccessRequest(interaction, request.ResourceType) { Query = request.Query, Compartment = request.PatientCompartment }),
                request.ResourceType!, omitted))
            return [];
        var filtered = request with { Access = access.Filter(request.ResourceType), Owner = context.User.FindFirst("client_id")?.Value ?? "anonymous" };
        var bundle = await Search.ExecuteAsync(context.RequestServices, filtered, null, null, context.RequestAborted);
        return bundle.Entry.Where(e => e.Search?.Mode != Bundle.SearchEntryMode.Outcome).Select(e => e.Resource).OfType<Resource>().ToList();
    }

    /// <summary>True (and the section named in the outcome) when the access point refuses the caller this type.</summary>
    private static bool Denied(Action require, string type, List<OperationOutcome.IssueComponent> omitted)
    {
        try
        {
            require();
            return false;
        }
        catch (FhirException denied) when (denied.Status == HttpStatusCode.Forbidden)
        {
            omitted.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Information, OperationOutcome.IssueType.Suppressed,
                $"{type} left out: {denied.Outcome.Issue.FirstOrDefault()?.Diagnostics ?? "access denied"}"));
            return true;
        }
    }

    /// <summary>Literal "Type/id" references anywhere in the resource (contained resources and extensions included).</summary>
    private static IEnumerable<(string Type, string Id)> References(Resource resource) =>
        ElementTree.DescendantsAndSelf(resource).OfType<ResourceReference>()
            .Select(reference => reference.Reference?.Split('/'))
            .Where(parts => parts is { Length: 2 } && ModelInfo.IsKnownResource(parts[0]))
            .Select(parts => (parts![0], parts[1]));

    private static KeyValuePair<string, string> Pair(string text)
    {
        var equals = text.IndexOf('=');
        return new(text[..equals], text[(equals + 1)..]);
    }
}
