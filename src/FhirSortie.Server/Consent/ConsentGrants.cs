using System.Data.Common;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// One row of consent_grants: what a stored Consent (or a Patient's managing organisation) says about one patient.
/// Null members match anything, except <see cref="ActorFiness"/> on a permit, which must name the recipient.
/// </summary>
public sealed record GrantRow(
    string SourceType,
    string SourceId,
    string PatientId,
    string Effect,
    string? ActorFiness,
    string? Class,
    string? Label,
    string? Purpose,
    long? PeriodStart,
    long? PeriodEnd)
{
    public const string Permit = "permit";
    public const string Deny = "deny";
    /// <summary>The patient's managing organisation: the same care team (L.1110-4), no consent needed.</summary>
    public const string Team = "team";

    public bool ActiveAt(long now) => (PeriodStart is not { } start || start <= now) && (PeriodEnd is not { } end || now <= end);
}

/// <summary>
/// Keeps consent_grants in step with stored Consents and Patients: rebuilt for the source resource in the same
/// transaction as its write, so that a withdrawal is effective for the next request on every node.
/// </summary>
public static class ConsentGrants
{
    public const string Finess = "https://finess.esante.gouv.fr";
    public const string ResourceTypes = "http://hl7.org/fhir/resource-types";

    /// <summary>Replaces the rows of <paramref name="resource"/> (a Consent or a Patient) inside the write's transaction.</summary>
    public static async System.Threading.Tasks.Task RebuildAsync(WriteSession session, Resource resource, CancellationToken ct)
    {
        if (resource is not (Hl7.Fhir.Model.Consent or Patient) || resource.Id is null) return;
        await using (var delete = Sql.Command(session.Connection, session.Transaction,
            "DELETE FROM consent_grants WHERE source_type = @t AND source_id = @i").With("@t", resource.TypeName).With("@i", resource.Id))
        {
            await delete.ExecuteNonQueryAsync(ct);
        }
        foreach (var row in await RowsOfAsync(session, resource, ct))
        {
            await using var insert = Sql.Command(session.Connection, session.Transaction,
                "INSERT INTO consent_grants (source_type, source_id, patient_id, effect, actor_finess, class, label, purpose, period_start, period_end) " +
                "VALUES (@st, @si, @p, @e, @a, @c, @l, @pu, @ps, @pe)")
                .With("@st", row.SourceType).With("@si", row.SourceId).With("@p", row.PatientId).With("@e", row.Effect)
                .With("@a", row.ActorFiness).With("@c", row.Class).With("@l", row.Label).With("@pu", row.Purpose)
                .With("@ps", row.PeriodStart).With("@pe", row.PeriodEnd);
            await insert.ExecuteNonQueryAsync(ct);
        }
    }

    /// <summary>The rows a Consent or a Patient makes, its Organization references resolved in the write's transaction.</summary>
    public static async Task<IReadOnlyList<GrantRow>> RowsOfAsync(WriteSession session, Resource resource, CancellationToken ct)
    {
        var finess = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var reference in ActorReferences(resource))
        {
            if (reference.Reference is { } literal && !finess.ContainsKey(literal))
                finess[literal] = await OrganizationFinessAsync(session, literal, ct);
        }
        return resource switch
        {
            Hl7.Fhir.Model.Consent consent => FromConsent(consent, r => Resolve(r, finess)),
            Patient patient => FromPatient(patient, r => Resolve(r, finess)),
            _ => [],
        };
    }

    /// <summary>The rows that apply to a patient now: from sources that still exist (a deleted Consent grants nothing).</summary>
    public static async Task<IReadOnlyList<GrantRow>> LoadAsync(DbConnection connection, string patientId, CancellationToken ct, DbTransaction? tx = null)
    {
        await using var cmd = Sql.Command(connection, tx,
            "SELECT g.source_type, g.source_id, g.patient_id, g.effect, g.actor_finess, g.class, g.label, g.purpose, g.period_start, g.period_end " +
            "FROM consent_grants g JOIN resources s ON s.type = g.source_type AND s.id = g.source_id AND s.deleted = 0 WHERE g.patient_id = @p")
            .With("@p", patientId);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var rows = new List<GrantRow>();
        while (await reader.ReadAsync(ct))
        {
            rows.Add(new GrantRow(
                reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.IsDBNull(7) ? null : reader.GetString(7),
                reader.IsDBNull(8) ? null : reader.GetInt64(8),
                reader.IsDBNull(9) ? null : reader.GetInt64(9)));
        }
        return rows;
    }

    /// <summary>
    /// Flattens an active Consent: the root provision (when it permits) and every nested provision, each
    /// inheriting what its parent constrains (actors, classes, labels, purposes) and the intersection of periods.
    /// A nested provision without type permits. Other statuses (inactive = withdrawn, rejected...) grant nothing.
    /// </summary>
    public static IReadOnlyList<GrantRow> FromConsent(Hl7.Fhir.Model.Consent consent, Func<ResourceReference, string?> finessOf)
    {
        var patient = PatientId(consent.Patient);
        if (consent.Status != Hl7.Fhir.Model.Consent.ConsentState.Active || patient is null || consent.Provision is null || consent.Id is null) return [];
        var rows = new List<GrantRow>();
        var root = consent.Provision;
        Flatten(consent.Id, patient, root, root.Type ?? Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny, isRoot: true, Scope.Empty, finessOf, rows);
        return rows;
    }

    public static IReadOnlyList<GrantRow> FromPatient(Patient patient, Func<ResourceReference, string?> finessOf)
    {
        if (patient.Id is null || patient.ManagingOrganization is null) return [];
        var finess = finessOf(patient.ManagingOrganization);
        return finess is null ? [] : [new GrantRow("Patient", patient.Id, patient.Id, GrantRow.Team, finess, null, null, null, null, null)];
    }

    private sealed record Scope(
        IReadOnlyList<string?> Actors, bool UnresolvedActor, IReadOnlyList<string?> Classes, IReadOnlyList<string?> Labels,
        IReadOnlyList<string?> Purposes, long? Start, long? End)
    {
        public static readonly Scope Empty = new([null], false, [null], [null], [null], null, null);
    }

    private static void Flatten(string consentId, string patient, Hl7.Fhir.Model.Consent.provisionComponent provision,
        Hl7.Fhir.Model.Consent.ConsentProvisionType type, bool isRoot, Scope parent, Func<ResourceReference, string?> finessOf, List<GrantRow> rows)
    {
        var scope = Narrow(provision, parent, finessOf);
        var effect = type == Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit ? GrantRow.Permit : GrantRow.Deny;
        // The root's deny is the default ("nothing unless permitted"), not an objection; only a root permit grants.
        if (!isRoot || effect == GrantRow.Permit) Emit(consentId, patient, effect, scope, rows);
        foreach (var nested in provision.Provision)
            Flatten(consentId, patient, nested, nested.Type ?? Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit, isRoot: false, scope, finessOf, rows);
    }

    private static Scope Narrow(Hl7.Fhir.Model.Consent.provisionComponent p, Scope parent, Func<ResourceReference, string?> finessOf)
    {
        var actors = parent.Actors;
        var unresolved = parent.UnresolvedActor;
        if (p.Actor.Count > 0)
        {
            var resolved = p.Actor.Select(a => a.Reference is null ? null : finessOf(a.Reference)).ToList();
            unresolved = resolved.Any(f => f is null);
            actors = resolved.Where(f => f is not null).Distinct().ToList();
        }
        var classes = p.Class.Count > 0 ? p.Class.Select(c => c.Code).Where(c => c is not null).Distinct().ToList() : parent.Classes;
        var labelCodes = p.SecurityLabel
            .Where(c => c.System is SecurityLabels.ActCode or SecurityLabels.Confidentiality)
            .Concat(p.Code.SelectMany(cc => cc.Coding).Where(c => c.System == SecurityLabels.ActCode))
            .Select(c => c.Code).Where(c => c is not null).Distinct().ToList();
        var labels = labelCodes.Count > 0 ? labelCodes : parent.Labels;
        var purposes = p.Purpose.Count > 0 ? p.Purpose.Select(c => c.Code).Where(c => c is not null).Distinct().ToList() : parent.Purposes;
        // A start past the last instant .NET holds (9999-12-31T23:00:00-05:00) never comes: not "no start".
        var start = Max(parent.Start, p.Period?.StartElement is { Value: { } b } ? Search.ResourceIndexer.DateRange(b)?.Low ?? long.MaxValue : null);
        var end = Min(parent.End, p.Period?.EndElement is { } e ? Search.ResourceIndexer.DateRange(e.Value)?.High : null);
        return new Scope(actors, unresolved, classes, labels, purposes, start, end);
    }

    private static void Emit(string consentId, string patient, string effect, Scope s, List<GrantRow> rows)
    {
        var actors = s.Actors;
        // An actor we cannot resolve to a FINESS: a permit for it grants nobody; a deny for it denies everybody
        // (an objection must never be lost because an Organization reference is wrong).
        if (s.UnresolvedActor && effect == GrantRow.Deny) actors = [null];
        if (effect == GrantRow.Permit) actors = actors.Where(a => a is not null).ToList();
        // One row per actor, class, label and purpose: a provision listing a hundred of each would be 10^8 rows.
        if (rows.Count + (long)actors.Count * s.Classes.Count * s.Labels.Count * s.Purposes.Count > MaxRows)
        {
            throw Rest.FhirException.Error(System.Net.HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.TooCostly,
                $"This Consent's provisions combine into more than {MaxRows} grants (organisations × classes × labels × purposes); split it into several Consents.",
                "Consent.provision");
        }
        foreach (var actor in actors)
        foreach (var cls in s.Classes)
        foreach (var label in s.Labels)
        foreach (var purpose in s.Purposes)
            rows.Add(new GrantRow("Consent", consentId, patient, effect, actor, cls, label, purpose, s.Start, s.End));
    }

    /// <summary>Grants one Consent may make: far above a real one (a few organisations, classes, labels and purposes).</summary>
    private const int MaxRows = 10_000;

    private static long? Max(long? a, long? b) => a is null ? b : b is null ? a : Math.Max(a.Value, b.Value);
    private static long? Min(long? a, long? b) => a is null ? b : b is null ? a : Math.Min(a.Value, b.Value);

    public static string? PatientId(ResourceReference? reference) =>
        reference?.Reference is { } r && r.StartsWith("Patient/", StringComparison.Ordinal) ? r["Patient/".Length..].Split('/')[0] : null;

    private static IEnumerable<ResourceReference> ActorReferences(Resource resource)
    {
        switch (resource)
        {
            case Patient { ManagingOrganization: { } org }:
                yield return org;
                break;
            case Hl7.Fhir.Model.Consent { Provision: { } root }:
                var stack = new Stack<Hl7.Fhir.Model.Consent.provisionComponent>([root]);
                while (stack.Count > 0)
                {
                    var p = stack.Pop();
                    foreach (var a in p.Actor) if (a.Reference is { } r) yield return r;
                    foreach (var n in p.Provision) stack.Push(n);
                }
                break;
        }
    }

    private static string? Resolve(ResourceReference reference, Dictionary<string, string?> finess)
    {
        if (reference.Identifier is { System: Finess, Value: { Length: > 0 } value }) return value;
        return reference.Reference is { } literal && finess.TryGetValue(literal, out var found) ? found : null;
    }

    /// <summary>The FINESS of a stored Organization (identifier system https://finess.esante.gouv.fr), read in the write's transaction.</summary>
    private static async Task<string?> OrganizationFinessAsync(WriteSession session, string literal, CancellationToken ct)
    {
        var parts = literal.Split('/');
        if (parts.Length != 2 || parts[0] != "Organization") return null;
        await using var cmd = Sql.Command(session.Connection, session.Transaction,
            "SELECT st.code FROM resources o JOIN search_token st ON st.rkey = o.rkey AND st.param = 'identifier' AND st.system = @s " +
            "WHERE o.type = 'Organization' AND o.id = @i AND o.deleted = 0")
            .With("@s", Finess).With("@i", parts[1]);
        return await cmd.ExecuteScalarAsync(ct) as string;
    }
}
