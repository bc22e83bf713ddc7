using Hl7.Fhir.Model;

namespace FhirSortie.Server.Exit;

/// <summary>
/// The planned release date of a DetentionStay as the profile models it (profiles/StructureDefinition-DetentionStay.json):
/// <c>period.end</c>, the <c>release-certainty</c> (estimated | confirmed) and <c>release-window</c> (earliest/latest)
/// extensions, the kind of exit in <c>hospitalization.dischargeDisposition</c>, and <c>justice-follow-up</c> naming the
/// justice services that may set the date.
/// </summary>
public static class ReleaseDates
{
    public const string Profile = "https://fhirsortie.fr/fhir/StructureDefinition/DetentionStay";
    public const string EncounterTypes = "https://fhirsortie.fr/fhir/CodeSystem/exit-encounter-type";
    public const string DetentionStayCode = "detention-stay";
    public const string CertaintyUrl = "https://fhirsortie.fr/fhir/StructureDefinition/release-certainty";
    public const string WindowUrl = "https://fhirsortie.fr/fhir/StructureDefinition/release-window";
    public const string FollowUpUrl = "https://fhirsortie.fr/fhir/StructureDefinition/justice-follow-up";
    public const string ChangeUrl = "https://fhirsortie.fr/fhir/StructureDefinition/release-date-change";
    public const string ExitKinds = "https://fhirsortie.fr/fhir/CodeSystem/exit-kind";
    public const string Estimated = "estimated";
    public const string Confirmed = "confirmed";

    /// <summary>The planned date, its certainty and window, and the kind of exit: what a change of date is about.</summary>
    public sealed record Release(string? Date, string? Certainty, string? Earliest, string? Latest, string? ExitKind);

    public static bool IsDetentionStay(Resource? resource) =>
        resource is Encounter encounter && encounter.Type.Any(t => t.Coding.Any(c => c.System == EncounterTypes && c.Code == DetentionStayCode));

    public static Release Of(Encounter stay)
    {
        var window = stay.GetExtensionValue<Period>(WindowUrl);
        return new Release(stay.Period?.End, stay.GetExtensionValue<Code>(CertaintyUrl)?.Value, window?.Start, window?.End,
            stay.Hospitalization?.DischargeDisposition?.Coding.FirstOrDefault(c => c.System == ExitKinds)?.Code);
    }

    /// <summary>Writes <paramref name="release"/> on the stay (a null window or certainty removes the extension; a null kind keeps the stay's).</summary>
    public static void Apply(Encounter stay, Release release)
    {
        stay.Period ??= new Period();
        stay.Period.End = release.Date;
        stay.RemoveExtension(CertaintyUrl);
        stay.RemoveExtension(WindowUrl);
        // Base order of the extension list does not matter to FHIR; keeping ours first makes versions easy to compare by eye.
        if (release.Certainty is { } certainty) stay.Extension.Add(new Extension(CertaintyUrl, new Code(certainty)));
        if (release.Earliest is not null || release.Latest is not null)
            stay.Extension.Add(new Extension(WindowUrl, new Period { Start = release.Earliest, End = release.Latest }));
        if (release.ExitKind is { } kind)
        {
            stay.Hospitalization ??= new Encounter.HospitalizationComponent();
            stay.Hospitalization.DischargeDisposition = new CodeableConcept(ExitKinds, kind);
        }
    }

    /// <summary>A date or dateTime as an instant (a date alone: its midnight UTC), or null when absent or unreadable.</summary>
    public static DateTimeOffset? Instant(string? value) =>
        value is not null && FhirDateTime.IsValidValue(value) ? new FhirDateTime(value).ToDateTimeOffset(TimeSpan.Zero) : null;
}
