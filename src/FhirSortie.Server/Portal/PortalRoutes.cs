namespace FhirSortie.Server.Portal;

/// <summary>The portal's paths, in one table: French words, opaque ids only (never a name, INS or birth date).</summary>
public static class PortalRoutes
{
    public const string Root = "/portal";
    public const string Home = Root + "/";
    public const string SignIn = Root + "/connexion";
    public const string Callback = Root + "/callback";
    public const string SignOut = Root + "/deconnexion";
    public const string Styles = Root + "/portal.css";
    public const string Inbox = Root + "/prises-en-charge";
    public const string Sorties = Root + "/sorties";
    public const string Spip = Root + "/spip";
    public const string AccessReport = Root + "/rapport-acces";
    public const string Consent = Root + "/consentement";
    public const string NewExit = Sorties + "/nouvelle";
    public const string Indicators = Root + "/indicateurs";
    public const string IndicatorsCsv = Indicators + "/csv";

    public static string Handoff(string? taskId) => $"{Inbox}/{Uri.EscapeDataString(taskId ?? "")}";
    public static string Ordonnance(string? taskId) => Handoff(taskId) + "/ordonnance";
    public static string Letter(string? taskId) => Handoff(taskId) + "/lettre";
    public static string SpipPerson(string? patientId) => $"{Spip}/{Uri.EscapeDataString(patientId ?? "")}";
    public static string Report(string? patientId) => $"{AccessReport}/{Uri.EscapeDataString(patientId ?? "")}";
    public static string ConsentFor(string? taskId) => $"{Consent}/{Uri.EscapeDataString(taskId ?? "")}";
    public static string ConsentSheet(string? taskId, string? consentId) => ConsentFor(taskId) + "/fiche/" + Uri.EscapeDataString(consentId ?? "");
    public static string ConsentSigned(string? taskId) => ConsentFor(taskId) + "/fiche-signee";
    public static string ConsentWithdraw(string? taskId) => ConsentFor(taskId) + "/retrait";
    /// <summary>The exit-package form: a new stay for the person, or completing the stay given.</summary>
    public static string ExitPackage(string? patientId, string? stayId) =>
        $"{Sorties}/dossier/{Uri.EscapeDataString(patientId ?? "")}" + (stayId is null ? "" : "/" + Uri.EscapeDataString(stayId));
}
