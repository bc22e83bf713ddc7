using System.Globalization;
using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Decision = FhirSortie.Server.Security.AccessDecision;

namespace FhirSortie.Server.Consents;

/// <summary>
/// Consent and medical secrecy (issue 5) as an access rule, beside the SMART scopes. Choices:
/// <list type="bullet">
/// <item>Type level (before any work): justice and social actors get 403 on every type they may never see (clinical
/// types), auditors on everything but AuditEvent and Patient, and only auditors read AuditEvents. No consent widens this.</item>
/// <item>A stored resource the caller may not see (read, vread, instance history, batch/transaction GET) is answered
/// 404, like an unknown id, so that the answer does not confirm that the patient has such a resource.</item>
/// <item>Searches, includes, type/system history, compartment searches and $everything get the same rules as SQL
/// (<see cref="ConsentRestriction"/>), so totals and pages never count hidden resources.</item>
/// <item>The decision (reason, permitting consent, break-the-glass) goes on the <see cref="AuditNote"/>.</item>
/// <item>Break-the-glass is opened by a read (GET) with <c>X-Purpose-Of-Use: ETREAT</c> and <c>X-Break-Glass-Reason</c>;
/// it then also widens searches for that patient until it expires. Inside a POSTed batch/transaction an existing grant is
/// honoured but none is opened (the grant is written in its own unit of work, which must not wait on the bundle's).</item>
/// <item>Creates are decided by the scopes only (the author organisation then keeps its rights); a write to an existing
/// resource is decided like a disclosure of its current version (<see cref="DecideVersionAsync"/>, 404 when hidden).</item>
/// </list>
/// Fast path: a care organisation reading what it wrote (the usual backend case) costs one statement (the author's
/// primary-key lookup and the indexed lookup of the resource's patients for the audit row, kept prepared).
/// </summary>
public sealed class ConsentRule(ConsentDecisions decisions, ResourceStore store, IHttpContextAccessor http, TimeProvider clock) : IAccessRule
{
    private static readonly HashSet<Interaction> Disclosing =
        [Interaction.Read, Interaction.VRead, Interaction.HistoryInstance, Interaction.HistoryType, Interaction.SearchType, Interaction.SearchCompartment];

    private static readonly IReadOnlySet<string> AuditorTypes = new HashSet<string>(StringComparer.Ordinal) { "AuditEvent", "Patient", "Provenance" };

    private static readonly IReadOnlySet<string> AdministrativeAndDirectory =
        new HashSet<string>(AccessRules.AdministrativeTypes.Concat(["Organization", "Location"]), StringComparer.Ordinal);

    /// <summary>Labels a permit covers only when it names them (see <see cref="AccessRules.Covers"/>).</summary>
    private static readonly IReadOnlyList<string> RestrictedLabels = [SecurityLabels.VeryRestricted];

    public Decision Decide(Caller caller, Security.AccessRequest request)
    {
        var purpose = Purpose();
        string? reason = null;
        // Justice and social actors: nothing across patients beyond identifying the person they follow.
        if (caller.Kind is ActorKind.Justice or ActorKind.Social && FollowedPersonSearch.Refusal(request) is { } across)
        {
            Note(AccessDecision.Deny(across), purpose);
            return Decision.Deny(across);
        }
        if (request.Type is not { } type) return Decision.Permit;
        if (caller.Kind == ActorKind.Justice && type == "Encounter")
            reason = JusticeEncounter(request);
        else if (caller.Kind is ActorKind.Justice or ActorKind.Social && !AdministrativeAndDirectory.Contains(type))
            reason = $"{type} is clinical or care information, never shared with justice or social actors.";
        else if (caller.Kind == ActorKind.Observer && !Measures.EvaluateMeasure.ObserverTypes.Contains(type))
            reason = $"Public-health observers read the continuity indicators (Measure, MeasureReport) and the directory only, never {type}.";
        else if (caller.Kind == ActorKind.Auditor && !AuditorTypes.Contains(type))
            reason = "Auditors read audit records, provenance and patient identity only.";
        else if (caller.Kind != ActorKind.Auditor && type == "AuditEvent" && Disclosing.Contains(request.Interaction))
            reason = "Only auditors read audit records.";
        if (reason is null) return Decision.Permit;
        Note(AccessDecision.Deny(reason), purpose);
        return Decision.Deny(reason);
    }

    /// <summary>
    /// Issue 25: justice actors read detention stays (which Encounters are stays is decided per resource and in the
    /// search SQL) and write only their release date, through Encounter/{id}/$set-release-date (Exit/SetReleaseDate.cs).
    /// </summary>
    private string? JusticeEncounter(Security.AccessRequest request) => request.Interaction switch
    {
        Interaction.Read or Interaction.VRead or Interaction.HistoryInstance or Interaction.SearchType or Interaction.SearchCompartment => null,
        Interaction.Patch when Exit.SetReleaseDate.IsRunning(http.HttpContext) => null,
        _ => "Justice actors read the detention stay and set its release date only (Encounter/[id]/$set-release-date); nothing else of an Encounter.",
    };

    public Decision DecideInstance(Caller caller, Interaction interaction, ResourceFacts resource) => Decision.Permit;

    public async ValueTask<Decision> DecideStoredAsync(Caller caller, Interaction interaction, StoredResource stored, CancellationToken ct)
    {
        if (stored.Deleted || stored.Json is null) return Decision.Permit;
        var purpose = Purpose();
        AccessDecision decision;
        // The author and the patients in one prepared statement on a kept connection (ResourceStore.ReadOriginAsync).
        var origin = await store.ReadOriginAsync(stored, ct);
        if (AccessRules.IsCareActor(caller.Kind) && caller.PatientId is null && caller.OrganizationFiness is { } finess
            && stored.Type != "AuditEvent" && origin.Finess == finess)
        {
            decision = AccessDecision.Permit("author organisation");
        }
        else
        {
            // A grant is opened by a GET only: a POSTed bundle holds its own unit of work (see the class summary).
            if (purpose.BreakGlassReason is not null && !IsRead(http.HttpContext?.Request.Method)) purpose = purpose with { BreakGlassReason = null };
            decision = await decisions.DecideForStoredAsync(caller, purpose, stored, ct);
        }
        Note(decision, purpose);
        // The audit row names the patient whether the disclosure was permitted or not ("who saw, or tried to see, my data").
        IReadOnlyList<string> patients = stored.Type == "Patient" ? [stored.Id] : origin.Patients;
        if (http.HttpContext is { } context) AuditNote.For(context).Patients.UnionWith(patients);
        if (!decision.Permitted) return Decision.Hide(decision.Reason);
        if (decision.BreakGlass && patients.Count > 0) await FlagBreakGlassAsync(caller, patients[0], ct);
        return Decision.Permit;
    }

    /// <summary>
    /// One version decided on its own content: the patients and labels that version carried (not the current ones),
    /// the resource's author organisation, on the caller's connection (a write's transaction sees its own writes).
    /// A deletion version has no content: the caller decides on the version before it.
    /// </summary>
    public async ValueTask<Decision> DecideVersionAsync(Caller caller, Interaction interaction, ResourceFacts version,
        System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction? transaction, bool quiet, CancellationToken ct)
    {
        if (version.Resource is not { } resource || version.Type == "AuditEvent") return Decision.Permit;
        var purpose = Purpose();
        if (purpose.BreakGlassReason is not null && (transaction is not null || !IsRead(http.HttpContext?.Request.Method)))
            purpose = purpose with { BreakGlassReason = null };
        var patients = (version.Index?.Compartments ?? []).Where(c => c.CompartmentType == "Patient").Select(c => c.CompartmentId)
            .Concat(version.Type == "Patient" ? [version.Id] : []).Distinct(StringComparer.Ordinal).ToList();
        var labels = resource.Meta?.Security.Select(c => c.Code).OfType<string>().Distinct(StringComparer.Ordinal).ToList() ?? [];
        var attestation = resource is DocumentReference document
            && document.Type?.Coding.Any(c => c.System == AccessRules.DocumentTypes && c.Code == AccessRules.AttendanceAttestationCode) == true;
        var decision = resource is Provenance { Target.Count: > 0 } provenance && caller.Kind != ActorKind.Auditor
            ? await decisions.DecideForProvenanceAsync(caller, purpose, provenance, ct)
            : await decisions.DecideForVersionAsync(connection, transaction, caller, purpose, version.Type, version.Id, patients, labels, attestation,
                Exit.ReleaseDates.IsDetentionStay(resource), ct);
        if (http.HttpContext is { } context && (!quiet || decision.Permitted))
        {
            // A history's hidden versions are filtered out, not a denied request: only what is shown is noted.
            if (!quiet) Note(decision, purpose);
            AuditNote.For(context).Patients.UnionWith(patients);
        }
        if (!decision.Permitted) return Decision.Hide(decision.Reason);
        if (decision.BreakGlass && patients.Count > 0 && !quiet) await FlagBreakGlassAsync(caller, patients[0], ct);
        return Decision.Permit;
    }

    public AccessFilter Filter(Caller caller, string? type)
    {
        var filter = ConsentAccessFilter.For(caller);
        var purpose = Purpose();
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var restriction = new ConsentRestriction(caller.OrganizationFiness, purpose.Code, now, caller.ClientId) { SensitiveLabels = RestrictedLabels };
        var person = ConsentAuthority.PersonOf(caller);
        var attestations = (AccessRules.DocumentCategories, AccessRules.AttendanceAttestationCategory);
        return caller.Kind switch
        {
            ActorKind.Auditor => filter,
            ActorKind.Admin => filter with { Consent = restriction with { Finess = null } },
            ActorKind.Justice => filter with
            {
                Consent = restriction with { RequireConsent = false, OnlyDocumentCategory = attestations, OnlyEncounterType = (Exit.ReleaseDates.EncounterTypes, Exit.ReleaseDates.DetentionStayCode) },
            },
            ActorKind.Social => filter with
            {
                Consent = restriction with { AuthorSees = false, CareTeam = false, HonourDenies = false, OnlyDocumentCategory = attestations },
            },
            _ => filter with { Consent = restriction with { Person = person } },
        };
    }

    /// <summary>The request's purpose of use, read once per request; an unknown purpose is a client error (400).</summary>
    private PurposeOfUse Purpose()
    {
        if (http.HttpContext is not { } context) return PurposeOfUse.Treatment;
        if (context.Items.TryGetValue(typeof(PurposeOfUse), out var cached) && cached is PurposeOfUse known) return known;
        var purpose = PurposeOfUse.From(context.Request) ?? throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.Value,
            $"Unknown {PurposeOfUse.Header}: use one of {string.Join(", ", PurposeOfUse.Known)}.");
        context.Items[typeof(PurposeOfUse)] = purpose;
        return purpose;
    }

    private void Note(AccessDecision decision, PurposeOfUse purpose)
    {
        if (http.HttpContext is not { } context) return;
        var note = AuditNote.For(context);
        note.Purpose = purpose;
        // The first deny of the request, else the last permit: what the audit row should name.
        if (note.Decision is { Permitted: false }) return;
        note.Decision = decision;
    }

    /// <summary>X-Break-Glass: the expiry of the grant that let this answer through.</summary>
    private async Task FlagBreakGlassAsync(Caller caller, string patient, CancellationToken ct)
    {
        if (http.HttpContext is not { } context) return;
        if (await decisions.BreakGlassExpiryAsync(caller, patient, ct) is { } expiry && !context.Response.HasStarted)
            context.Response.Headers[PurposeOfUse.BreakGlassResponseHeader] = expiry.UtcDateTime.ToString("o", CultureInfo.InvariantCulture);
    }

    /// <summary>A GET (or the HEAD that mirrors it), or no HTTP request at all.</summary>
    private static bool IsRead(string? method) => method is null || HttpMethods.IsGet(method) || HttpMethods.IsHead(method);
}
