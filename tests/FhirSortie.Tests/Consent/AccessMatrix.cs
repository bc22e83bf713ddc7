using System.Text.Json;
using System.Text.Json.Serialization;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// The access matrix (access-matrix.json) as objects, and the FHIR resources that set up its consent states:
/// the organisations with their FINESS, one patient per consent state (managed by the USMP), and its Consents.
/// Reusable for HTTP runs: <see cref="Caller"/> gives the caller of a case, <see cref="ConsentsFor"/> the resources to post.
/// </summary>
public sealed record AccessMatrix(
    Dictionary<string, string> Organisations,
    Dictionary<string, MatrixActor> Actors,
    Dictionary<string, List<MatrixConsent>> ConsentStates,
    Dictionary<string, MatrixResource> Resources,
    List<MatrixCase> Cases,
    List<MatrixWrite> Writes)
{
    public static AccessMatrix Load()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Consent", "access-matrix.json");
        return JsonSerializer.Deserialize<AccessMatrix>(File.ReadAllText(path), new JsonSerializerOptions { PropertyNameCaseInsensitive = true })
            ?? throw new InvalidOperationException("empty access matrix");
    }

    /// <summary>The caller of a case; <paramref name="clientId"/> is unique per case so break-the-glass grants never leak between cases.</summary>
    public Caller Caller(MatrixCase c, string clientId, string statePatient, string otherPatient)
    {
        var actor = Actors[c.Actor];
        var kind = Enum.Parse<ActorKind>(actor.Kind);
        var launch = actor.LaunchPatient switch { "self" => statePatient, "another" => otherPatient, _ => null };
        return new Caller(clientId, kind, actor.Organisation is null ? null : Organisations[actor.Organisation], ["system/*.rs"], launch,
            actor.FhirUser == "self" ? "Patient/" + statePatient : null);
    }

    /// <summary>The test authentication header of a caller (with its fhirUser, if any).</summary>
    public static string Describe(Caller caller, string scopes) =>
        TestAuthenticationHandler.Describe(caller.ClientId, caller.Kind, caller.OrganizationFiness, scopes, caller.PatientId)
        + (caller.FhirUser is { } user ? ";fhirUser=" + user : "");

    public IEnumerable<Organization> OrganisationResources() =>
        Organisations.Select(o => new Organization
        {
            Id = "matrix-" + o.Key,
            Name = o.Key,
            Identifier = [new Identifier(Search.Domain.Finess, o.Value)],
        });

    public IEnumerable<Hl7.Fhir.Model.Consent> ConsentsFor(string state, string patientId, DateTimeOffset now) =>
        ConsentStates[state].Select(spec => new Hl7.Fhir.Model.Consent
        {
            Status = spec.Status == "active" ? Hl7.Fhir.Model.Consent.ConsentState.Active : Hl7.Fhir.Model.Consent.ConsentState.Inactive,
            Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            Category = [new CodeableConcept(Loinc, "59284-0")],
            Patient = new ResourceReference("Patient/" + patientId),
            DateTime = now.AddDays(-1).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
            Organization = [new ResourceReference("Organization/matrix-usmp")],
            Policy = [new Hl7.Fhir.Model.Consent.PolicyComponent { Uri = "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031927568" }],
            Provision = new Hl7.Fhir.Model.Consent.provisionComponent
            {
                Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny,
                Provision = spec.Provisions.Select(p => Provision(p, now)).ToList(),
            },
        });

    private static Hl7.Fhir.Model.Consent.provisionComponent Provision(MatrixProvision p, DateTimeOffset now)
    {
        var provision = new Hl7.Fhir.Model.Consent.provisionComponent
        {
            Type = p.Type == "permit" ? Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit : Hl7.Fhir.Model.Consent.ConsentProvisionType.Deny,
            Actor = (p.Actors ?? []).Select(a => new Hl7.Fhir.Model.Consent.provisionActorComponent
            {
                Role = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
                Reference = new ResourceReference("Organization/matrix-" + a),
            }).ToList(),
            Class = (p.Classes ?? []).Select(c => new Coding(ConsentGrants.ResourceTypes, c)).ToList(),
            SecurityLabel = (p.Labels ?? []).Select(l => new Coding(l == "V" ? SecurityLabels.Confidentiality : SecurityLabels.ActCode, l)).ToList(),
            Purpose = (p.Purposes ?? []).Select(c => new Coding(SecurityLabels.ActReason, c)).ToList(),
            Provision = (p.Nested ?? []).Select(n => Provision(n, now)).ToList(),
        };
        if (p.From is not null || p.To is not null)
        {
            provision.Period = new Period
            {
                Start = p.From is { } from ? now.AddDays(from).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) : null,
                End = p.To is { } to ? now.AddDays(to).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) : null,
            };
        }
        return provision;
    }
}

public sealed record MatrixActor(string Kind, string? Organisation, string? LaunchPatient, string? FhirUser);

/// <summary>Who may record a Consent (issue 21 §1): the actor posts the consent state's Consents; <see cref="Task"/> holds an open collect-consent Task.</summary>
public sealed record MatrixWrite(string Actor, string Consent, string Expect, string? Task, string? Why)
{
    public override string ToString() => $"{Actor}{(Task is null ? "" : " (task held by " + Task + ")")} records '{Consent}' -> {Expect}";
}
public sealed record MatrixConsent(string Status, List<MatrixProvision> Provisions);
public sealed record MatrixProvision(string Type, List<string>? Actors, List<string>? Classes, List<string>? Labels, List<string>? Purposes, int? From, int? To, List<MatrixProvision>? Nested);
public sealed record MatrixResource(string Type, List<string> Labels, bool Attestation, bool OutsidePatient);

public sealed record MatrixCase(
    string Actor, string Resource, string Consent, string Expect,
    string? Author, string? Purpose, string? BreakGlassReason, bool? BreakGlass,
    [property: JsonPropertyName("consentId")] bool ExpectConsentId, string? Why)
{
    public override string ToString() =>
        $"{Actor} reads {Resource}{(Author is null ? "" : " by " + Author)} with consent '{Consent}'{(Purpose is null ? "" : " for " + Purpose)} -> {Expect}";
}
