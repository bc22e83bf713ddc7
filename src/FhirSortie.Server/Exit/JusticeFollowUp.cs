using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Exit;

/// <summary>
/// Which justice organisation follows a person, for the one write justice actors make (the release date).
/// Reading needs no such link: a justice actor reads the administrative minimum of the person it identifies by an exact
/// identifier (Consent/FollowedPersonSearch.cs), as before. Writing does: the DetentionStay names, in its
/// <c>justice-follow-up</c> extensions, the SPIP and records office that follow the person during the stay (the USMP puts
/// them in the exit package), by reference to their Organization or by identifier, and the caller's organisation
/// (its token's FINESS-style identifier) must be one of them. A stay naming none cannot be dated by justice.
/// </summary>
public static class JusticeFollowUp
{
    public static async Task<bool> FollowsAsync(WriteSession session, Encounter stay, string? finess, CancellationToken ct)
    {
        if (finess is null) return false;
        foreach (var extension in stay.Extension.Where(e => e.Url == ReleaseDates.FollowUpUrl))
        {
            if (extension.Value is ResourceReference reference && await HandoffTasks.FinessOfAsync(session, reference, ct) == finess) return true;
        }
        return false;
    }
}
