using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Audit;

/// <summary>
/// Builds the AuditEvent (IHE Basic Audit Log Patterns, RESTful interaction shape) and Provenance resources.
/// Client ids and FINESS travel as identifiers: they are not resources on this server.
/// </summary>
public static class AuditRecords
{
    public const string ClientIds = "https://fhirsortie.fr/fhir/sid/client-id";
    public const string GatewayName = "FhirSortie gateway";
    public const string BreakGlassReasonDetail = "break-glass-reason";

    public const string Dicom = "http://dicom.nema.org/resources/ontology/DCM";

    /// <summary>
    /// The subtypes of the OAuth endpoints' records (<see cref="AuthenticationAudit"/>), stored where a FHIR interaction
    /// stores its restful-interaction code: DICOM "Login" (a token request, granted or refused) and "Logout" (a
    /// revocation). Their type is DICOM 110114 "User Authentication"; every other record is a "rest" one.
    /// </summary>
    public const string Login = "110122";
    public const string Logout = "110123";

    private static bool IsUserAuthentication(string interaction) => interaction is Login or Logout;

    /// <summary>The two AuditEvent.type codes: DICOM "User Authentication" (the OAuth endpoints), audit-event-type "rest" (the rest).</summary>
    public const string UserAuthenticationType = "110114";
    public const string RestType = "rest";

    /// <summary>AuditEvent.type of a record with this interaction (or subtype code).</summary>
    public static (string System, string Code, string Display) TypeOf(string interaction) => IsUserAuthentication(interaction)
        ? (Dicom, UserAuthenticationType, "User Authentication")
        : ("http://terminology.hl7.org/CodeSystem/audit-event-type", RestType, "Restful Operation");

    /// <summary>AuditEvent.subtype's system and display for this interaction (the code is the interaction itself).</summary>
    public static (string System, string? Display) SubtypeOf(string interaction) => interaction switch
    {
        Login => (Dicom, "Login"),
        Logout => (Dicom, "Logout"),
        _ => ("http://hl7.org/fhir/restful-interaction", null),
    };

    /// <summary>The AuditEvent of one audit record (see <see cref="AuditEntry"/>); <see cref="AuditEventRows"/> builds the same, faster.</summary>
    public static AuditEvent Interaction(AuditEntry e)
    {
        var purpose = new CodeableConcept(SecurityLabels.ActReason, e.Purpose);
        var type = TypeOf(e.Interaction);
        var subtype = SubtypeOf(e.Interaction);
        var status = e.Status;
        var audit = new AuditEvent
        {
            Id = e.Id,
            Type = new Coding(type.System, type.Code, type.Display),
            Subtype = [new Coding(subtype.System, e.Interaction, subtype.Display)],
            Action = ActionOf(e.Interaction),
            Recorded = DateTimeOffset.FromUnixTimeMilliseconds(e.Recorded),
            Outcome = status < 400 ? AuditEvent.AuditEventOutcome.N0 : status < 500 ? AuditEvent.AuditEventOutcome.N4 : AuditEvent.AuditEventOutcome.N8,
            OutcomeDesc = e.Permitted is { } permitted ? (permitted ? "permitted: " : "denied: ") + e.Reason : $"HTTP {status}",
            PurposeOfEvent = [purpose],
            Source = new AuditEvent.SourceComponent
            {
                Observer = new ResourceReference { Display = GatewayName },
                Type = [new Coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")],
            },
        };
        audit.Agent.Add(new AuditEvent.AgentComponent
        {
            Type = new CodeableConcept(Dicom, "110153", "Source Role ID"),
            Who = new ResourceReference { Identifier = new Identifier(ClientIds, e.ClientId ?? "anonymous"), Display = e.Kind },
            Requestor = true,
            Network = e.Address is null ? null : new AuditEvent.NetworkComponent { Address = e.Address, Type = AuditEvent.AuditEventAgentNetworkType.N2 },
            PurposeOfUse = [purpose],
        });
        if (e.Finess is { } finess)
        {
            audit.Agent.Add(new AuditEvent.AgentComponent
            {
                Type = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-RoleClass", "PROV", "healthcare provider"),
                Who = new ResourceReference { Identifier = new Identifier(ConsentGrants.Finess, finess) },
                Requestor = false,
            });
        }
        if (e.User is { } user)
        {
            audit.Agent.Add(new AuditEvent.AgentComponent
            {
                Type = new CodeableConcept("http://terminology.hl7.org/CodeSystem/extra-security-role-type", "humanuser", "human user"),
                Who = new ResourceReference(user),
                Requestor = true,
            });
        }
        foreach (var entity in e.Entities.Distinct(StringComparer.Ordinal))
        {
            audit.Entity.Add(new AuditEvent.EntityComponent
            {
                What = new ResourceReference(entity),
                Type = new Coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
            });
        }
        if (e.Query is { Length: > 0 } query)
        {
            audit.Entity.Add(new AuditEvent.EntityComponent
            {
                Type = new Coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
                Role = new Coding("http://terminology.hl7.org/CodeSystem/object-role", "24", "Query"),
                Query = System.Text.Encoding.UTF8.GetBytes(query),
            });
        }
        foreach (var patient in e.Patients.Distinct(StringComparer.Ordinal))
        {
            var entity = new AuditEvent.EntityComponent
            {
                What = new ResourceReference("Patient/" + patient),
                Type = new Coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
                Role = new Coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"),
            };
            if (e.BreakGlass && e.BreakGlassReason is { } reason)
                entity.Detail.Add(new AuditEvent.DetailComponent { Type = BreakGlassReasonDetail, Value = new FhirString(reason) });
            audit.Entity.Add(entity);
        }
        if (e.ConsentId is { } consent)
        {
            audit.Entity.Add(new AuditEvent.EntityComponent
            {
                What = new ResourceReference("Consent/" + consent),
                Type = new Coding("http://hl7.org/fhir/resource-types", "Consent"),
                Description = e.Permitted == true ? "the consent that permitted the access" : "the consent that denied the access",
            });
        }
        return audit;
    }

    public static AuditEvent.AuditEventAction ActionOf(string interaction) => interaction switch
    {
        "create" => AuditEvent.AuditEventAction.C,
        "update" or "patch" => AuditEvent.AuditEventAction.U,
        "delete" => AuditEvent.AuditEventAction.D,
        "read" or "vread" or "history" or "search-type" or "search-system" or "search-compartment" or "capabilities" => AuditEvent.AuditEventAction.R,
        _ => AuditEvent.AuditEventAction.E,
    };

    /// <summary>A Provenance for a write (every resource one request wrote) the sender documented no provenance for: who (organisation and client) did what, when.</summary>
    public static Provenance ForWrite(Caller? caller, IEnumerable<string> targets, string? activity, DateTimeOffset recorded)
    {
        var provenance = new Provenance
        {
            Target = targets.Select(t => new ResourceReference(t)).ToList(),
            RecordedElement = new Instant(recorded),
            // A transaction mixing creates and updates has no single v3-DataOperation: no activity rather than a wrong one.
            Activity = activity is null ? null : new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-DataOperation", activity),
        };
        var client = new ResourceReference { Identifier = new Identifier(ClientIds, caller?.ClientId ?? "anonymous") };
        var organization = caller?.OrganizationFiness is { } finess ? new ResourceReference { Identifier = new Identifier(ConsentGrants.Finess, finess) } : null;
        provenance.Agent.Add(new Provenance.AgentComponent
        {
            Type = new CodeableConcept("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author"),
            Who = organization ?? client,
        });
        if (organization is not null)
        {
            provenance.Agent.Add(new Provenance.AgentComponent
            {
                Type = new CodeableConcept("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "performer"),
                Who = client,
                OnBehalfOf = organization,
            });
        }
        // A client acting for a signed-in practitioner (the portal, a SMART launch): the person who entered the data.
        if (caller?.FhirUser is { } user && user.Contains("Practitioner/", StringComparison.Ordinal))
        {
            provenance.Agent.Add(new Provenance.AgentComponent
            {
                Type = new CodeableConcept("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "enterer"),
                Who = new ResourceReference(user),
                OnBehalfOf = organization,
            });
        }
        return provenance;
    }
}
