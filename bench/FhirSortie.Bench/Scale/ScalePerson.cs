extern alias server;
using System.Globalization;
using Hl7.Fhir.Model;
using server::FhirSortie.Server.Demo;
using TaskStatus = Hl7.Fhir.Model.Task.TaskStatus;

namespace FhirSortie.Bench.Scale;

/// <summary>How a person leaves: the share of each kind is what shapes the package (consent, hand-off, destination).</summary>
public enum ExitKind { Planned, Unannounced, Transfer, ConditionalRelease }

/// <summary>
/// Fictitious person number <see cref="Number"/> of the scale data set and their exit package, all drawn from a
/// generator seeded with the number: the same person and package whenever (and however often) it is built, which is
/// what makes the loader resumable (every entry is a conditional create on a business identifier: posting a package
/// again matches what is there).
/// </summary>
public sealed class ScalePerson
{
    public int Number { get; }
    public int Prison { get; }
    public int Receiver { get; }
    public ExitKind Kind { get; }
    public DateTime Release { get; }
    public string Ins { get; }
    /// <summary>Where the hand-off Task ends up (the receiver moves it there after the package), or null: no hand-off.</summary>
    public TaskStatus? HandoffStatus { get; }
    /// <summary>Index in the Bundle of the Patient entry and of the hand-off Task entry (-1: none).</summary>
    public int PatientEntry { get; private set; }
    public int TaskEntry { get; private set; } = -1;

    private static readonly string[] Families = ["MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT", "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL", "FOURNIER", "GIRARD"];
    private static readonly string[] Givens = ["Karim", "Julien", "Mehdi", "Thomas", "Nicolas", "Sofiane", "Kevin", "Yanis", "Anthony", "Sarah", "Laura", "Nadia", "Romain", "Bilal", "Maxime", "Inès"];

    public ScalePerson(int number)
    {
        Number = number;
        var random = new Random(number);
        // Prisons of very different sizes (a big maison d'arrêt releases far more people than a small centre de détention).
        Prison = Math.Min(ScaleWorld.Prisons - 1, (int)(ScaleWorld.Prisons * Math.Pow(random.NextDouble(), 1.6)));
        Receiver = random.Next(ScaleWorld.Receivers);
        var k = random.Next(100);
        Kind = k < 65 ? ExitKind.Planned : k < 85 ? ExitKind.Unannounced : k < 93 ? ExitKind.Transfer : ExitKind.ConditionalRelease;
        Release = ScaleWorld.YearStart.AddDays(random.Next(365)).AddHours(8 + random.Next(9));
        // NIR of someone born abroad (department 99), on the demo INS namespace; commune and order number carry the person number.
        var sex = 1 + random.Next(2);
        Ins = DemoIdentifiers.Nir(string.Create(CultureInfo.InvariantCulture,
            $"{sex}{60 + random.Next(40):D2}{1 + random.Next(12):D2}99{number / 999 + 1:D3}{number % 999 + 1:D3}"));
        if (Kind is ExitKind.Planned or ExitKind.ConditionalRelease)
        {
            var t = random.Next(100);
            HandoffStatus = t < 40 ? TaskStatus.Requested : t < 55 ? TaskStatus.Received : t < 75 ? TaskStatus.Accepted : t < 88 ? TaskStatus.Completed : TaskStatus.Rejected;
        }
        _random = random;
    }

    private readonly Random _random;

    /// <summary>The receiver's moves from requested to <see cref="HandoffStatus"/> (the hand-off state machine's order).</summary>
    public IReadOnlyList<TaskStatus> HandoffMoves() => HandoffStatus switch
    {
        TaskStatus.Received => [TaskStatus.Received],
        TaskStatus.Accepted => [TaskStatus.Received, TaskStatus.Accepted],
        TaskStatus.Rejected => [TaskStatus.Received, TaskStatus.Rejected],
        TaskStatus.Completed => [TaskStatus.Received, TaskStatus.Accepted, TaskStatus.InProgress, TaskStatus.Completed],
        _ => [],
    };

    /// <summary>The exit package: about 14 new resources (the organisations, prescriber and place are matched, not created).</summary>
    public Bundle Package()
    {
        var random = _random;
        var key = "S" + Number.ToString(CultureInfo.InvariantCulture);
        var b = new DemoPackages.PackageBuilder(key);
        var usmpFiness = ScaleWorld.UsmpFiness(Prison);
        var receiverFiness = ScaleWorld.ReceiverFiness(Receiver);
        var usmp = b.Organization(usmpFiness, $"USMP du centre pénitentiaire n° {Prison + 1} (fictif)", "Unité sanitaire en milieu pénitentiaire");
        var receiver = ScaleWorld.IsCsapa(Receiver)
            ? b.Organization(receiverFiness, $"CSAPA n° {Receiver + 1} (fictif)", "Centre de soins, d'accompagnement et de prévention en addictologie")
            : b.Organization(receiverFiness, $"ACT n° {Receiver + 1} (fictif)", "Appartement de coordination thérapeutique");
        var doctor = b.Practitioner(ScaleWorld.DoctorRpps(Prison, random.Next(ScaleWorld.DoctorsPerPrison)), "PRESCRIPTEUR", "Camille");
        var place = b.Location("SCALE-LOC-" + Receiver.ToString(CultureInfo.InvariantCulture), $"Accueil du centre n° {Receiver + 1} (fictif)", receiver);
        PatientEntry = b.Bundle.Entry.Count;
        var patient = b.Patient(Ins, Families[random.Next(Families.Length)], Givens[random.Next(Givens.Length)],
            Ins[0] == '1' ? AdministrativeGender.Male : AdministrativeGender.Female, $"19{Ins[1..3]}-{Ins[3..5]}-{1 + random.Next(28):D2}", usmp);

        var released = Release < ScaleWorld.Now;
        var (disposition, destination) = Kind switch
        {
            ExitKind.Transfer => ("Transfert vers un autre établissement", (string?)b.Organization(ScaleWorld.UsmpFiness((Prison + 7) % ScaleWorld.Prisons),
                $"USMP du centre pénitentiaire n° {(Prison + 7) % ScaleWorld.Prisons + 1} (fictif)", "Unité sanitaire en milieu pénitentiaire")),
            ExitKind.ConditionalRelease => ("Libération conditionnelle", null),
            ExitKind.Unannounced => ("Libération sans préavis", null),
            _ => ((string?)null, (string?)null),
        };
        var stay = b.Encounter(key + "-SEJ", patient, usmp, doctor, Release.AddDays(-30 - random.Next(700)), Release,
            released ? Encounter.EncounterStatus.Finished : Encounter.EncounterStatus.InProgress, disposition, destination);
        b.Condition(key + "-OUD", patient, "F11.2", "Troubles mentaux et du comportement liés à l'utilisation d'opiacés : syndrome de dépendance", Release.AddYears(-2 - random.Next(10)));
        if (random.Next(100) < 25) b.Condition(key + "-HCV", patient, "B18.2", "Hépatite virale chronique C", Release.AddMonths(-random.Next(12)));
        else b.Condition(key + "-ALC", patient, "F10.2", "Troubles mentaux et du comportement liés à l'utilisation d'alcool : syndrome de dépendance", Release.AddYears(-1 - random.Next(8)));
        if (random.Next(100) < 30) b.Allergy(key + "-ALG", patient, "Pénicillines", "Urticaire");

        var tso = random.Next(100) < 70
            ? b.Prescription(key + "-TSO", patient, stay, doctor, "N07BC01", "buprénorphine", "8 mg par voie sublinguale une fois par jour", Release.AddDays(-3), Release, 28, 28)
            : b.Prescription(key + "-TSO", patient, stay, doctor, "N07BC02", "méthadone", "60 mg par voie orale une fois par jour", Release.AddDays(-3), Release, 14, 14);
        if (random.Next(100) < 60)
        {
            var naloxone = b.Prescription(key + "-NAL", patient, stay, doctor, "V03AB15", "naloxone", "1,8 mg par voie nasale en cas de surdosage opioïde", Release.AddDays(-3), Release, null, 2);
            b.Dispense(key + "-DISP", patient, naloxone, "V03AB15", "naloxone", Release, "Kit de naloxone remis à la sortie");
        }

        var referral = b.Referral(key + "-ADR", patient, stay, doctor, receiver, "Relais du traitement de substitution à la sortie", Release);
        if (HandoffStatus is not null)
        {
            TaskEntry = b.Bundle.Entry.Count;
            b.Handoff(key + "-TCH", patient, referral, doctor, receiver, "Prise en charge à la sortie : relais TSO");
            var task = (Hl7.Fhir.Model.Task)b.Bundle.Entry[TaskEntry].Resource!;
            task.Code = new CodeableConcept(server::FhirSortie.Server.Exit.HandoffTasks.TaskTypes, server::FhirSortie.Server.Exit.HandoffTasks.HandoffCode);
        }
        else
        {
            var task = b.Task(key + "-TCH", patient, null, doctor, receiver, "Recueillir le consentement de la personne au partage (package incomplet)");
            ((Hl7.Fhir.Model.Task)b.Bundle.Entry[^1].Resource!).Status = released && random.Next(100) < 60 ? TaskStatus.Completed : TaskStatus.Requested;
        }
        var start = Release.Date.AddDays(1 + random.Next(3)).AddHours(9 + random.Next(8));
        var appointmentStatus = start >= ScaleWorld.Now ? Appointment.AppointmentStatus.Booked
            : random.Next(100) < 72 ? Appointment.AppointmentStatus.Fulfilled : Appointment.AppointmentStatus.Noshow;
        var appointment = b.Appointment(key + "-RDV", patient, place, null, start, appointmentStatus, "Premier rendez-vous après la sortie");
        var team = b.CareTeam(key + "-EQ", patient, usmp, [doctor, receiver]);
        b.CarePlan(key + "-PDS", patient, stay, usmp, team, Release, [referral, tso, appointment], "Projet de soins de sortie");
        b.Letter(key + "-LL", patient, stay, doctor, usmp, Release.AddDays(-1),
            "Lettre de liaison de sortie (fictive). Traitement de substitution en cours, relais organisé au centre receveur.");
        if (Kind is not ExitKind.Unannounced)
        {
            // Signed before release, valid a year: every consent of the data set is in force on the day it is measured.
            b.Consent(key + "-CST", patient, usmp, receiverFiness, Release.AddDays(-60), Release.AddMonths(12),
                ["Patient", "MedicationRequest", "MedicationDispense", "CarePlan", "DocumentReference", "Appointment", "Condition", "AllergyIntolerance", "CareTeam", "Task", "ServiceRequest"],
                [], "Partage avec le centre receveur pour la continuité des soins, 12 mois");
        }
        return b.Bundle;
    }
}
