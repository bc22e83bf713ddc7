using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// What every save does besides storing the resource, inside the same database transaction (called once by
/// <see cref="WriteSession.SaveAsync"/>, so create, update, conditional writes, patch and transaction entries all
/// get it): security labels from the content, the author organisation, the consent grants of a Consent or
/// Patient, and, for a client's write, its Provenance (unless the sender sent one in X-Provenance) and its AuditEvent.
/// </summary>
public sealed class WriteHook(SecurityLabeller labeller, TimeProvider clock, IHttpContextAccessor? http = null)
{
    public const string ProvenanceHeader = "X-Provenance";

    public SecurityLabeller Labeller => labeller;

    public async System.Threading.Tasks.Task BeforeSaveAsync(WriteSession session, Resource resource, StoredResource? current, string method, CancellationToken ct)
    {
        var creating = current is null || current.Deleted;
        if (resource is AuditEvent && !creating)
            throw FhirException.Error(HttpStatusCode.MethodNotAllowed, OperationOutcome.IssueType.NotSupported, "AuditEvents are append-only: they cannot be updated.");
        labeller.Apply(resource);

        var context = http?.HttpContext;
        var caller = context is null ? null : Caller.Of(context);
        if (creating && caller?.OrganizationFiness is { } finess)
        {
            await using var origin = Sql.Command(session.Connection, session.Transaction,
                "INSERT INTO resource_origin (type, id, finess) VALUES (@t, @i, @f) ON CONFLICT (type, id) DO NOTHING")
                .With("@t", resource.TypeName).With("@i", resource.Id).With("@f", finess);
            await origin.ExecuteNonQueryAsync(ct);
        }
        await ConsentGrants.RebuildAsync(session, resource, ct);

        // The write's own records are not recorded again; internal writes (no request) have no client to name.
        if (context is null || resource is AuditEvent or Provenance) return;
        var version = (current?.Version ?? 0) + 1;
        var target = $"{resource.TypeName}/{resource.Id}/_history/{version}";
        var interaction = method switch { "PATCH" => "patch", _ when creating => "create", _ => "update" };
        var now = clock.GetUtcNow();

        var provenance = SuppliedProvenance(context) ?? AuditRecords.ForWrite(caller, target, creating ? "CREATE" : "UPDATE", now);
        provenance.Target = [new ResourceReference(target)];
        provenance.Id = FhirRequest.NewId();
        await session.SaveGatewayRecordAsync(provenance, ct);

        var note = AuditNote.For(context);
        var entry = new AuditNote { Decision = note.Decision, Purpose = note.Purpose };
        entry.Entities.Add(target);
        foreach (var patient in PatientReferences.Of(resource)) entry.Patients.Add(patient);
        var audit = AuditRecords.Interaction(caller, interaction, creating ? 201 : 200, now, entry, null);
        audit.Id = FhirRequest.NewId();
        await session.SaveGatewayRecordAsync(audit, ct);
        note.AuditedInTransaction = true;
    }

    /// <summary>The Provenance the client sent in the X-Provenance header (FHIR RESTful API), for single-resource writes.</summary>
    private static Provenance? SuppliedProvenance(HttpContext context)
    {
        var header = context.Request.Headers[ProvenanceHeader].ToString();
        if (header.Length == 0) return null;
        return FhirFormat.Parse(System.Text.Encoding.UTF8.GetBytes(header), WireFormat.Json) as Provenance
            ?? throw FhirException.BadRequest($"{ProvenanceHeader} must hold a Provenance resource in JSON.");
    }
}
