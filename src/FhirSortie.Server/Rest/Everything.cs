using System.Globalization;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// Patient/{id}/$everything (GET or POST, <see cref="OperationParameters"/>): the patient's compartment (conformance/compartment-patient.json, the Patient
/// included) as a searchset, through the same consent-filtered search as everything else, so a CSAPA or a
/// telemedicine app gets the shareable record in one call and nothing it may not see (nor counted in the total).
/// Parameters: <c>_type</c> (comma-separated), <c>_since</c> (instant: changed since), <c>_count</c> (page size),
/// <c>start</c> and <c>end</c> (dates: care dates, <see cref="CareDateParameters"/>); others are 400. A Patient the
/// caller may not see is 404, like a read. The self link is the $everything URL itself (a compartment search URL
/// cannot say start and end); the next pages are the persisted result set, like any search.
/// </summary>
public static class Everything
{
    private static readonly HashSet<string> Allowed = new(StringComparer.Ordinal) { "_type", "_since", "_count", "start", "end", "_format", "_pretty" };

    /// <summary>
    /// start and end are "care dates, not record currency dates" (R4 Patient-everything): for each resource type of the
    /// Patient compartment that records when care happened, the date search parameter that says it (a period
    /// overlaps the window, a date falls in it). A resource of such a type without that date stays in (an undated
    /// prescription is more dangerous missed than shown). Types with no care date stay in whatever the window: the
    /// Patient, and what stays true across periods (Condition, AllergyIntolerance, Goal, Consent, RelatedPerson,
    /// Coverage...): a CSAPA asking for the last six months still needs the hepatitis C diagnosed years ago.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> CareDateParameters = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["Appointment"] = "date",
        ["CarePlan"] = "date",
        ["CareTeam"] = "date",
        ["ClinicalImpression"] = "date",
        ["Communication"] = "sent",
        ["CommunicationRequest"] = "authored",
        ["Composition"] = "date",
        ["DetectedIssue"] = "identified",
        ["DiagnosticReport"] = "date",
        ["DocumentManifest"] = "created",
        ["DocumentReference"] = "date",
        ["Encounter"] = "date",
        ["EpisodeOfCare"] = "date",
        ["Flag"] = "date",
        ["Immunization"] = "date",
        ["List"] = "date",
        ["MedicationAdministration"] = "effective-time",
        ["MedicationDispense"] = "whenhandedover",
        ["MedicationRequest"] = "authoredon",
        ["MedicationStatement"] = "effective",
        ["Observation"] = "date",
        ["Procedure"] = "date",
        ["Provenance"] = "recorded",
        ["QuestionnaireResponse"] = "authored",
        ["ServiceRequest"] = "authored",
        ["Specimen"] = "collected",
        ["Task"] = "authored-on",
    };

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var id = FhirRequest.Id(context);
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Read, "Patient");
        var patient = Read.Found(await FhirRequest.Store(context).ReadAsync("Patient", id, context.RequestAborted), "Patient", id).Stored!;
        Audit.AuditNote.For(context).Patients.Add(id);
        await access.RequireInstanceAsync(Interaction.Read, patient, context.RequestAborted);

        var query = new List<KeyValuePair<string, string>>();
        var asked = new List<KeyValuePair<string, string>>();
        string? start = null, end = null;
        foreach (var (key, value) in await OperationParameters.ReadAsync(context))
        {
            if (!Allowed.Contains(key)) throw FhirException.BadRequest($"$everything does not support the parameter '{key}' (only _type, _since, _count, start and end).", key);
            if (key is not ("_format" or "_pretty")) asked.Add(new(key, value));
            switch (key)
            {
                case "_since":
                    query.Add(new("_lastUpdated", FhirRequest.DateSearchValue("ge", FhirRequest.Instant(value, key))));
                    break;
                case "start":
                    start = CareDate(value, key, start);
                    break;
                case "end":
                    end = CareDate(value, key, end);
                    break;
                default:
                    query.Add(new(key, value));
                    break;
            }
        }
        var selfUrl = $"{FhirBase.Of(context)}/Patient/{id}/$everything";
        if (asked.Count > 0) selfUrl += "?" + string.Join("&", asked.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value)));
        await Search.RespondAsync(context, Search.RequestFor(context, null, query) with
        {
            PatientCompartment = id,
            CareDates = start is null && end is null ? null : (start, end),
            SelfUrl = selfUrl,
        });
    }

    /// <summary>A FHIR date (2026, 2026-05 or 2026-05-14), given once.</summary>
    private static string CareDate(string value, string name, string? already)
    {
        if (already is not null) throw FhirException.BadRequest($"'{name}' may be given once.", name);
        if (!Date.IsValidValue(value)) throw FhirException.BadRequest($"'{name}' must be a date (YYYY, YYYY-MM or YYYY-MM-DD), not '{value}'.", name);
        return value;
    }
}
