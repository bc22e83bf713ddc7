using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// Versions of one liaison letter. A corrected letter is a new CDA document (new id) with the same setId and a higher
/// versionNumber. Its import replaces the version the caller can see as current, in the same transaction:
/// <list type="bullet">
/// <item>the current DocumentReference of the set becomes <c>superseded</c> (a PATCH entry with If-Match on the version
/// found, so a concurrent change is never overwritten: the import then looks again, see <see cref="ImportCda"/>);</item>
/// <item>the new DocumentReference <c>relatesTo</c> it (<c>replaces</c>), and the new Composition the old one;</item>
/// <item>prescriptions and appointments become conditional updates, so that an entry the corrected letter keeps under the
/// same id takes its corrected content (a conditional create would keep the old dose); those of the old Composition
/// that the corrected letter no longer lists, and still open, are cancelled (PATCH, If-Match).</item>
/// </list>
/// Only versions the caller's organisation wrote are replaced. A version older than the current one (a late delivery) is
/// stored as <c>superseded</c> and replaces nothing; its entries the current version lacks are stored cancelled.
/// The set and the version are kept on the DocumentReference as an identifier of <see cref="SetSystem"/> carrying the
/// <see cref="VersionExtension"/> (R4 DocumentReference has no version element).
/// </summary>
public static class LetterVersions
{
    /// <summary>The CDA setId (root^extension), shared by every version of one document.</summary>
    public const string SetSystem = "https://fhirsortie.fr/fhir/NamingSystem/cda-set-id";

    /// <summary>The CDA versionNumber, on the set identifier (profiles/StructureDefinition-cda-version-number.json).</summary>
    public const string VersionExtension = "https://fhirsortie.fr/fhir/StructureDefinition/cda-version-number";

    /// <summary>More versions than this under one setId is not a liaison letter's life: the rest is not looked at.</summary>
    private const int MaxVersions = 50;

    public static Identifier SetIdentifier(CdaId setId, int? version)
    {
        var identifier = new Identifier(SetSystem, setId.ToString());
        if (version is { } v) identifier.Extension.Add(new Extension(VersionExtension, new Integer(v)));
        return identifier;
    }

    /// <summary>
    /// Looks for the versions of <paramref name="cda"/>'s set that the caller may see and adds the replacement to
    /// <paramref name="mapping"/>'s transaction; the notes say what was done.
    /// </summary>
    /// <returns>
    /// The check to run first in the import's transaction (<see cref="Transaction.Services.Precondition"/>): the versions
    /// read here must still be the ones stored, or the transaction fails with a 412 and the import may look again. It
    /// catches two imports of one letter racing each other: two corrections of one version (their PATCHes with If-Match
    /// would too), and two versions of a letter not stored yet, which would otherwise both become current.
    /// </returns>
    public static async Task<Func<WriteSession, CancellationToken, Task>?> ApplyAsync(ResourceStore store, SearchConnections connections, SearchEngine search, AccessFilter access,
        string? callerFiness, CdaDocument cda, LiaisonLetterMapping.Result mapping, List<OperationOutcome.IssueComponent> notes, CancellationToken ct)
    {
        if (cda.SetId is not { } setId) return null;
        var documentId = LiaisonLetterMapping.DocumentIdentifier(cda.Id);
        List<(StoredResource Stored, DocumentReference Reference)> versions;
        await using (var db = await connections.RentAsync(ct))
        {
            var found = await FindVersionsAsync(search, db.Connection, db.Transaction, access, setId, ct);
            versions = found.Where(f => f.Json is not null).Select(f => (f, (DocumentReference)FhirResponse.ParseStored(f.Json!))).ToList();
        }
        var seen = Versions(versions.Select(v => v.Stored));
        async Task Unchanged(WriteSession session, CancellationToken token)
        {
            // PostgreSQL: the imports of one set take turns from here to their commit, so this one sees what another committed.
            await session.Store.Dialect.LockAsync(session.Connection, session.Transaction, "cda-set:" + setId, token);
            var now = Versions(await FindVersionsAsync(search, session.Connection, session.Transaction, access, setId, token));
            if (!now.SequenceEqual(seen, StringComparer.Ordinal))
            {
                throw FhirException.Error(System.Net.HttpStatusCode.PreconditionFailed, OperationOutcome.IssueType.Conflict,
                    "Another version of this letter was imported while this one was: nothing was written; send it again.");
            }
        }
        await ApplyToAsync(store, connections, search, access, callerFiness, cda, setId, documentId, versions, mapping, notes, ct);
        return Unchanged;
    }

    private static Task<IReadOnlyList<StoredResource>> FindVersionsAsync(SearchEngine search, System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction? transaction,
        AccessFilter access, CdaId setId, CancellationToken ct) =>
        search.FindAsync(connection, transaction, "DocumentReference",
            [new("identifier", LiaisonLetterMapping.Token(SetSystem, setId.ToString(), escapeForUrl: false))], access, MaxVersions, ct);

    private static List<string> Versions(IEnumerable<StoredResource> found) =>
        found.Select(f => f.Id + "/" + f.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(StringComparer.Ordinal).ToList();

    private static async Task ApplyToAsync(ResourceStore store, SearchConnections connections, SearchEngine search, AccessFilter access, string? callerFiness,
        CdaDocument cda, CdaId setId, Identifier documentId, List<(StoredResource Stored, DocumentReference Reference)> versions,
        LiaisonLetterMapping.Result mapping, List<OperationOutcome.IssueComponent> notes, CancellationToken ct)
    {
        // The same document again: the conditional creates find it; nothing to replace.
        if (versions.Any(v => v.Reference.MasterIdentifier is { } m && m.System == documentId.System && m.Value == documentId.Value)) return;

        // A letter is corrected by the organisation that wrote it: another one (a USMP the patient let see it after a
        // transfer) imports its own letter beside it, and replaces nothing it did not write.
        var current = new List<DocumentReference>();
        foreach (var (stored, version) in versions)
        {
            if (version.Status == DocumentReferenceStatus.Current && (await store.ReadOriginAsync(stored, ct)).Finess == callerFiness)
                current.Add(version);
        }
        if (current.Count == 0) return;
        var bundle = mapping.Transaction;
        var reference = (DocumentReference)bundle.Entry[mapping.DocumentReferenceEntry].Resource!;
        var later = current.FirstOrDefault(v => cda.Version is { } mine && VersionOf(v, setId) is { } theirs && theirs > mine);
        if (later is not null)
        {
            reference.Status = DocumentReferenceStatus.Superseded;
            notes.Add(Note($"Version {VersionOf(later, setId)} of this document (DocumentReference/{later.Id}) is already current: this version {cda.Version} is stored as superseded and replaces nothing."));
            // Its prescriptions and appointments that the current version does not have (the conditional creates find
            // the others) are kept as a record of this version, not as treatments or appointments to act on.
            foreach (var entry in bundle.Entry)
            {
                if (entry.Request?.IfNoneExist is null) continue;
                if (entry.Resource is MedicationRequest prescription) prescription.Status = MedicationRequest.MedicationrequestStatus.Cancelled;
                else if (entry.Resource is Appointment appointment) appointment.Status = Appointment.AppointmentStatus.Cancelled;
            }
            return;
        }

        var composition = bundle.Entry.Select(e => e.Resource).OfType<Composition>().FirstOrDefault();
        var replacedCompositions = new List<string>();
        foreach (var old in current)
        {
            bundle.Entry.Add(StatusPatch("DocumentReference", old.Id!, old.Meta?.VersionId, "superseded"));
            reference.RelatesTo.Add(new DocumentReference.RelatesToComponent
            {
                Code = DocumentRelationshipType.Replaces, Target = new ResourceReference("DocumentReference/" + old.Id),
            });
            foreach (var related in old.Context?.Related ?? [])
            {
                if (related.Reference is not { } r || !r.StartsWith("Composition/", StringComparison.Ordinal)) continue;
                replacedCompositions.Add(r["Composition/".Length..]);
                composition?.RelatesTo.Add(new Composition.RelatesToComponent { Code = DocumentRelationshipType.Replaces, Target = new ResourceReference(r) });
            }
            notes.Add(Note($"This version replaces DocumentReference/{old.Id} (version {VersionOf(old, setId)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"}), now superseded."));
        }

        // Prescriptions and appointments: the corrected letter is the list that holds. Those it keeps (same identifier)
        // are updated with its content; those of the replaced version it no longer lists are cancelled, so that nobody
        // dispenses a treatment the corrected letter took out.
        var kept = new HashSet<(string, string?, string?)>();
        foreach (var entry in bundle.Entry)
        {
            if (entry.Resource is not (MedicationRequest or Appointment) || entry.Request?.IfNoneExist is not { } condition) continue;
            entry.Request.Method = Bundle.HTTPVerb.PUT;
            entry.Request.Url = entry.Resource.TypeName + "?" + condition;
            entry.Request.IfNoneExist = null;
            foreach (var identifier in Identifiers(entry.Resource)) kept.Add((entry.Resource.TypeName, identifier.System, identifier.Value));
        }
        if (replacedCompositions.Count > 0) await CancelDroppedAsync(connections, search, access, replacedCompositions, kept, bundle, notes, ct);
    }

    /// <summary>
    /// PATCHes to cancelled the still open prescriptions and appointments listed by the replaced Compositions whose
    /// identifiers the corrected letter no longer has (<paramref name="kept"/>).
    /// </summary>
    private static async Task CancelDroppedAsync(SearchConnections connections, SearchEngine search, AccessFilter access, List<string> replacedCompositions,
        HashSet<(string, string?, string?)> kept, Bundle bundle, List<OperationOutcome.IssueComponent> notes, CancellationToken ct)
    {
        await using (var db = await connections.RentAsync(ct))
        {
            var entries = new List<ResourceReference>();
            foreach (var found in await search.FindAsync(db.Connection, db.Transaction, "Composition", [new("_id", string.Join(',', replacedCompositions))], access, MaxVersions, ct))
            {
                if (found.Json is not { } json) continue;
                entries.AddRange(((Composition)FhirResponse.ParseStored(json)).Section.SelectMany(Entries));
            }
            foreach (var type in new[] { "MedicationRequest", "Appointment" })
            {
                var ids = entries.Select(e => e.Reference).OfType<string>().Where(r => r.StartsWith(type + "/", StringComparison.Ordinal))
                    .Select(r => r[(type.Length + 1)..]).Distinct().ToList();
                if (ids.Count == 0) continue;
                foreach (var chunk in ids.Chunk(SearchValues.MaxValues))
                foreach (var found in await search.FindAsync(db.Connection, db.Transaction, type, [new("_id", string.Join(',', chunk))], access, chunk.Length, ct))
                {
                    if (found.Json is not { } json) continue;
                    var resource = FhirResponse.ParseStored(json);
                    if (Identifiers(resource).Any(i => kept.Contains((type, i.System, i.Value))) || !Open(resource)) continue;
                    bundle.Entry.Add(StatusPatch(type, found.Id, found.Version.ToString(System.Globalization.CultureInfo.InvariantCulture), "cancelled"));
                    notes.Add(Note($"{type}/{found.Id} of the replaced version is not in this version: cancelled."));
                }
            }
        }
    }

    private static IEnumerable<Identifier> Identifiers(Resource resource) => resource switch
    {
        MedicationRequest m => m.Identifier,
        Appointment a => a.Identifier,
        _ => [],
    };

    private static IEnumerable<ResourceReference> Entries(Composition.SectionComponent section) =>
        section.Entry.Concat(section.Section.SelectMany(Entries));

    /// <summary>Still to be done: a completed, stopped or already cancelled one is history and stays as it is.</summary>
    private static bool Open(Resource resource) => resource switch
    {
        MedicationRequest m => m.Status is MedicationRequest.MedicationrequestStatus.Active or MedicationRequest.MedicationrequestStatus.OnHold
            or MedicationRequest.MedicationrequestStatus.Draft,
        Appointment a => a.Status is Appointment.AppointmentStatus.Proposed or Appointment.AppointmentStatus.Pending or Appointment.AppointmentStatus.Booked,
        _ => false,
    };

    /// <summary>The versionNumber recorded on a DocumentReference of the set, if any.</summary>
    public static int? VersionOf(DocumentReference reference, CdaId setId) =>
        reference.Identifier.FirstOrDefault(i => i.System == SetSystem && i.Value == setId.ToString())
            ?.GetExtensionValue<Integer>(VersionExtension)?.Value;

    /// <summary>
    /// A PATCH entry setting the status of the version that was read (If-Match: a concurrent change fails the import with
    /// 412 rather than being overwritten). FHIRPath Patch: only the status changes; the rest stays as its author wrote it.
    /// </summary>
    private static Bundle.EntryComponent StatusPatch(string type, string id, string? version, string status)
    {
        var operation = new Parameters.ParameterComponent { Name = "operation" };
        operation.Part.Add(new Parameters.ParameterComponent { Name = "type", Value = new Code("replace") });
        operation.Part.Add(new Parameters.ParameterComponent { Name = "path", Value = new FhirString(type + ".status") });
        operation.Part.Add(new Parameters.ParameterComponent { Name = "value", Value = new Code(status) });
        var patch = new Parameters();
        patch.Parameter.Add(operation);
        return new Bundle.EntryComponent
        {
            Resource = patch,
            Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.PATCH, Url = $"{type}/{id}", IfMatch = $"W/\"{version}\"" },
        };
    }

    private static OperationOutcome.IssueComponent Note(string diagnostics) => LiaisonLetterMapping.Note(diagnostics, "ClinicalDocument/setId");
}
