using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// What justice and social actors read of the resources they may see (issue 5 rule 1, issue 6 §4): an allow-list of
/// elements per type, everything else removed, and <c>meta.security</c> REDACTED (v3 ObservationValue) on a resource
/// that lost anything, so the client knows it does not hold the whole record.
/// <list type="bullet">
/// <item>Appointment: identifier, status, start, end, minutesDuration, created, and the participants that are the
/// person, the place (Location) or the care organisation (Organization, HealthcareService) with their status; never
/// reasonCode, reasonReference, description, comment, patientInstruction, serviceType, specialty, appointmentType,
/// cancelationReason, supportingInformation, basedOn, slot, priority, narrative, extensions, nor practitioners (a
/// practitioner's name can reveal the specialty).</item>
/// <item>Patient: demographics to identify the person (identifier, active, name, telecom, gender, birthDate,
/// deceased, address, managingOrganization); never extensions (they may carry clinical facts, e.g. a disability or a
/// birth-place used for nothing but care), narrative, contact, generalPractitioner (it names the care team),
/// communication, maritalStatus, multipleBirth, photo, link.</item>
/// <item>Encounter (justice actors read detention stays only, issue 25): status, class, type (codes only), subject, period (entry and
/// release dates), the release-certainty and release-window extensions and hospitalization.dischargeDisposition (the
/// kind of exit); never the identifier, participants, reasons, diagnoses, location, serviceProvider, other extensions.</item>
/// </list>
/// Applied to every FHIR answer such a caller receives (<see cref="RedactionMiddleware"/>), Bundle entries and
/// contained resources included, so no interaction (read, vread, search, includes, history, $everything, batch GET)
/// can forget it. Other types they may see (attendance attestations, Organization, Location) are non-clinical by profile.
/// </summary>
public static class Redaction
{
    public const string ObservationValue = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
    public const string RedactedCode = "REDACTED";

    private static readonly HashSet<string> AppointmentKept = new(StringComparer.Ordinal)
    {
        "id", "meta", "identifier", "status", "start", "end", "minutesDuration", "created", "participant",
    };

    private static readonly HashSet<string> PatientKept = new(StringComparer.Ordinal)
    {
        "id", "meta", "identifier", "active", "name", "telecom", "gender", "birthDate", "deceased", "address", "managingOrganization",
    };

    private static readonly HashSet<string> EncounterKept = new(StringComparer.Ordinal)
    {
        "id", "meta", "status", "class", "type", "subject", "period", "extension", "hospitalization",
    };

    private static readonly HashSet<string> StayExtensions = new(StringComparer.Ordinal) { Exit.ReleaseDates.CertaintyUrl, Exit.ReleaseDates.WindowUrl };

    /// <summary>Participants that tell where, with whom (the care organisation) and for whom; never a practitioner.</summary>
    private static readonly HashSet<string> ParticipantTypes = new(StringComparer.Ordinal) { "Patient", "Location", "Organization", "HealthcareService" };

    public static bool AppliesTo(Caller? caller) => caller?.Kind is ActorKind.Justice or ActorKind.Social;

    /// <summary>Redacts <paramref name="resource"/> in place, and every resource inside it; true when anything was removed.</summary>
    public static bool Apply(Resource resource)
    {
        var changed = false;
        if (resource is Bundle bundle)
        {
            foreach (var entry in bundle.Entry)
            {
                if (entry.Resource is { } inner) changed |= Apply(inner);
                if (entry.Response?.Outcome is { } outcome) changed |= Apply(outcome);
            }
        }
        if (resource is Parameters parameters)
        {
            foreach (var parameter in parameters.Parameter)
                if (parameter.Resource is { } inner) changed |= Apply(inner);
        }
        if (resource is DomainResource domain)
        {
            foreach (var contained in domain.Contained) changed |= Apply(contained);
        }
        var own = resource switch
        {
            Appointment appointment => RedactAppointment(appointment),
            Patient patient => Keep(patient, PatientKept),
            Encounter encounter => RedactStay(encounter),
            _ => false,
        };
        if (own) Mark(resource);
        return changed || own;
    }

    private static bool RedactAppointment(Appointment appointment)
    {
        var changed = Keep(appointment, AppointmentKept);
        var before = appointment.Participant.Count;
        appointment.Participant = appointment.Participant.Where(p => ParticipantTypes.Contains(ActorType(p.Actor))).ToList();
        changed |= appointment.Participant.Count != before;
        foreach (var participant in appointment.Participant)
        {
            if (participant.Type.Count > 0 || participant.Period is not null || participant.Extension.Count > 0 || participant.ModifierExtension.Count > 0)
            {
                participant.Type = [];
                participant.Period = null;
                participant.Extension = [];
                participant.ModifierExtension = [];
                changed = true;
            }
        }
        return changed;
    }

    private static bool RedactStay(Encounter stay)
    {
        var changed = Keep(stay, EncounterKept);
        // The type's codes say it is a detention stay; its text is the USMP's wording, which may say more.
        foreach (var type in stay.Type.Where(t => t.Text is not null))
        {
            type.Text = null;
            changed = true;
        }
        var extensions = stay.Extension.Count;
        stay.Extension = stay.Extension.Where(e => e.Url is { } url && StayExtensions.Contains(url)).ToList();
        changed |= stay.Extension.Count != extensions;
        if (stay.Hospitalization is { } hospitalization)
        {
            var kind = hospitalization.DischargeDisposition;
            stay.Hospitalization = kind is null ? null : new Encounter.HospitalizationComponent { DischargeDisposition = kind };
            changed |= kind is null || hospitalization.EnumerateElements().Any(e => e.Key != "dischargeDisposition");
        }
        return changed;
    }

    /// <summary>The type a participant reference points to ("Location/1", a relative or absolute URL); "" when unknown (dropped).</summary>
    private static string ActorType(ResourceReference? actor)
    {
        if (actor?.Reference is not { } reference) return actor?.Type ?? "";
        var parts = reference.Split('/');
        for (var i = parts.Length - 2; i >= 0; i--)
        {
            if (ModelInfo.IsKnownResource(parts[i])) return parts[i];
        }
        return "";
    }

    /// <summary>Removes every element of <paramref name="resource"/> not named in <paramref name="kept"/> (choice elements by their base name).</summary>
    private static bool Keep(Resource resource, HashSet<string> kept)
    {
        var changed = false;
        foreach (var name in resource.EnumerateElements().Select(e => e.Key).ToList())
        {
            if (kept.Contains(name)) continue;
            resource.SetValue(name, null);
            changed = true;
        }
        return changed;
    }

    private static void Mark(Resource resource)
    {
        resource.Meta ??= new Meta();
        if (!resource.Meta.Security.Any(c => c.System == ObservationValue && c.Code == RedactedCode))
            resource.Meta.Security.Add(new Coding(ObservationValue, RedactedCode, "redacted"));
    }
}
