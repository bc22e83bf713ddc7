extern alias server;
using System.Globalization;
using server::FhirSortie.Server.Demo;

namespace FhirSortie.Bench.Scale;

/// <summary>
/// The fictitious national year of the scale bench: 24 prisons (their USMPs), 6 CSAPAs and 2 ACTs receiving the
/// people released, three prescribers per USMP, one gateway client per organisation and one auditor. Everything is
/// computed from indices, so the loader, the audit filler and the measuring gateway agree without sharing state.
/// </summary>
public static class ScaleWorld
{
    public const int Prisons = 24;
    public const int Receivers = 8;
    public const int CsapaCount = 6;
    public const int DoctorsPerPrison = 3;

    /// <summary>The first day of the year of releases; "now" of the data set is its last day.</summary>
    public static readonly DateTime YearStart = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    public static readonly DateTime Now = YearStart.AddDays(340);

    private static readonly int[] Departments = [13, 31, 33, 35, 38, 44, 59, 62, 67, 69, 75, 76, 77, 78, 83, 84, 91, 92, 93, 94, 95, 34, 06, 57];

    public static string UsmpFiness(int prison) => DemoIdentifiers.WithLuhnKey($"{Departments[prison]:D2}6{prison:D2}001");

    public static string ReceiverFiness(int receiver) => DemoIdentifiers.WithLuhnKey($"{Departments[receiver * 3]:D2}7{receiver:D2}002");

    public static bool IsCsapa(int receiver) => receiver < CsapaCount;

    public static string DoctorRpps(int prison, int doctor) => $"1{prison:D3}{doctor:D6}";

    public static string UsmpClient(int prison) => $"scale-usmp-{prison:D2}";

    public static string ReceiverClient(int receiver) => $"scale-{(IsCsapa(receiver) ? "csapa" : "act")}-{receiver}";

    public const string AuditorClient = "scale-auditor";

    /// <summary>The INS namespace of the data set (the demo one: never a real person's NIR).</summary>
    public const string InsSystem = DemoIdentifiers.InsDemo;

    public static string Secret(string client) => client + "-secret-local-only";

    /// <summary>"id:secret", as BenchToken and the wrk runner take it.</summary>
    public static string Credentials(string client) => client + ":" + Secret(client);

    /// <summary>The gateway's client settings (FhirSortie:Clients:N:...) for every organisation of the world.</summary>
    public static IEnumerable<KeyValuePair<string, string>> ClientSettings()
    {
        var clients = new List<(string Id, string Kind, string Finess, string Scopes)>();
        for (var p = 0; p < Prisons; p++) clients.Add((UsmpClient(p), "Usmp", UsmpFiness(p), "system/*.cruds"));
        for (var r = 0; r < Receivers; r++) clients.Add((ReceiverClient(r), IsCsapa(r) ? "Csapa" : "Act", ReceiverFiness(r), "system/*.rs system/Task.u"));
        clients.Add((AuditorClient, "Auditor", DemoIdentifiers.WithLuhnKey("75099900"), "system/AuditEvent.rs system/Provenance.rs system/Patient.rs"));
        for (var i = 0; i < clients.Count; i++)
        {
            var (id, kind, finess, scopes) = clients[i];
            var prefix = "FhirSortie:Clients:" + i.ToString(CultureInfo.InvariantCulture) + ":";
            yield return new(prefix + "ClientId", id);
            yield return new(prefix + "Secret", Secret(id));
            yield return new(prefix + "ActorKind", kind);
            yield return new(prefix + "OrganizationFiness", finess);
            yield return new(prefix + "AllowedScopes", scopes);
        }
    }
}
