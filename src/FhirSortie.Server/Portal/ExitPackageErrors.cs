using System.Text.RegularExpressions;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Portal;

/// <summary>
/// The gateway's OperationOutcome issues put back next to the form fields, in French. An issue names its resource by the
/// entry it came from (<c>Bundle.entry[n]</c> for the transaction, the resource validated for <c>$validate</c>), and its
/// element by its expression (<c>MedicationRequest.extension[0]</c>) or, in a transaction answer whose expression is only
/// the entry, by the rule its diagnostics name (<c>fs-bridging-1: …</c>, <c>MedicationRequest.dosageInstruction: …</c>).
/// </summary>
public static class ExitPackageErrors
{
    /// <summary>A French message for one field, with the gateway's own wording (English, technical) kept beside it.</summary>
    public sealed record FieldError(string Field, string Message, string? Detail);

    /// <summary>Issues of the $validate of the entry built from <paramref name="entryField"/> (errors only; warnings pass).</summary>
    public static IEnumerable<FieldError> FromValidation(string entryField, OperationOutcome outcome) =>
        outcome.Issue.Where(IsError).Select(issue => ForIssue(entryField, issue));

    /// <summary>Issues of a refused transaction: each names the failing entry; <paramref name="entryFields"/> says which field built it.</summary>
    public static IEnumerable<FieldError> FromTransaction(IReadOnlyList<string> entryFields, OperationOutcome outcome)
    {
        foreach (var issue in outcome.Issue.Where(IsError))
        {
            var where = string.Join(' ', issue.Expression.Concat(issue.Location));
            var match = Regex.Match(where, @"Bundle\.entry\[(\d+)\]");
            var field = match.Success && int.TryParse(match.Groups[1].Value, out var index) && index < entryFields.Count ? entryFields[index] : "";
            yield return field.Length == 0 ? new FieldError("", Message(issue), issue.Diagnostics) : ForIssue(field, issue);
        }
    }

    private static bool IsError(OperationOutcome.IssueComponent issue) =>
        issue.Severity is OperationOutcome.IssueSeverity.Error or OperationOutcome.IssueSeverity.Fatal;

    private static FieldError ForIssue(string entryField, OperationOutcome.IssueComponent issue)
    {
        var text = string.Join(' ', issue.Expression.Concat(issue.Location)) + " " + (issue.Diagnostics ?? "");
        return new FieldError(Field(entryField, text), Message(issue), issue.Diagnostics);
    }

    /// <summary>Which field of the entry's part of the form the element belongs to.</summary>
    public static string Field(string entryField, string where)
    {
        bool Has(params string[] words) => words.Any(w => where.Contains(w, StringComparison.Ordinal));
        if (entryField.StartsWith("med", StringComparison.Ordinal))
        {
            if (Has("fs-bridging", "extension")) return entryField + "-depannage";
            if (Has("fs-mr-1", "dosageInstruction")) return entryField + "-dose";
            // ".medication", not "medication": the fr-medicationrequest profile's url, in every diagnostics, holds the word.
            if (Has("fs-exit-1", ".medication")) return entryField;
            if (Has("dispenseRequest")) return entryField + "-duree";
            return entryField;
        }
        return entryField switch
        {
            "sejour" when Has("fs-stay-3", "dischargeDisposition") => "type-sortie",
            "sejour" when Has("destination") => "destination",
            "sejour" when Has("period.start") => "entree",
            "sejour" => "sortie",
            "adressage" when Has("fs-ref-1", "reason") => "adressage-motif",
            "adressage" when Has("ServiceRequest.code") => "adressage-type",
            "adressage" or "relais" => "structure",
            "rdv" when Has("participant") => "rdv-lieu",
            "rdv" => "rdv-date",
            _ => entryField,
        };
    }

    /// <summary>The rule broken, said in French; the rules of our profiles by their key, the generic checks by their kind.</summary>
    public static string Message(OperationOutcome.IssueComponent issue)
    {
        var diagnostics = issue.Diagnostics ?? "";
        bool Has(string word) => diagnostics.Contains(word, StringComparison.Ordinal);
        if (Has("fs-bridging-1")) return "Le dépannage doit couvrir au moins 1 jour (0 jour n'est pas un dépannage).";
        if (Has("fs-ref-1")) return "Indiquez le motif de l'adressage.";
        if (Has("fs-ref-2") || Has("fs-ref-3")) return "La structure d'adressage doit être désignée par son numéro FINESS valide.";
        if (Has("fs-stay-3")) return "La sortie est effectuée : indiquez le type de sortie.";
        if (Has("fs-stay-5")) return "La date de sortie est hors de la fenêtre de sortie connue.";
        if (Has("fs-enc-1")) return "Une sortie effectuée doit avoir sa date.";
        if (Has("fs-exit-1")) return "Le médicament doit être codé en ATC.";
        if (Has("fs-mr-1")) return "Indiquez la posologie.";
        if (Has("fs-handoff-1")) return "Un relais refusé doit dire pourquoi.";
        if (Has("no code given")) return "Choisissez une valeur dans la liste.";
        if (Has("is not in the")) return "Ce code n'est pas dans la liste admise par les profils de sortie.";
        if (Has("minimum cardinality")) return "Cette information est obligatoire.";
        if (Has("maximum cardinality")) return "Une seule valeur est admise ici.";
        return issue.Code switch
        {
            OperationOutcome.IssueType.Forbidden or OperationOutcome.IssueType.Security => "La passerelle refuse cet enregistrement (droits ou consentement).",
            OperationOutcome.IssueType.Conflict => "Le dossier a changé entre-temps : rechargez la page puis recommencez.",
            OperationOutcome.IssueType.Duplicate or OperationOutcome.IssueType.MultipleMatches => "Cet élément existe déjà en plusieurs exemplaires : rechargez la page.",
            _ => "La passerelle refuse cette valeur.",
        };
    }
}
