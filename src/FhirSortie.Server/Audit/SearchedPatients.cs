using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Audit;

/// <summary>
/// The patients a search answer discloses, named on the request's audit row (issue 26: a lookup by INS, name, <c>_id</c>,
/// chain or include must show in <c>AuditEvent?patient=</c> and the person's <c>$access-report</c>, as the SMART patient
/// picker's pages already did). Decided: every Patient returned, match or include, and for every other resource returned
/// the patients whose compartment holds it (resource_compartment: what "belongs to" means for compartment search, the
/// consent filter and the audit's own patient search). A resource outside the Patient compartment (Organization,
/// Practitioner, Medication...) names nobody. Each page of a paged search names the patients of that page.
/// <para>
/// Cost: the Patients' ids are in the rows already; the others' patients come from one indexed statement per page
/// (never one per entry), on the search's own connection and transaction, its IN list padded to a power of two so that a
/// kept SQLite connection reuses a few compiled shapes. The audit row is written before the answer either way.
/// </para>
/// </summary>
public static class SearchedPatients
{
    /// <summary>Smallest IN list: searches of a few matches (the common case) share one statement.</summary>
    private const int MinListSize = 8;

    /// <summary>Adds the patients of <paramref name="matches"/> and <paramref name="included"/> to the request's <see cref="AuditNote"/>.</summary>
    public static async Task NoteAsync(IServiceProvider services, SearchDb db, IReadOnlyList<StoredResource> matches,
        IReadOnlyList<StoredResource> included, CancellationToken ct)
    {
        if (matches.Count + included.Count == 0) return;
        // No HTTP request (a background task): nothing is audited here.
        if (services.GetService<IHttpContextAccessor>()?.HttpContext is not { } context) return;
        var patients = AuditNote.For(context).Patients;
        var compartments = services.GetRequiredService<Compartments>();
        List<long>? keys = null;
        foreach (var resource in matches.Concat(included))
        {
            if (resource.Deleted) continue;
            if (resource.Type == "Patient") patients.Add(resource.Id);
            else if (compartments.IsInPatientCompartment(resource.Type)) (keys ??= []).Add(resource.Key);
        }
        if (keys is null) return;
        patients.UnionWith(await CompartmentPatientsAsync(db, keys, ct));
    }

    /// <summary>The patients whose compartment holds any of the resources <paramref name="keys"/>.</summary>
    private static Task<List<string>> CompartmentPatientsAsync(SearchDb db, List<long> keys, CancellationToken ct)
    {
        var size = MinListSize;
        while (size < keys.Count) size *= 2;
        var q = new SqlQuery();
        // "|| ''" keeps SQLite (no statistics) on the (rkey, compartment_type, compartment_id) index rather than walking
        // every Patient compartment row from the (compartment_type, ...) key (as ResourceStore.ReadOriginAsync does).
        q.Append("SELECT DISTINCT compartment_id FROM resource_compartment WHERE compartment_type || '' = 'Patient' AND rkey IN (");
        for (var i = 0; i < size; i++)
        {
            if (i > 0) q.Append(", ");
            q.Append(q.Param(keys[Math.Min(i, keys.Count - 1)]));
        }
        q.Append(")");
        return db.StringsAsync(q, ct);
    }
}
