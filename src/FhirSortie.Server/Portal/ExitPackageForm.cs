using System.Globalization;
using System.Text.RegularExpressions;

namespace FhirSortie.Server.Portal;

/// <summary>One prescription line of the exit-package form, as typed.</summary>
public sealed record PrescriptionLine(int Number, string Medication, string Atc, string Dose, string Unit, string Frequency, string Duration,
    string BridgingDays, string BridgingQuantity)
{
    public string Prefix => $"med{Number}";

    public bool IsEmpty => new[] { Medication, Atc, Dose, Duration, BridgingDays, BridgingQuantity }.All(string.IsNullOrWhiteSpace);

    /// <summary>The ATC code: the one chosen in the list, or the one typed when "autre" is chosen.</summary>
    public string Code => Medication == ExitPackageForm.OtherMedication ? Atc.Trim().ToUpperInvariant() : Medication;
}

/// <summary>
/// The exit-package form of the portal (issue 22, USMP view), exactly as the user typed it: every field is kept as text,
/// so that a refused submission shows back what was typed (no lost data). <see cref="Check"/> gives the French errors of
/// what cannot even be written as FHIR (a date that is not a date, a dose that is not a number); everything else is the
/// profiles' business, asked of the gateway ($validate, then the transaction).
/// </summary>
public sealed class ExitPackageForm
{
    public const string OtherMedication = "autre";
    public const int Lines = 3;
    public const int MaxPdfBytes = 2 * 1024 * 1024;

    /// <summary>The medicines of the domain the form proposes first (ATC), then "autre" with a free ATC code.</summary>
    public static readonly (string Code, string Label)[] Medications =
    [
        ("N07BC01", "Buprénorphine (TSO)"),
        ("N07BC02", "Méthadone (TSO)"),
        ("N07BC51", "Buprénorphine et naloxone (TSO)"),
        ("V03AB15", "Naloxone (kit antidote)"),
    ];

    public static readonly (string Code, string Label)[] Units = [("mg", "mg"), ("mL", "mL"), ("comprimé", "comprimé(s)"), ("pulvérisation", "pulvérisation(s)")];

    public static readonly (string Code, string Label)[] Frequencies =
        [("1", "1 fois par jour"), ("2", "2 fois par jour"), ("3", "3 fois par jour"), ("4", "4 fois par jour"), ("besoin", "si besoin")];

    /// <summary>The exit-kind CodeSystem (profiles/CodeSystem-exit-kind.json, ValueSet exit-kinds), in French.</summary>
    public static readonly (string Code, string Label)[] ExitKinds =
    [
        ("fin-de-peine", "Sortie sèche / fin de peine (sans aménagement)"),
        ("transfert", "Transfert vers un autre établissement pénitentiaire"),
        ("placement-exterieur", "Placement extérieur"),
        ("semi-liberte", "Semi-liberté"),
        ("surveillance-electronique", "Surveillance électronique (PSE / DDSE)"),
        ("liberation-conditionnelle", "Libération conditionnelle"),
        ("suspension-peine-medicale", "Suspension de peine pour raison médicale"),
    ];

    /// <summary>The exit-referral-type CodeSystem, in French.</summary>
    public static readonly (string Code, string Label)[] ReferralTypes =
    [
        ("addiction-followup", "Suivi en addictologie et continuité du traitement de substitution"),
        ("housing-support", "Hébergement et accompagnement (ACT)"),
        ("gp-followup", "Suivi par un médecin généraliste"),
        ("mental-health-followup", "Suivi psychiatrique (CMP)"),
        ("infectious-disease-followup", "Suivi VIH / hépatites"),
        ("teleconsultation", "Téléconsultation de suivi"),
    ];

    public string Key { get; set; } = "";
    public string Entry { get; set; } = "";
    public string Release { get; set; } = "";
    public string ReleaseTime { get; set; } = "";
    public bool Released { get; set; }
    public string ExitKind { get; set; } = "";
    public string Destination { get; set; } = "";
    public List<PrescriptionLine> Prescriptions { get; set; } = [.. Enumerable.Range(1, Lines).Select(i => new PrescriptionLine(i, "", "", "", "mg", "1", "", "", ""))];
    public string Naloxone { get; set; } = "";
    public string LetterText { get; set; } = "";
    public byte[]? LetterPdf { get; set; }
    public string LetterPdfName { get; set; } = "";
    public string Organization { get; set; } = "";
    public string OrganizationSearch { get; set; } = "";
    public string ReferralType { get; set; } = "addiction-followup";
    public string ReferralReason { get; set; } = "";
    public string AppointmentDate { get; set; } = "";
    public string AppointmentTime { get; set; } = "";
    public string AppointmentPlace { get; set; } = "";

    /// <summary>What a posted form says (a PDF upload read into memory, at most <see cref="MaxPdfBytes"/> + 1 bytes).</summary>
    public static async Task<(ExitPackageForm Form, Dictionary<string, string> Errors)> ReadAsync(IFormCollection posted, CancellationToken ct)
    {
        string V(string name) => posted[name].ToString().Trim();
        var form = new ExitPackageForm
        {
            Key = V("cle"),
            Entry = V("entree"),
            Release = V("sortie"),
            ReleaseTime = V("sortie-heure"),
            Released = V("sortie-effectuee") == "oui",
            ExitKind = V("type-sortie"),
            Destination = V("destination"),
            Prescriptions = [.. Enumerable.Range(1, Lines).Select(i => new PrescriptionLine(i, V($"med{i}"), V($"med{i}-atc"), V($"med{i}-dose"), V($"med{i}-unite"),
                V($"med{i}-frequence"), V($"med{i}-duree"), V($"med{i}-depannage"), V($"med{i}-depannage-qte")))],
            Naloxone = V("naloxone"),
            LetterText = posted["lettre"].ToString(),
            Organization = V("structure"),
            OrganizationSearch = V("structure-recherche"),
            ReferralType = V("adressage-type"),
            ReferralReason = V("adressage-motif"),
            AppointmentDate = V("rdv-date"),
            AppointmentTime = V("rdv-heure"),
            AppointmentPlace = V("rdv-lieu"),
        };
        var errors = new Dictionary<string, string>(StringComparer.Ordinal);
        if (posted.Files.GetFile("lettre-pdf") is { Length: > 0 } file)
        {
            if (file.Length > MaxPdfBytes) errors["lettre-pdf"] = $"Le fichier « {file.FileName} » dépasse la taille maximale de 2 Mo : réduisez-le ou saisissez la lettre en texte.";
            else
            {
                using var memory = new MemoryStream();
                await file.CopyToAsync(memory, ct);
                form.LetterPdf = memory.ToArray();
                form.LetterPdfName = Path.GetFileName(file.FileName);
                if (!IsPdf(form.LetterPdf))
                {
                    errors["lettre-pdf"] = $"Le fichier « {form.LetterPdfName} » n'est pas un PDF.";
                    form.LetterPdf = null;
                }
            }
        }
        else if (V("lettre-pdf-conserve") is { Length: > 0 } kept)
        {
            // A PDF accepted by an earlier, refused submission: carried in the page so the user does not upload it again.
            try
            {
                form.LetterPdf = Convert.FromBase64String(kept);
                form.LetterPdfName = V("lettre-pdf-nom");
                if (form.LetterPdf.Length > MaxPdfBytes || !IsPdf(form.LetterPdf)) form.LetterPdf = null;
            }
            catch (FormatException)
            {
                form.LetterPdf = null;
            }
        }
        return (form, errors);
    }

    public static bool IsPdf(byte[] data) => data.Length > 4 && data[0] == '%' && data[1] == 'P' && data[2] == 'D' && data[3] == 'F' && data[4] == '-';

    /// <summary>The checks that need no profile (can it be written at all?), each a French message for its field.</summary>
    public void Check(Dictionary<string, string> errors, bool newStay, bool referralExists, bool appointmentExists)
    {
        if (!Regex.IsMatch(Key, "^[a-z0-9]{16,32}$")) errors["cle"] = "Ce formulaire est incomplet : rechargez la page.";
        if (newStay && Entry.Length == 0) errors["entree"] = "Indiquez la date d'entrée en détention (jj/mm/aaaa).";
        else if (Entry.Length > 0 && ParseDate(Entry) is null) errors["entree"] = DateMessage;
        if (Release.Length == 0) errors["sortie"] = "Indiquez la date de sortie, prévue ou effective (jj/mm/aaaa).";
        else if (ParseDate(Release) is null) errors["sortie"] = DateMessage;
        else if (ParseDate(Entry) is { } entry && ParseDate(Release) is { } release && release < entry) errors["sortie"] = "La date de sortie est antérieure à la date d'entrée.";
        if (ReleaseTime.Length > 0 && ParseTime(ReleaseTime) is null) errors["sortie-heure"] = TimeMessage;
        if (ExitKind.Length > 0 && !ExitKinds.Any(k => k.Code == ExitKind)) errors["type-sortie"] = "Choisissez un type de sortie de la liste.";

        foreach (var line in Prescriptions.Where(l => !l.IsEmpty))
        {
            var p = line.Prefix;
            if (line.Medication.Length == 0) errors[p] = "Choisissez le médicament.";
            else if (line.Medication == OtherMedication && !Regex.IsMatch(line.Code, "^[A-Z][0-9]{2}[A-Z]{2}[0-9]{2}$"))
                errors[p + "-atc"] = "Code ATC invalide : 7 caractères, par exemple N07BC01.";
            else if (line.Medication != OtherMedication && !Medications.Any(m => m.Code == line.Medication)) errors[p] = "Choisissez un médicament de la liste.";
            if (line.Dose.Length == 0) errors[p + "-dose"] = "Indiquez la dose (un nombre, par exemple 8).";
            else if (Number(line.Dose) is not > 0) errors[p + "-dose"] = "Dose invalide : un nombre positif, par exemple 8 ou 0,5.";
            if (!Units.Any(u => u.Code == line.Unit)) errors[p + "-unite"] = "Choisissez l'unité de la dose.";
            if (!Frequencies.Any(f => f.Code == line.Frequency)) errors[p + "-frequence"] = "Choisissez la fréquence.";
            if (line.Duration.Length == 0) errors[p + "-duree"] = "Indiquez la durée du traitement en jours.";
            else if (WholeNumber(line.Duration) is not > 0) errors[p + "-duree"] = "Durée invalide : un nombre entier de jours, par exemple 28.";
            // 0 is a number: whether a bridging supply may cover 0 days is the profile's rule (fs-bridging-1), asked of the gateway.
            if (line.BridgingDays.Length > 0 && WholeNumber(line.BridgingDays) is not >= 0) errors[p + "-depannage"] = "Dépannage invalide : un nombre entier de jours.";
            if (line.BridgingQuantity.Length > 0 && Number(line.BridgingQuantity) is not >= 0) errors[p + "-depannage-qte"] = "Quantité invalide : un nombre, par exemple 7.";
        }
        if (Naloxone is not ("" or "oui" or "non")) errors["naloxone"] = "Répondez oui ou non.";
        if (LetterText.Trim().Length > 0 && LetterPdf is not null) errors["lettre"] = "Donnez la lettre en texte ou en PDF, pas les deux.";
        if (LetterText.Length > 20_000) errors["lettre"] = "La lettre dépasse 20 000 caractères : joignez-la plutôt en PDF.";

        var wantsAppointment = AppointmentDate.Length > 0 || AppointmentTime.Length > 0 || AppointmentPlace.Length > 0;
        if (!referralExists && Organization.Length == 0 && (ReferralReason.Length > 0 || wantsAppointment))
            errors["structure"] = "Choisissez la structure qui prend le relais.";
        if (!referralExists && Organization.Length > 0 && !ReferralTypes.Any(t => t.Code == ReferralType)) errors["adressage-type"] = "Choisissez le type de suivi.";
        if (wantsAppointment && !appointmentExists)
        {
            if (AppointmentDate.Length == 0) errors["rdv-date"] = "Indiquez la date du rendez-vous (jj/mm/aaaa).";
            else if (ParseDate(AppointmentDate) is null) errors["rdv-date"] = DateMessage;
            if (AppointmentTime.Length == 0) errors["rdv-heure"] = "Indiquez l'heure du rendez-vous (hh:mm).";
            else if (ParseTime(AppointmentTime) is null) errors["rdv-heure"] = TimeMessage;
            if (AppointmentPlace.Length == 0) errors["rdv-lieu"] = "Indiquez le lieu du rendez-vous.";
        }
    }

    private const string DateMessage = "Date invalide : écrivez-la jj/mm/aaaa, par exemple 27/11/2026.";
    private const string TimeMessage = "Heure invalide : écrivez-la hh:mm, par exemple 14:30.";

    /// <summary>dd/MM/yyyy (what the page asks for) or yyyy-MM-dd (what a date picker posts).</summary>
    public static DateOnly? ParseDate(string text) =>
        DateOnly.TryParseExact(text.Trim(), ["dd/MM/yyyy", "d/M/yyyy", "yyyy-MM-dd"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var day) ? day : null;

    /// <summary>14:30, 14h30, 14h.</summary>
    public static TimeOnly? ParseTime(string text)
    {
        var t = text.Trim().Replace('h', ':').Replace('H', ':');
        if (t.EndsWith(':')) t += "00";
        return TimeOnly.TryParseExact(t, ["H:mm", "HH:mm"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var time) ? time : null;
    }

    /// <summary>A decimal written the French way (0,5) or not (0.5).</summary>
    public static decimal? Number(string text) =>
        decimal.TryParse(text.Trim().Replace(',', '.'), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) ? value : null;

    public static int? WholeNumber(string text) =>
        int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
}
