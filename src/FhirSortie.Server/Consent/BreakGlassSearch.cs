using System.Globalization;
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// Break-the-glass stated on a search (issue 26): <c>X-Purpose-Of-Use: ETREAT</c> with <c>X-Break-Glass-Reason</c>.
/// A search about one patient opens the grant as a read of that patient's resource does, before the search runs, so its
/// answer already shows what the grant opens: <c>?patient=</c>, <c>?subject=Patient/{id}</c> (or <c>subject:Patient=</c>),
/// <c>Patient?_id=</c> with one value, a Patient compartment search and <c>$everything</c>. Audited like the read's
/// opening (decision "break-the-glass emergency access", the reason on the patient's entity) and flagged with
/// <c>X-Break-Glass: expiry</c>. Any other search with a reason (several patients, none, a chain) is refused with a 400
/// saying how to open it, rather than silently answering what the caller saw before; a caller that may not break the
/// glass (not a care actor, or a launch for another patient) gets a 403. A page of a search already run (<c>_getpages</c>)
/// neither opens nor refuses: the grant its first page opened applies. Batch and transaction entries keep the rule of
/// reads: a grant is honoured there, never opened.
/// </summary>
public static class BreakGlassSearch
{
    private const string HowToOpen =
        "Break-the-glass (X-Purpose-Of-Use: ETREAT with X-Break-Glass-Reason) opens one patient's record: send it on a read " +
        "(GET Patient/{id} or one of that patient's resources), a search for one patient (?patient={id}, ?subject=Patient/{id}, " +
        "Patient?_id={id}) or a compartment search (GET Patient/{id}/{type}, Patient/{id}/$everything). Until the grant expires, " +
        "X-Purpose-Of-Use: ETREAT alone then shows that patient's resources in any search.";

    /// <summary>Opens the caller's grant for the patient of <paramref name="request"/> when the request breaks the glass; throws the 4xx otherwise.</summary>
    public static async System.Threading.Tasks.Task OpenAsync(HttpContext context, SearchRequest request, CancellationToken ct)
    {
        if (PurposeOfUse.From(context.Request) is not { IsBreakGlass: true, BreakGlassReason: not null } purpose) return;
        if (request.Query.Any(p => p.Key == "_getpages")) return;
        var caller = Caller.Of(context);
        if (caller is null || !AccessRules.IsCareActor(caller.Kind))
            throw FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden,
                "Break-the-glass is for care organisations treating the patient; this client cannot open it.");
        var patient = PatientOf(request)
            ?? throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.BusinessRule,
                "This search is not about one patient, so it cannot break the glass. " + HowToOpen);
        if (caller.PatientId is { } launch && launch != patient)
            throw FhirException.Error(HttpStatusCode.Forbidden, OperationOutcome.IssueType.Forbidden,
                "This token was launched for another patient: it cannot break the glass for this one.");
        var services = context.RequestServices;
        var stored = await services.GetRequiredService<ResourceStore>().ReadAsync("Patient", patient, ct);
        if (stored is null || stored.Deleted)
            throw FhirException.Error(HttpStatusCode.NotFound, OperationOutcome.IssueType.NotFound,
                $"Patient/{patient} is not known: no break-the-glass was opened.");
        var expiry = await services.GetRequiredService<ConsentDecisions>().OpenBreakGlassAsync(caller, patient, purpose.BreakGlassReason, ct);
        var note = AuditNote.For(context);
        note.Purpose = purpose;
        if (note.Decision is not { Permitted: false }) note.Decision = new AccessDecision(true, "break-the-glass emergency access", BreakGlass: true);
        note.Patients.Add(patient);
        context.Response.Headers[PurposeOfUse.BreakGlassResponseHeader] = expiry.UtcDateTime.ToString("o", CultureInfo.InvariantCulture);
    }

    /// <summary>The one patient a search is restricted to, or null when it is not restricted to exactly one.</summary>
    public static string? PatientOf(SearchRequest request)
    {
        string? found = request.PatientCompartment;
        foreach (var (key, value) in request.Query)
        {
            string? patient;
            switch (key)
            {
                case "patient" or "patient:Patient" or "subject:Patient":
                    patient = Id(value, bareIsPatient: true);
                    break;
                case "subject":
                    patient = Id(value, bareIsPatient: false);
                    break;
                case "_id" when request.ResourceType == "Patient":
                    patient = FhirRequest.IsValidId(value) ? value : null;
                    break;
                default:
                    continue;
            }
            if (patient is null || (found is not null && found != patient)) return null;
            found = patient;
        }
        return found;
    }

    /// <summary>The id in "Patient/{id}" (or a bare id where the parameter can only point at a Patient); null for lists and anything else.</summary>
    private static string? Id(string value, bool bareIsPatient)
    {
        var id = value.StartsWith("Patient/", StringComparison.Ordinal) ? value["Patient/".Length..] : bareIsPatient ? value : null;
        return FhirRequest.IsValidId(id) ? id : null;
    }
}
