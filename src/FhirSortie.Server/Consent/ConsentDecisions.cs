using System.Data.Common;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Consents;

/// <summary>
/// The decision point: loads what the database says about the patient (grant rows from stored Consents and the
/// patient's care team, break-the-glass grants, who wrote the resource) and applies <see cref="AccessRules"/>.
/// Nothing is cached: every request reads the committed state, so a withdrawal is effective at once on every node.
/// </summary>
public sealed class ConsentDecisions(ResourceStore store, TimeProvider clock)
{
    /// <summary>How long a break-the-glass grant lasts (short on purpose: an emergency, not a standing permission).</summary>
    public TimeSpan BreakGlassDuration { get; init; } = TimeSpan.FromMinutes(60);

    public async Task<AccessDecision> DecideAsync(AccessRequest request, PurposeOfUse purpose, CancellationToken ct)
    {
        await using var connection = await store.OpenAsync(ct);
        return await DecideAsync(connection, request, purpose, ct);
    }

    /// <summary>The decision for a stored resource: its patients, labels and author organisation come from the index tables.</summary>
    public async Task<AccessDecision> DecideForStoredAsync(Caller caller, PurposeOfUse purpose, StoredResource resource, CancellationToken ct)
    {
        if (resource.Type == "Provenance" && caller.Kind != ActorKind.Auditor && resource.Json is { } json
            && FhirSortie.Server.Rest.FhirFormat.Parse(json, FhirSortie.Server.Rest.WireFormat.Json) is Hl7.Fhir.Model.Provenance { Target.Count: > 0 } provenance)
        {
            return await DecideForProvenanceAsync(caller, purpose, provenance, ct);
        }
        await using var connection = await store.OpenAsync(ct);
        var patients = await StringsAsync(connection,
            // "|| ''" keeps these three lookups on the rkey indexes: without statistics SQLite picks the (compartment_type, ...)
            // and (param, ...) indexes and walks every Patient compartment row / every label of the database (see ResourceStore.ReadOriginAsync).
            "SELECT compartment_id FROM resource_compartment WHERE rkey = @k AND compartment_type || '' = 'Patient'", resource.Key, ct);
        var labels = await StringsAsync(connection,
            "SELECT code FROM search_token WHERE rkey = @k AND param || '' = '_security' AND code IS NOT NULL", resource.Key, ct);
        var attestation = resource.Type == "DocumentReference" && (await StringsAsync(connection,
            $"SELECT code FROM search_token WHERE rkey = @k AND param || '' = 'category' AND system = '{AccessRules.DocumentCategories}'", resource.Key, ct))
            .Contains(AccessRules.AttendanceAttestationCategory);
        string? author;
        await using (var cmd = Sql.Command(connection, null, "SELECT finess FROM resource_origin WHERE type = @t AND id = @i")
            .With("@t", resource.Type).With("@i", resource.Id))
        {
            author = await cmd.ExecuteScalarAsync(ct) as string;
        }
        if (patients.Count == 0)
            return await DecideAsync(connection, new AccessRequest(caller, purpose.Code, null, resource.Type, labels, author, attestation), purpose, ct);
        // A resource about several patients is shown only when every one of them allows it.
        AccessDecision? last = null;
        foreach (var patient in patients.Distinct(StringComparer.Ordinal))
        {
            last = await DecideAsync(connection, new AccessRequest(caller, purpose.Code, patient, resource.Type, labels, author, attestation), purpose, ct);
            if (!last.Permitted) return last;
        }
        return last!;
    }

    /// <summary>
    /// A Provenance is the trace of a write: visible to whoever may see every one of its targets as they are now (a
    /// named CSAPA reading a prescription sees who wrote it), hidden when any target is hidden, unknown or deleted.
    /// Deciding the targets never opens a break-the-glass grant.
    /// </summary>
    public async Task<AccessDecision> DecideForProvenanceAsync(Caller caller, PurposeOfUse purpose, Hl7.Fhir.Model.Provenance provenance, CancellationToken ct)
    {
        var quiet = purpose with { BreakGlassReason = null };
        AccessDecision? last = null;
        foreach (var reference in provenance.Target.Select(t => t.Reference).Distinct(StringComparer.Ordinal))
        {
            var parts = reference?.Split('/');
            if (parts is not { Length: 2 or 4 }) return AccessDecision.Deny("a target of the Provenance is not a resource of this server");
            var target = await store.ReadAsync(parts[0], parts[1], ct);
            if (target is null) return AccessDecision.Deny("a target of the Provenance is unknown");
            // A deleted target has lost its index rows: only the organisation that wrote it still sees its trace.
            last = target.Deleted
                ? await AuthorOfAsync(target.Type, target.Id, ct) is { } author && author == caller.OrganizationFiness && AccessRules.IsCareActor(caller.Kind)
                    ? AccessDecision.Permit("author organisation") : AccessDecision.Deny("a target of the Provenance is deleted")
                : await DecideForStoredAsync(caller, quiet, target, ct);
            if (!last.Permitted) return AccessDecision.Deny("a target of the Provenance is hidden from this caller");
        }
        return last is null ? AccessDecision.Deny("the Provenance has no target") : AccessDecision.Permit("every target of the Provenance is visible", last.ConsentId);
    }

    private async Task<string?> AuthorOfAsync(string type, string id, CancellationToken ct)
    {
        await using var connection = await store.OpenAsync(ct);
        await using var cmd = Sql.Command(connection, null, "SELECT finess FROM resource_origin WHERE type = @t AND id = @i").With("@t", type).With("@i", id);
        return await cmd.ExecuteScalarAsync(ct) as string;
    }

    /// <summary>
    /// The decision for one version of a resource, from its own content (<paramref name="patients"/> and
    /// <paramref name="labels"/> as that version carried them), on the given connection: inside a write transaction
    /// it sees what the transaction wrote. History, vread and writes to an existing resource decide with it.
    /// </summary>
    public async Task<AccessDecision> DecideForVersionAsync(DbConnection connection, DbTransaction? tx, Caller caller, PurposeOfUse purpose,
        string type, string id, IReadOnlyList<string> patients, IReadOnlyList<string> labels, bool attestation, CancellationToken ct)
    {
        string? author;
        await using (var cmd = Sql.Command(connection, tx, "SELECT finess FROM resource_origin WHERE type = @t AND id = @i").With("@t", type).With("@i", id))
        {
            author = await cmd.ExecuteScalarAsync(ct) as string;
        }
        if (patients.Count == 0)
            return await DecideAsync(connection, new AccessRequest(caller, purpose.Code, null, type, labels, author, attestation), purpose, ct, tx);
        AccessDecision? last = null;
        foreach (var patient in patients.Distinct(StringComparer.Ordinal))
        {
            last = await DecideAsync(connection, new AccessRequest(caller, purpose.Code, patient, type, labels, author, attestation), purpose, ct, tx);
            if (!last.Permitted) return last;
        }
        return last!;
    }

    private async Task<AccessDecision> DecideAsync(DbConnection connection, AccessRequest request, PurposeOfUse purpose, CancellationToken ct, DbTransaction? tx = null)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var rows = request.PatientId is { } patient ? await ConsentGrants.LoadAsync(connection, patient, ct, tx) : [];
        var breakGlass = false;
        if (purpose.IsBreakGlass && request.PatientId is not null && AccessRules.IsCareActor(request.Caller.Kind))
        {
            // Inside a write transaction a grant is honoured but never opened (its insert is its own unit of work).
            breakGlass = await BreakGlassAsync(connection, tx, request.Caller, request.PatientId, tx is null ? purpose.BreakGlassReason : null, now, ct);
        }
        return AccessRules.Decide(request, rows, now, breakGlass);
    }

    /// <summary>
    /// True when the caller holds an unexpired break-the-glass grant for the patient, or opens one now by giving a
    /// reason. The grant is a database row so that every node honours it and auditors can list the episodes.
    /// </summary>
    private async Task<bool> BreakGlassAsync(DbConnection connection, DbTransaction? tx, Caller caller, string patient, string? reason, long now, CancellationToken ct)
    {
        await using (var active = Sql.Command(connection, tx,
            "SELECT 1 FROM break_glass WHERE patient_id = @p AND client_id = @c AND expires > @n")
            .With("@p", patient).With("@c", caller.ClientId).With("@n", now))
        {
            if (await active.ExecuteScalarAsync(ct) is not null) return true;
        }
        if (reason is null) return false;
        var expires = now + (long)BreakGlassDuration.TotalMilliseconds;
        await store.WriteAsync(async session =>
        {
            await using var insert = Sql.Command(session.Connection, session.Transaction,
                "INSERT INTO break_glass (patient_id, client_id, finess, reason, started, expires) VALUES (@p, @c, @f, @r, @s, @e)")
                .With("@p", patient).With("@c", caller.ClientId).With("@f", caller.OrganizationFiness).With("@r", reason)
                .With("@s", now).With("@e", expires);
            await insert.ExecuteNonQueryAsync(ct);
            return true;
        }, ct);
        return true;
    }

    /// <summary>
    /// Opens (or finds open) the caller's break-the-glass grant for the patient, outside any decision on a resource: a
    /// search about that one patient (<see cref="BreakGlassSearch"/>). Returns when the grant ends.
    /// </summary>
    public async Task<DateTimeOffset> OpenBreakGlassAsync(Caller caller, string patient, string reason, CancellationToken ct)
    {
        await using (var connection = await store.OpenAsync(ct))
            await BreakGlassAsync(connection, null, caller, patient, reason, clock.GetUtcNow().ToUnixTimeMilliseconds(), ct);
        return await BreakGlassExpiryAsync(caller, patient, ct) ?? throw new InvalidOperationException("a break-the-glass grant just opened is not found");
    }

    /// <summary>When the caller's break-the-glass grant for the patient ends (for the response's flag), or null.</summary>
    public async Task<DateTimeOffset?> BreakGlassExpiryAsync(Caller caller, string patient, CancellationToken ct)
    {
        await using var connection = await store.OpenAsync(ct);
        await using var cmd = Sql.Command(connection, null, "SELECT MAX(expires) FROM break_glass WHERE patient_id = @p AND client_id = @c")
            .With("@p", patient).With("@c", caller.ClientId);
        return await cmd.ExecuteScalarAsync(ct) is { } value and not DBNull
            ? DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture))
            : null;
    }

    private static async Task<List<string>> StringsAsync(DbConnection connection, string sql, long key, CancellationToken ct)
    {
        await using var cmd = Sql.Command(connection, null, sql).With("@k", key);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var values = new List<string>();
        while (await reader.ReadAsync(ct)) values.Add(reader.GetString(0));
        return values;
    }
}
