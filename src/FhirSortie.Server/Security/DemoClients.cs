namespace FhirSortie.Server.Security;

/// <summary>
/// The demo clients of issue 3, seeded only in demo mode (FhirSortie:DemoMode; on by default in Development on the
/// embedded SQLite store, never in Production). Each secret is "&lt;client id&gt;-secret": public knowledge.
/// </summary>
public static class DemoClients
{
    public const string DemoModeKey = "FhirSortie:DemoMode";

    public static IReadOnlyList<ClientOptions> All { get; } =
    [
        Demo("usmp-demo", ActorKind.Usmp, "750000010", "USMP de la maison d'arrêt (demo)", "system/*.cruds"),
        Demo("csapa-demo", ActorKind.Csapa, "750000028", "CSAPA Les Tilleuls (demo)", "system/*.rs system/Task.u"),
        Demo("csapa2-demo", ActorKind.Csapa, "930000039", "CSAPA Bastide (demo)", "system/*.rs system/Task.u"),
        Demo("act-demo", ActorKind.Act, "750000044", "ACT Horizon (demo)", "system/*.rs system/Task.u"),
        // An EHR-launched app: patient/ scopes for the launch patient, user/ read of the care team's contacts (outside
        // the patient compartment), and a loopback redirect URI (RFC 8252) so the demo can run the code flow.
        Demo("telemed-demo", ActorKind.Telemedicine, "750000051", "Téléconsultation (demo)",
            "launch launch/patient openid fhirUser patient/*.rs patient/*.c user/Practitioner.rs user/PractitionerRole.rs user/Organization.rs user/Location.rs",
            [TelemedicineRedirectUri]),
        // DocumentReference: attendance attestations only (the consent rule hides every other document from justice).
        Demo("spip-demo", ActorKind.Justice, "750000069", "SPIP de Paris (demo)", "system/Patient.rs system/Appointment.rs system/DocumentReference.rs"),
        Demo("audit-demo", ActorKind.Auditor, "750000077", "DPO (demo)", "system/AuditEvent.rs system/Provenance.rs"),
        // A public-health observer (issue 24): the continuity indicators only, never a patient resource.
        Demo("ars-observatoire", ActorKind.Observer, "750000093", "ARS Île-de-France, observatoire de la continuité des soins (demo)", "system/Measure.rs system/MeasureReport.r"),
    ];

    public const string TelemedicineRedirectUri = "http://127.0.0.1:8765/callback";

    private static ClientOptions Demo(string id, ActorKind kind, string finess, string name, string scopes, List<string>? redirectUris = null) => new()
    {
        RedirectUris = redirectUris ?? [],
        ClientId = id,
        Secret = id + "-secret",
        ActorKind = kind.ToString(),
        OrganizationFiness = finess,
        OrganizationName = name,
        AllowedScopes = scopes,
        // Demo receivers run on this machine (any port, under /notify/<client id>); never anything off-host.
        NotificationEndpoints = [$"http://127.0.0.1/notify/{id}"],
    };

    /// <summary>
    /// Demo mode: explicit setting wins, except that Production never runs it; by default on only in Development on
    /// the embedded SQLite store (a developer's machine), so a real deployment never gets public secrets by accident.
    /// </summary>
    public static bool IsOn(IConfiguration configuration, IHostEnvironment environment)
    {
        if (environment.IsProduction()) return false;
        if (configuration.GetValue<bool?>(DemoModeKey) is { } configured) return configured;
        var provider = configuration["FhirSortie:Storage:Provider"] ?? "Sqlite";
        return environment.IsDevelopment() && provider.Equals("Sqlite", StringComparison.OrdinalIgnoreCase);
    }
}
