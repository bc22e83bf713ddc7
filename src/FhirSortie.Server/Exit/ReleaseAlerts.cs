using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Exit;

/// <summary>Settings of the release alerts (section "FhirSortie:ReleaseAlerts").</summary>
public sealed class ReleaseAlertOptions
{
    public const string Section = "FhirSortie:ReleaseAlerts";

    /// <summary>Longest time the person may be out before the first appointment once the release was moved earlier (scenario 1: within 48 h).</summary>
    public int MaxGapHours { get; set; } = 48;

    /// <summary>A release closer than this with no accepted hand-off raises an alert.</summary>
    public int HandoffDays { get; set; } = 7;

    /// <summary>How often each node runs the time-driven check (a release entering the hand-off window); 0 turns it off.</summary>
    public int CheckMinutes { get; set; } = 60;
}

/// <summary>
/// The release alerts for the care side (issue 25), as <c>Flag</c> resources: one per detention stay and kind
/// (CodeSystem release-alert-type), <c>status</c> active while the condition holds and inactive once it no longer does,
/// <c>encounter</c> = the stay, <c>subject</c> = the person, <c>code.text</c> saying which dates. A Flag is a warning
/// about the person, not work assigned to someone (that would be a Task with an owner and a state machine), and it is
/// a plain resource of the patient compartment, so the existing Subscriptions (<c>Flag?patient=</c>,
/// <c>Flag?code=...|release-without-accepted-handoff</c>) and outbox announce it, and delivery decides access as the
/// database says then: the stay's author (the USMP, recorded as the Flag's origin) and the organisations a consent lets
/// see Flags of the person. Justice and social actors never see Flags (type-level 403).
/// <para>
/// Computed in the write's own transaction, just before it commits, for every person whose stay, appointment,
/// prescription or Task the write touched (<see cref="Note"/>, <see cref="RecomputeNotedAsync"/>, called by
/// Consent/WriteHook.cs); and by <see cref="ReleaseAlertWorker"/> for the releases time brings within the hand-off window.
/// Several nodes may compute the same alert at once: the stay's row is locked first (PostgreSQL FOR UPDATE; SQLite has
/// one writer), the Flag's id is derived from the stay and kind, and an unchanged Flag is not written again, so there is
/// one Flag per stay and kind and one version (one notification) per real change.
/// </para>
/// </summary>
public sealed class ReleaseAlerts(SearchEngine engine, TimeProvider clock, IOptions<ReleaseAlertOptions> options)
{
    public const string AlertTypes = "https://fhirsortie.fr/fhir/CodeSystem/release-alert-type";
    public const string AlertIdentifiers = "https://fhirsortie.fr/fhir/NamingSystem/release-alert";
    public const string MovedBeforeAppointment = "release-before-appointment";
    public const string NoAcceptedHandoff = "release-without-accepted-handoff";
    public const string SupplyEndsBeforeAppointment = "supply-ends-before-appointment";
    public const string BridgingSupplyUrl = "https://fhirsortie.fr/fhir/StructureDefinition/bridging-supply";

    private static readonly string[] Kinds = [MovedBeforeAppointment, NoAcceptedHandoff, SupplyEndsBeforeAppointment];
    private static readonly HashSet<string> Relevant = new(StringComparer.Ordinal) { "Encounter", "Appointment", "MedicationRequest", "Task" };
    private const int Limit = 200;

    private readonly ReleaseAlertOptions _options = options.Value;
    private readonly ConditionalWeakTable<WriteSession, HashSet<string>> _noted = new();

    public ReleaseAlertOptions Options => _options;

    /// <summary>Before a save: the people whose alerts this write may change.</summary>
    public void Note(WriteSession session, Resource resource)
    {
        if (!Relevant.Contains(resource.TypeName)) return;
        var patients = Consents.PatientReferences.Of(resource);
        if (patients.Count > 0) _noted.GetOrCreateValue(session).UnionWith(patients);
    }

    /// <summary>Just before the session commits: the alerts of every person noted, in its transaction.</summary>
    public async System.Threading.Tasks.Task RecomputeNotedAsync(WriteSession session, CancellationToken ct)
    {
        if (!_noted.TryGetValue(session, out var patients)) return;
        _noted.Remove(session);
        foreach (var patient in patients.Order(StringComparer.Ordinal)) await RecomputeAsync(session, patient, clock.GetUtcNow(), ct);
    }

    /// <summary>Raises or lowers the alerts of every detention stay of <paramref name="patient"/>, as of <paramref name="now"/>.</summary>
    public async Task<int> RecomputeAsync(WriteSession session, string patient, DateTimeOffset now, CancellationToken ct)
    {
        var reference = "Patient/" + patient;
        var stays = await FindAsync(session, "Encounter", ct, ("patient", reference), ("type", $"{ReleaseDates.EncounterTypes}|{ReleaseDates.DetentionStayCode}"));
        if (stays.Count == 0) return 0;
        var written = 0;
        foreach (var found in stays.OrderBy(s => s.Id, StringComparer.Ordinal))
        {
            // The lock that makes concurrent computations of this stay's alerts (other nodes, other writes) take turns.
            if (await session.ReadForUpdateAsync("Encounter", found.Id, ct) is not { Deleted: false, Json: { } json }
                || FhirResponse.ParseStored(json) is not Encounter stay) continue;
            var wanted = stay.Status == Encounter.EncounterStatus.InProgress && ReleaseDates.Instant(stay.Period?.End) is { } release
                ? await EvaluateAsync(session, reference, stay, release, now, ct)
                : new Dictionary<string, string>();
            foreach (var kind in Kinds)
                if (await SetAsync(session, stay, patient, kind, wanted.GetValueOrDefault(kind), now, ct)) written++;
        }
        return written;
    }

    /// <summary>The alerts that hold for an in-progress stay with a planned release, each with the text saying why.</summary>
    private async Task<Dictionary<string, string>> EvaluateAsync(WriteSession session, string patient, Encounter stay, DateTimeOffset release, DateTimeOffset now, CancellationToken ct)
    {
        var wanted = new Dictionary<string, string>(StringComparer.Ordinal);
        var releaseDay = new DateTimeOffset(release.UtcDateTime.Date, TimeSpan.Zero);
        var appointments = (await FindAsync(session, "Appointment", ct, ("patient", patient), ("status", "proposed,pending,booked,arrived,checked-in,waitlist")))
            .Select(Parse).OfType<Appointment>()
            .Select(a => a.Start).OfType<DateTimeOffset>()
            .Where(start => start >= releaseDay).Order().ToList();
        DateTimeOffset? first = appointments.Count > 0 ? appointments[0] : null;
        var planned = $"planned release {stay.Period!.End} ({stay.GetExtensionValue<Code>(ReleaseDates.CertaintyUrl)?.Value ?? "certainty not given"})";

        if (first is { } appointment && appointment - release > TimeSpan.FromHours(_options.MaxGapHours)
            && await LatestPlannedBeforeAsync(session, stay.Id!, ct) is { } previous && previous > release)
            wanted[MovedBeforeAppointment] = $"Release moved earlier: {planned}; first appointment {Day(appointment)}, more than {_options.MaxGapHours} h after it.";

        if (release - now <= TimeSpan.FromDays(_options.HandoffDays))
        {
            var tasks = (await FindAsync(session, "Task", ct, ("patient", patient))).Select(Parse).OfType<Hl7.Fhir.Model.Task>().Where(HandoffTasks.IsHandoff).ToList();
            var accepted = tasks.Any(t => t.Status is Hl7.Fhir.Model.Task.TaskStatus.Accepted or Hl7.Fhir.Model.Task.TaskStatus.InProgress or Hl7.Fhir.Model.Task.TaskStatus.Completed);
            if (!accepted)
                wanted[NoAcceptedHandoff] = $"Release within {_options.HandoffDays} days ({planned}) and no hand-off accepted ({tasks.Count} hand-off task(s)).";
        }

        if (first is { } next)
        {
            foreach (var prescription in (await FindAsync(session, "MedicationRequest", ct, ("patient", patient), ("status", "active"))).Select(Parse).OfType<MedicationRequest>())
            {
                if (prescription.GetExtension(BridgingSupplyUrl) is not { } supply
                    || supply.GetExtensionValue<Duration>("daysSupply")?.Value is not { } days) continue;
                var from = ReleaseDates.Instant(supply.GetExtensionValue<FhirDateTime>("handedOver")?.Value) ?? release;
                var ends = from.AddDays((double)days);
                if (ends >= next) continue;
                wanted[SupplyEndsBeforeAppointment] = $"Bridging supply of {days} day(s) ends {Day(ends)}, before the first appointment {Day(next)} ({planned}).";
                break;
            }
        }
        return wanted;
    }

    /// <summary>The latest planned release date any earlier version of the stay carried (null when there is none).</summary>
    private static async Task<DateTimeOffset?> LatestPlannedBeforeAsync(WriteSession session, string stay, CancellationToken ct)
    {
        await using var cmd = Sql.Command(session.Connection, session.Transaction,
            "SELECT json FROM resource_versions WHERE type = 'Encounter' AND id = @i AND json IS NOT NULL ORDER BY version").With("@i", stay);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var dates = new List<DateTimeOffset>();
        while (await reader.ReadAsync(ct))
        {
            if (FhirResponse.ParseStored(reader.GetFieldValue<byte[]>(0)) is Encounter version && ReleaseDates.Instant(version.Period?.End) is { } date) dates.Add(date);
        }
        // The last version is the one being decided on: only the ones before it count.
        return dates.Count > 1 ? dates.SkipLast(1).Max() : null;
    }

    /// <summary>Writes the Flag when its state or text changes; true when a version was written.</summary>
    private static async Task<bool> SetAsync(WriteSession session, Encounter stay, string patient, string kind, string? why, DateTimeOffset now, CancellationToken ct)
    {
        var id = FlagId(stay.Id!, kind);
        var current = await session.ReadForUpdateAsync("Flag", id, ct);
        var existing = current is { Deleted: false, Json: { } json } ? FhirResponse.ParseStored(json) as Flag : null;
        var active = existing?.Status == Flag.FlagStatus.Active;
        if (why is null && !active) return false;
        if (why is not null && active && existing!.Code?.Text == why) return false;
        var flag = existing ?? new Flag
        {
            Id = id,
            Identifier = [new Identifier(AlertIdentifiers, $"{stay.Id}/{kind}")],
            Category = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/flag-category", "admin")],
            Subject = new ResourceReference("Patient/" + patient),
            Encounter = new ResourceReference("Encounter/" + stay.Id),
        };
        flag.Meta = null;
        flag.Code = new CodeableConcept(AlertTypes, kind) { Text = why ?? existing?.Code?.Text };
        flag.Status = why is null ? Flag.FlagStatus.Inactive : Flag.FlagStatus.Active;
        var stamp = now.ToString("yyyy-MM-ddTHH:mm:ssK", System.Globalization.CultureInfo.InvariantCulture);
        flag.Period = why is null
            ? new Period { Start = flag.Period?.Start ?? stamp, End = stamp }
            : new Period { Start = active ? flag.Period?.Start ?? stamp : stamp };
        if (current is null)
        {
            // The alert belongs to the stay's author (the USMP), not to whoever's write raised it (a SPIP setting the date).
            await using var origin = Sql.Command(session.Connection, session.Transaction,
                "INSERT INTO resource_origin (type, id, finess) SELECT 'Flag', @f, finess FROM resource_origin WHERE type = 'Encounter' AND id = @e " +
                "ON CONFLICT (type, id) DO NOTHING").With("@f", id).With("@e", stay.Id);
            await origin.ExecuteNonQueryAsync(ct);
        }
        // The gateway's own record: the caller's scopes decide what it may write, not whether alerts are kept; and not
        // the caller's write, so it is traced here rather than in the Provenance of the write that led to it.
        var saved = await session.SaveGatewayRecordAsync(flag, ct, current, current is null ? "POST" : "PUT");
        await TraceAsync(session, saved, stay, now, ct);
        return true;
    }

    /// <summary>
    /// The Flag version's own Provenance, whether a client's write or the periodic check led to it: the gateway is its
    /// author, derived from the stay's version it was computed on. A Provenance shows to whoever may see all its targets
    /// (issue 21 §3): in one of its own, the Flag never hides the trace of the write beside it (a CSAPA whose consent names
    /// the exit package's classes but not Flag keeps the package's Provenance). Its origin is the stay's author, like the Flag's.
    /// </summary>
    private static async System.Threading.Tasks.Task TraceAsync(WriteSession session, StoredResource flag, Encounter stay, DateTimeOffset now, CancellationToken ct)
    {
        var provenance = new Provenance
        {
            Id = FhirRequest.NewId(),
            Target = [new ResourceReference($"Flag/{flag.Id}/_history/{flag.Version}")],
            RecordedElement = new Instant(now),
            Activity = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-DataOperation", flag.Version == 1 ? "CREATE" : "UPDATE"),
            Agent =
            [
                new Provenance.AgentComponent
                {
                    Type = new CodeableConcept("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author"),
                    Who = new ResourceReference { Display = Audit.AuditRecords.GatewayName },
                },
            ],
            Entity =
            [
                new Provenance.EntityComponent
                {
                    Role = Provenance.ProvenanceEntityRole.Derivation,
                    What = new ResourceReference($"Encounter/{stay.Id}/_history/{stay.Meta?.VersionId}"),
                },
            ],
        };
        await using (var origin = Sql.Command(session.Connection, session.Transaction,
            "INSERT INTO resource_origin (type, id, finess) SELECT 'Provenance', @p, finess FROM resource_origin WHERE type = 'Encounter' AND id = @e " +
            "ON CONFLICT (type, id) DO NOTHING").With("@p", provenance.Id).With("@e", stay.Id))
        {
            await origin.ExecuteNonQueryAsync(ct);
        }
        await session.SaveGatewayRecordAsync(provenance, ct);
    }

    private const string FlagIdPrefix = "release-alert-";

    /// <summary>One id per stay and kind (so concurrent computations meet on one row); a hash keeps it within FHIR's 64 characters.</summary>
    public static string FlagId(string stay, string kind) =>
        FlagIdPrefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(stay + "|" + kind)))[..32];

    private async Task<IReadOnlyList<StoredResource>> FindAsync(WriteSession session, string type, CancellationToken ct, params (string Key, string Value)[] query) =>
        await engine.FindAsync(session.Connection, session.Transaction, type, query.Select(p => new KeyValuePair<string, string>(p.Key, p.Value)).ToList(),
            AccessFilter.None, Limit, ct);

    private static Resource? Parse(StoredResource stored) => stored.Json is { } json ? FhirResponse.ParseStored(json) : null;

    private static string Day(DateTimeOffset instant) => instant.ToString("yyyy-MM-dd HH:mm 'UTC'", System.Globalization.CultureInfo.InvariantCulture);
}
