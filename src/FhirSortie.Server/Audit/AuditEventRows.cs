using System.Buffers;
using System.Globalization;
using System.Text.Json;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Audit;

/// <summary>
/// The AuditEvent of one audit record, built straight from the <see cref="AuditEntry"/>: its JSON (written with
/// Utf8JsonWriter, byte for byte what serialising <see cref="AuditRecords.Interaction"/> gives; the audit store builds it
/// on every read) and the search index rows <see cref="ResourceIndexer"/> derives from that resource by FHIRPath (the
/// reference the audit store's search keys, <see cref="AuditStore.Keys"/>, are tested against; also what an older build
/// stored). AuditEvents all have the one shape <see cref="AuditRecords.Interaction"/> gives, so the work is done here
/// without a POCO. Tests (AuditEventRowsTests) hold both paths equal over every shape an entry can take.
/// </summary>
public static class AuditEventRows
{
    private const string AuditEntityType = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
    private const string ObjectRole = "http://terminology.hl7.org/CodeSystem/object-role";
    private const string ResourceTypes = "http://hl7.org/fhir/resource-types";

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        SkipValidation = true,
    };

    /// <summary>The AuditEvent's JSON as stored and served (compact), version 1 written at <paramref name="lastUpdated"/>.</summary>
    public static byte[] Json(AuditEntry e, DateTimeOffset lastUpdated)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("resourceType", "AuditEvent");
            w.WriteString("id", e.Id);
            w.WriteStartObject("meta");
            w.WriteString("versionId", "1");
            w.WriteString("lastUpdated", Instant(lastUpdated));
            w.WriteEndObject();
            var type = AuditRecords.TypeOf(e.Interaction);
            w.WriteStartObject("type");
            Coding(w, type.System, type.Code, type.Display);
            w.WriteEndObject();
            w.WriteStartArray("subtype");
            w.WriteStartObject();
            var subtype = AuditRecords.SubtypeOf(e.Interaction);
            Coding(w, subtype.System, e.Interaction, subtype.Display);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteString("action", ActionCode(e.Interaction));
            w.WriteString("recorded", Instant(DateTimeOffset.FromUnixTimeMilliseconds(e.Recorded)));
            w.WriteString("outcome", OutcomeCode(e.Status));
            w.WriteString("outcomeDesc", OutcomeDesc(e));
            w.WriteStartArray("purposeOfEvent");
            Purpose(w, e.Purpose);
            w.WriteEndArray();

            w.WriteStartArray("agent");
            w.WriteStartObject();
            CodeableConcept(w, "type", "http://dicom.nema.org/resources/ontology/DCM", "110153", "Source Role ID");
            w.WriteStartObject("who");
            Identifier(w, AuditRecords.ClientIds, e.ClientId ?? "anonymous");
            if (e.Kind is not null) w.WriteString("display", e.Kind);
            w.WriteEndObject();
            w.WriteBoolean("requestor", true);
            if (e.Address is { } address)
            {
                w.WriteStartObject("network");
                w.WriteString("address", address);
                w.WriteString("type", "2"); // IP address
                w.WriteEndObject();
            }
            w.WriteStartArray("purposeOfUse");
            Purpose(w, e.Purpose);
            w.WriteEndArray();
            w.WriteEndObject();
            if (e.Finess is { } finess)
            {
                w.WriteStartObject();
                CodeableConcept(w, "type", "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "PROV", "healthcare provider");
                w.WriteStartObject("who");
                Identifier(w, ConsentGrants.Finess, finess);
                w.WriteEndObject();
                w.WriteBoolean("requestor", false);
                w.WriteEndObject();
            }
            if (e.User is { } user)
            {
                w.WriteStartObject();
                CodeableConcept(w, "type", "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "humanuser", "human user");
                w.WriteStartObject("who");
                w.WriteString("reference", user);
                w.WriteEndObject();
                w.WriteBoolean("requestor", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();

            w.WriteStartObject("source");
            w.WriteStartObject("observer");
            w.WriteString("display", AuditRecords.GatewayName);
            w.WriteEndObject();
            w.WriteStartArray("type");
            w.WriteStartObject();
            Coding(w, "http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server");
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();

            var entities = Entities(e);
            if (entities.Count > 0)
            {
                w.WriteStartArray("entity");
                foreach (var entity in entities)
                {
                    w.WriteStartObject();
                    if (entity.What is { } what)
                    {
                        w.WriteStartObject("what");
                        w.WriteString("reference", what);
                        w.WriteEndObject();
                    }
                    w.WriteStartObject("type");
                    Coding(w, entity.Type.System, entity.Type.Code, entity.Type.Display);
                    w.WriteEndObject();
                    if (entity.Role is { } role)
                    {
                        w.WriteStartObject("role");
                        Coding(w, ObjectRole, role.Code, role.Display);
                        w.WriteEndObject();
                    }
                    if (entity.Description is { } description) w.WriteString("description", description);
                    if (entity.Query is { } query) w.WriteBase64String("query", System.Text.Encoding.UTF8.GetBytes(query));
                    if (entity.BreakGlassReason is { } reason)
                    {
                        w.WriteStartArray("detail");
                        w.WriteStartObject();
                        w.WriteString("type", AuditRecords.BreakGlassReasonDetail);
                        w.WriteString("valueString", reason);
                        w.WriteEndObject();
                        w.WriteEndArray();
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The index rows of the AuditEvent, as <see cref="ResourceIndexer.Index"/> gives them for the resource.</summary>
    public static IndexEntries Index(AuditEntry e, Compartments compartments)
    {
        var x = new IndexEntries();
        x.Tokens.Add(new TokenEntry("action", null, ActionCode(e.Interaction), null));
        if (e.Address is { } address) x.Strings.Add(new StringEntry("address", ResourceIndexer.Normalize(address), address));
        x.Tokens.Add(new TokenEntry("agent:identifier", AuditRecords.ClientIds, e.ClientId ?? "anonymous", null));
        if (e.Finess is { } finess) x.Tokens.Add(new TokenEntry("agent:identifier", ConsentGrants.Finess, finess, null));
        if (e.User is { Length: > 0 } user && !user.StartsWith('#')) x.References.Add(Reference("agent", user));
        x.Dates.Add(new DateEntry("date", e.Recorded, e.Recorded));
        var entities = Entities(e);
        foreach (var entity in entities)
        {
            if (entity.What is { Length: > 0 } what && !what.StartsWith('#')) x.References.Add(Reference("entity", what));
        }
        foreach (var entity in entities)
        {
            if (entity.Role is { } role) x.Tokens.Add(new TokenEntry("entity-role", ObjectRole, role.Code, ResourceIndexer.Normalize(role.Display)));
        }
        foreach (var entity in entities)
            x.Tokens.Add(new TokenEntry("entity-type", entity.Type.System, entity.Type.Code, entity.Type.Display is { } d ? ResourceIndexer.Normalize(d) : null));
        x.Tokens.Add(new TokenEntry("outcome", null, OutcomeCode(e.Status), null));
        // patient = agent.who.where(resolve() is Patient) | entity.what.where(resolve() is Patient): a union, so each
        // reference once (the read entity "Patient/x" and the patient entity "Patient/x" are one value).
        var patients = new List<string>();
        if (e.User is { } u && IsPatient(u)) patients.Add(u);
        foreach (var entity in entities)
            if (entity.What is { } what && IsPatient(what) && !patients.Contains(what, StringComparer.Ordinal)) patients.Add(what);
        foreach (var patient in patients) x.References.Add(Reference("patient", patient));
        var subtype = AuditRecords.SubtypeOf(e.Interaction);
        x.Tokens.Add(new TokenEntry("subtype", subtype.System, e.Interaction, subtype.Display is { } shown ? ResourceIndexer.Normalize(shown) : null));
        var type = AuditRecords.TypeOf(e.Interaction);
        x.Tokens.Add(new TokenEntry("type", type.System, type.Code, ResourceIndexer.Normalize(type.Display)));
        compartments.AddMemberships(Shape, x);
        return x;
    }

    /// <summary>Only its type is read (compartment definitions are per type).</summary>
    private static readonly AuditEvent Shape = new();

    private static bool IsPatient(string reference) => !reference.StartsWith('#') && ResourceIndexer.ReferenceParts(reference).Type == "Patient";

    private static ReferenceEntry Reference(string param, string reference)
    {
        var (type, id) = ResourceIndexer.ReferenceParts(reference);
        return new ReferenceEntry(param, type, id, reference.Contains("://", StringComparison.Ordinal) ? reference : null, null);
    }

    private sealed record EntityCoding(string System, string Code, string? Display);

    private sealed record Entity(string? What, EntityCoding Type, (string Code, string Display)? Role = null, string? Description = null, string? Query = null, string? BreakGlassReason = null);

    /// <summary>The entities in the order <see cref="AuditRecords.Interaction"/> adds them.</summary>
    private static List<Entity> Entities(AuditEntry e)
    {
        var list = new List<Entity>(e.Entities.Count + e.Patients.Count + 2);
        var systemObject = new EntityCoding(AuditEntityType, "2", "System Object");
        foreach (var entity in e.Entities.Distinct(StringComparer.Ordinal)) list.Add(new Entity(entity, systemObject));
        if (e.Query is { Length: > 0 } query) list.Add(new Entity(null, systemObject, ("24", "Query"), Query: query));
        var person = new EntityCoding(AuditEntityType, "1", "Person");
        foreach (var patient in e.Patients.Distinct(StringComparer.Ordinal))
            list.Add(new Entity("Patient/" + patient, person, ("1", "Patient"), BreakGlassReason: e.BreakGlass ? e.BreakGlassReason : null));
        if (e.ConsentId is { } consent)
        {
            list.Add(new Entity("Consent/" + consent, new EntityCoding(ResourceTypes, "Consent", null),
                Description: e.Permitted == true ? "the consent that permitted the access" : "the consent that denied the access"));
        }
        return list;
    }

    /// <summary>The entity.what references of the AuditEvent, in order (the search keys are derived from them).</summary>
    public static IEnumerable<string> EntityReferences(AuditEntry e) => Entities(e).Select(x => x.What).OfType<string>();

    private static string OutcomeDesc(AuditEntry e) =>
        e.Permitted is { } permitted ? (permitted ? "permitted: " : "denied: ") + e.Reason : $"HTTP {e.Status.ToString(CultureInfo.InvariantCulture)}";

    public static string OutcomeCode(int status) => status < 400 ? "0" : status < 500 ? "4" : "8";

    public static string ActionCode(string interaction) => AuditRecords.ActionOf(interaction) switch
    {
        AuditEvent.AuditEventAction.C => "C",
        AuditEvent.AuditEventAction.R => "R",
        AuditEvent.AuditEventAction.U => "U",
        AuditEvent.AuditEventAction.D => "D",
        _ => "E",
    };

    /// <summary>An instant as the SDK writes it (milliseconds only when there are some, UTC as +00:00).</summary>
    private static string Instant(DateTimeOffset value) =>
        value.ToUniversalTime().ToString(value.Millisecond == 0 ? "yyyy-MM-dd'T'HH:mm:ssK" : "yyyy-MM-dd'T'HH:mm:ss.fffK", CultureInfo.InvariantCulture).Replace("Z", "+00:00", StringComparison.Ordinal);

    private static void Purpose(Utf8JsonWriter w, string code)
    {
        w.WriteStartObject();
        w.WriteStartArray("coding");
        w.WriteStartObject();
        Coding(w, SecurityLabels.ActReason, code, null);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void CodeableConcept(Utf8JsonWriter w, string name, string system, string code, string display)
    {
        w.WriteStartObject(name);
        w.WriteStartArray("coding");
        w.WriteStartObject();
        Coding(w, system, code, null); // new CodeableConcept(system, code, text) puts the display in text only
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteString("text", display);
        w.WriteEndObject();
    }

    private static void Identifier(Utf8JsonWriter w, string system, string value)
    {
        w.WriteStartObject("identifier");
        w.WriteString("system", system);
        w.WriteString("value", value);
        w.WriteEndObject();
    }

    private static void Coding(Utf8JsonWriter w, string system, string code, string? display)
    {
        w.WriteString("system", system);
        w.WriteString("code", code);
        if (display is not null) w.WriteString("display", display);
    }
}
