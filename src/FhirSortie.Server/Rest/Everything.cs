using System.Globalization;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// Patient/{id}/$everything (GET): the patient's compartment (conformance/compartment-patient.json, the Patient
/// included) as a searchset, through the same consent-filtered search as everything else, so a CSAPA or a
/// telemedicine app gets the shareable record in one call and nothing it may not see (nor counted in the total).
/// Parameters: <c>_type</c> (comma-separated), <c>_since</c> (instant: changed since), <c>_count</c> (page size);
/// others are 400. A Patient the caller may not see is 404, like a read.
/// </summary>
public static class Everything
{
    private static readonly HashSet<string> Allowed = new(StringComparer.Ordinal) { "_type", "_since", "_count", "_format", "_pretty" };

    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var id = FhirRequest.Id(context);
        var access = AccessPoint.Of(context);
        access.Require(Interaction.Read, "Patient");
        var patient = Read.Found(await FhirRequest.Store(context).ReadAsync("Patient", id, context.RequestAborted), "Patient", id).Stored!;
        Audit.AuditNote.For(context).Patients.Add(id);
        await access.RequireInstanceAsync(Interaction.Read, patient, context.RequestAborted);

        var query = new List<KeyValuePair<string, string>>();
        foreach (var (key, value) in await Search.QueryAsync(context))
        {
            if (!Allowed.Contains(key)) throw FhirException.BadRequest($"$everything does not support the parameter '{key}' (only _type, _since and _count).", key);
            if (key == "_since") query.Add(new("_lastUpdated", FhirRequest.DateSearchValue("ge", FhirRequest.Instant(value, key))));
            else query.Add(new(key, value));
        }
        await Search.RespondAsync(context, Search.RequestFor(context, null, query) with { PatientCompartment = id });
    }
}
