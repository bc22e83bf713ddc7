using System.Runtime.CompilerServices;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Exit;

/// <summary>
/// "Who, when, from what to what" of every change of a planned release date, whoever makes it ($set-release-date, a PUT
/// or PATCH of the stay, an exit package posted again): each version is kept (history), and the write's one Provenance
/// (Consent/WriteHook.cs) gets a <c>release-date-change</c> extension per stay changed (previous and new date and
/// certainty) and an entity (role revision) naming the version replaced. Its agent and recorded say who and when;
/// the write's audit row puts it in the person's $access-report.
/// </summary>
public static class ReleaseDateHistory
{
    private sealed record Change(string Stay, int PreviousVersion, ReleaseDates.Release Previous, ReleaseDates.Release Next);

    private static readonly ConditionalWeakTable<WriteSession, List<Change>> Changes = new();

    /// <summary>Before a save: remembers the change when a stay's planned date, certainty or window differs from the stored version.</summary>
    public static void Note(WriteSession session, Resource resource, StoredResource? current)
    {
        if (current is not { Deleted: false, Json: { } json } || !ReleaseDates.IsDetentionStay(resource)) return;
        if (FhirResponse.ParseStored(json) is not Encounter stored) return;
        var previous = ReleaseDates.Of(stored);
        var next = ReleaseDates.Of((Encounter)resource);
        if (previous with { ExitKind = null } == next with { ExitKind = null }) return;
        Changes.GetOrCreateValue(session).Add(new Change($"Encounter/{current.Id}", current.Version, previous, next));
    }

    /// <summary>Just before the session's Provenance is saved: the changes it noted, from what to what.</summary>
    public static void Annotate(WriteSession session, Provenance provenance)
    {
        if (!Changes.TryGetValue(session, out var changes)) return;
        Changes.Remove(session);
        foreach (var change in changes)
        {
            var extension = new Extension { Url = ReleaseDates.ChangeUrl };
            extension.Extension.Add(new Extension("stay", new ResourceReference(change.Stay)));
            if (change.Previous.Date is { } previousDate) extension.Extension.Add(new Extension("previousDate", new FhirDateTime(previousDate)));
            if (change.Previous.Certainty is { } previousCertainty) extension.Extension.Add(new Extension("previousCertainty", new Code(previousCertainty)));
            if (change.Next.Date is { } newDate) extension.Extension.Add(new Extension("newDate", new FhirDateTime(newDate)));
            if (change.Next.Certainty is { } newCertainty) extension.Extension.Add(new Extension("newCertainty", new Code(newCertainty)));
            provenance.Extension.Add(extension);
            provenance.Entity.Add(new Provenance.EntityComponent
            {
                Role = Provenance.ProvenanceEntityRole.Revision,
                What = new ResourceReference($"{change.Stay}/_history/{change.PreviousVersion}"),
            });
        }
    }
}
