using Hl7.Fhir.Model;
using FhirTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Server.Portal;

/// <summary>Look-ups the views share (all through the API), and the French words for FHIR codes.</summary>
public static class PortalData
{
    public const string TaskTypes = Exit.HandoffTasks.TaskTypes;

    /// <summary>The Organization resources carrying my FINESS (or another's: any FINESS), as "Organization/id" references; usually one.</summary>
    public static async Task<IReadOnlyList<string>> MyOrganizationsAsync(PortalApi api, string finess)
    {
        var bundle = await api.SearchAsync($"Organization?identifier={Uri.EscapeDataString(Security.Finess.System + "|" + finess)}&_count=20");
        return [.. bundle.Entry.Select(e => e.Resource).OfType<Organization>().Select(o => "Organization/" + o.Id).OfType<string>()];
    }

    /// <summary>Patients by id in one search (consent-filtered: a hidden one is simply absent).</summary>
    public static async Task<Dictionary<string, Patient>> PatientsAsync(PortalApi api, IEnumerable<string> ids)
    {
        var result = new Dictionary<string, Patient>(StringComparer.Ordinal);
        foreach (var chunk in ids.Distinct(StringComparer.Ordinal).Chunk(100))
        {
            var bundle = await api.SearchAsync($"Patient?_id={string.Join(',', chunk.Select(Uri.EscapeDataString))}&_count=100");
            foreach (var patient in bundle.Entry.Select(e => e.Resource).OfType<Patient>()) result[patient.Id ?? ""] = patient;
        }
        return result;
    }

    /// <summary>
    /// Patients by id with what points at them (<c>_revinclude</c> values such as "Task:patient"), in as few searches as
    /// the gateway allows: 50 people a search, and a search that hit the gateway's cap on included resources
    /// (<see cref="Search.Includes.MaxIncluded"/>, which it would cut silently) is asked again in halves. Consent-filtered
    /// like any search: a hidden person is absent, and so is what the organisation may not read.
    /// </summary>
    public static async Task<(Dictionary<string, Patient> Patients, List<Resource> Related)> PatientsWithAsync(PortalApi api, IEnumerable<string> ids, IReadOnlyList<string> revincludes)
    {
        var patients = new Dictionary<string, Patient>(StringComparer.Ordinal);
        var related = new List<Resource>();
        var includes = string.Concat(revincludes.Select(r => "&_revinclude=" + Uri.EscapeDataString(r)));
        async System.Threading.Tasks.Task SearchAsync(string[] chunk)
        {
            var bundle = await api.SearchAsync($"Patient?_id={string.Join(',', chunk.Select(Uri.EscapeDataString))}&_count={chunk.Length}{includes}");
            var included = bundle.Entry.Where(e => e.Search?.Mode == Bundle.SearchEntryMode.Include).Select(e => e.Resource).OfType<Resource>().ToList();
            if (included.Count >= Search.Includes.MaxIncluded && chunk.Length > 1)
            {
                await SearchAsync(chunk[..(chunk.Length / 2)]);
                await SearchAsync(chunk[(chunk.Length / 2)..]);
                return;
            }
            foreach (var patient in bundle.Entry.Where(e => e.Search?.Mode is null or Bundle.SearchEntryMode.Match).Select(e => e.Resource).OfType<Patient>())
                patients[patient.Id ?? ""] = patient;
            related.AddRange(included.Where(r => r is not Patient));
        }
        foreach (var chunk in ids.Distinct(StringComparer.Ordinal).Chunk(50)) await SearchAsync(chunk);
        return (patients, related);
    }

    public static IEnumerable<T> Resources<T>(Bundle bundle) where T : Resource =>
        bundle.Entry.Where(e => e.Search?.Mode is null or Bundle.SearchEntryMode.Match or Bundle.SearchEntryMode.Include).Select(e => e.Resource).OfType<T>();

    public static string? IdOf(ResourceReference? reference, string type) =>
        reference?.Reference is { } text && text.StartsWith(type + "/", StringComparison.Ordinal) ? text[(type.Length + 1)..].Split('/')[0] : null;

    public static string TaskKind(FhirTask task) =>
        task.Code?.Coding.FirstOrDefault(c => c.System == TaskTypes)?.Code
        ?? (task.Focus?.Reference?.StartsWith("ServiceRequest/", StringComparison.Ordinal) == true ? Exit.HandoffTasks.HandoffCode : "other");

    public static string TaskKindLabel(FhirTask task) => TaskKind(task) switch
    {
        "handoff" => "Prise en charge à la sortie",
        "collect-consent" => "Recueil du consentement",
        "complete-package" => "Compléter le dossier de sortie",
        _ => "Tâche",
    };

    public static string Status(FhirTask.TaskStatus? status) => status switch
    {
        FhirTask.TaskStatus.Requested => "Nouvelle",
        FhirTask.TaskStatus.Received => "Reçue",
        FhirTask.TaskStatus.Accepted => "Acceptée",
        FhirTask.TaskStatus.Rejected => "Refusée",
        FhirTask.TaskStatus.InProgress => "En cours",
        FhirTask.TaskStatus.Completed => "Terminée",
        FhirTask.TaskStatus.Cancelled => "Annulée",
        FhirTask.TaskStatus.OnHold => "En attente",
        FhirTask.TaskStatus.Failed => "Échouée",
        _ => "—",
    };

    public static string Status(Appointment.AppointmentStatus? status) => status switch
    {
        Appointment.AppointmentStatus.Booked => "Prévu",
        Appointment.AppointmentStatus.Fulfilled => "Honoré",
        Appointment.AppointmentStatus.Noshow => "Manqué",
        Appointment.AppointmentStatus.Cancelled => "Annulé",
        Appointment.AppointmentStatus.Proposed or Appointment.AppointmentStatus.Pending => "À confirmer",
        Appointment.AppointmentStatus.Arrived or Appointment.AppointmentStatus.CheckedIn => "Personne arrivée",
        _ => "—",
    };

    /// <summary>Where an appointment takes place: the Location's display or reference text, else the description.</summary>
    public static string Place(Appointment appointment, IReadOnlyDictionary<string, string> locations) =>
        appointment.Participant.Select(p => p.Actor).Where(a => a?.Reference?.StartsWith("Location/", StringComparison.Ordinal) == true)
            .Select(a => a!.Display ?? locations.GetValueOrDefault(a.Reference!)).FirstOrDefault(p => p is not null)
        ?? "Lieu non précisé";

    public static async Task<Dictionary<string, string>> LocationNamesAsync(PortalApi api, IEnumerable<Appointment> appointments)
    {
        var ids = appointments.SelectMany(a => a.Participant).Select(p => IdOf(p.Actor, "Location")).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        if (ids.Count == 0) return names;
        var bundle = await api.SearchAsync($"Location?_id={string.Join(',', ids.Take(100).Select(Uri.EscapeDataString))}&_count=100");
        foreach (var location in Resources<Location>(bundle)) if (location.Name is { } name) names["Location/" + location.Id] = name;
        return names;
    }

    public static string MedicationName(MedicationRequest request) =>
        request.Medication is CodeableConcept concept ? concept.Text ?? concept.Coding.FirstOrDefault()?.Display ?? concept.Coding.FirstOrDefault()?.Code ?? "Médicament" : "Médicament";

    public static bool IsNaloxone(MedicationRequest request) =>
        request.Medication is CodeableConcept concept && concept.Coding.Any(c => c.Code == "V03AB15");

    public const string BridgingSupplyExtension = "https://fhirsortie.fr/fhir/StructureDefinition/bridging-supply";

    /// <summary>
    /// The bridging supply (dépannage) handed over at the door, in days: the ExitPrescription's bridging-supply
    /// extension; a demo-style prescription without it counts when its text says "dépannage".
    /// </summary>
    public static int? BridgingDays(MedicationRequest request)
    {
        if (request.GetExtension(BridgingSupplyExtension)?.GetExtension("daysSupply")?.Value is Duration { Value: { } days }) return (int)days;
        var text = request.DosageInstruction.FirstOrDefault()?.Text ?? "";
        return text.Contains("Dépannage", StringComparison.OrdinalIgnoreCase) && request.DispenseRequest?.ExpectedSupplyDuration?.Value is { } supply ? (int)supply : null;
    }
}
