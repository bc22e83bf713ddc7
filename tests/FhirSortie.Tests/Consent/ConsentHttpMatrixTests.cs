using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// The access matrix replayed over HTTP: each row's caller reads the resource (permit: 200 with it; deny: 404, or 403
/// when the caller's kind may never see the type) and searches it by _id (counted iff permitted).
/// </summary>
public abstract class ConsentHttpMatrixTests<TGateway>(ConsentMatrixFixture<TGateway> fixture) where TGateway : Gateway, new()
{
    public static IEnumerable<object[]> Cases() => AccessMatrix.Load().Cases.Select((c, i) => new object[] { i, c.ToString() });

    private static readonly HashSet<string> JusticeTypes = ["Patient", "Appointment", "DocumentReference", "Organization", "Location"];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Matrix_row_read_and_search_over_http(int row, string description)
    {
        var matrix = fixture.Matrix;
        var c = matrix.Cases[row];
        var patient = fixture.Patients[c.Consent];
        var (type, id) = await ResourceOf(c, patient);
        var caller = matrix.Caller(c, $"http-matrix-{c.Actor}-{row}", patient, fixture.OtherPatient);
        var client = fixture.Gateway.Fhir(AccessMatrix.Describe(caller, "system/*.rs"));
        var headers = new List<(string, string)>();
        if (c.Purpose is { } purpose) headers.Add((PurposeOfUse.Header, purpose));
        if (c.BreakGlassReason is { } reason) headers.Add((PurposeOfUse.ReasonHeader, reason));

        var read = await Send(client, $"{type}/{id}", headers);
        var body = await read.Content.ReadAsStringAsync();
        if (c.Expect == "permit")
        {
            Assert.True(read.StatusCode == HttpStatusCode.OK, $"{description}: read gave {(int)read.StatusCode} {body}");
            Assert.Contains(id, body, StringComparison.Ordinal);
            if (c.BreakGlass == true) Assert.True(read.Headers.Contains(PurposeOfUse.BreakGlassResponseHeader), $"{description}: break-glass not flagged");
        }
        else
        {
            var expected = TypeForbidden(caller.Kind, type) ? HttpStatusCode.Forbidden : HttpStatusCode.NotFound;
            Assert.True(read.StatusCode == expected, $"{description}: read gave {(int)read.StatusCode}, expected {(int)expected}");
            Assert.DoesNotContain($"\"resourceType\":\"{type}\"", body, StringComparison.Ordinal);
        }

        // The break-glass reason was given on the read; the search only states the purpose.
        var search = await Send(client, $"{type}?_id={id}&_total=accurate", headers.Where(h => h.Item1 != PurposeOfUse.ReasonHeader).ToList());
        if (TypeForbidden(caller.Kind, type))
        {
            Assert.Equal(HttpStatusCode.Forbidden, search.StatusCode);
            return;
        }
        Assert.True(search.StatusCode == HttpStatusCode.OK, $"{description}: search gave {(int)search.StatusCode} {await search.Content.ReadAsStringAsync()}");
        var bundle = await search.ReadAs<Bundle>();
        var visible = c.Expect == "permit";
        Assert.True(bundle.Matches().Contains(id) == visible, $"{description}: search shows it: {!visible}");
        Assert.Equal(visible ? 1 : 0, bundle.Total);
    }

    public static IEnumerable<object[]> Writes() => AccessMatrix.Load().Writes.Select((w, i) => new object[] { i, w.ToString() });

    /// <summary>The write rows: the actor records the state's Consents for a fresh patient of the USMP; refused is 403 and opens nothing.</summary>
    [Theory]
    [MemberData(nameof(Writes))]
    public async Task Matrix_write_row_over_http(int row, string description)
    {
        var matrix = fixture.Matrix;
        var w = matrix.Writes[row];
        var usmp = fixture.Gateway.Fhir();
        var patient = Search.Domain.Patient(Search.Domain.NewRun(), "180029900000005", "Ecrit-" + row);
        patient.ManagingOrganization = new ResourceReference("Organization/matrix-usmp");
        var patientId = (await usmp.CreateAsync(patient)).Id!;
        if (w.Task is { } holder)
        {
            await usmp.CreateAsync(new Hl7.Fhir.Model.Task
            {
                Status = Hl7.Fhir.Model.Task.TaskStatus.Requested,
                Intent = Hl7.Fhir.Model.Task.TaskIntent.Order,
                Code = new CodeableConcept(ConsentAuthority.ExitTaskTypes, ConsentAuthority.CollectConsentCode),
                For = new ResourceReference("Patient/" + patientId),
                Owner = new ResourceReference("Organization/matrix-" + holder),
            });
        }
        var actor = matrix.Actors[w.Actor];
        var caller = matrix.Caller(new MatrixCase(w.Actor, "consent", w.Consent, w.Expect, null, null, null, null, false, null),
            $"write-matrix-{w.Actor}-{row}", patientId, fixture.OtherPatient);
        var client = fixture.Gateway.Fhir(AccessMatrix.Describe(caller, actor.LaunchPatient is null ? "system/*.cruds" : "patient/*.cruds"));
        foreach (var consent in matrix.ConsentsFor(w.Consent, patientId, DateTimeOffset.UtcNow))
        {
            var response = await client.PostAsync("Consent", FhirHttp.Json(consent));
            var expected = w.Expect == "accept" ? HttpStatusCode.Created : HttpStatusCode.Forbidden;
            Assert.True(response.StatusCode == expected, $"{description}: gave {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
        // A refused Consent opened nothing: the care team's grants are the only ones left.
        if (w.Expect == "refuse")
        {
            var consents = await usmp.SearchAsync($"Consent?patient={patientId}&_total=accurate");
            Assert.Equal(0, consents.Total);
        }
    }

    private static bool TypeForbidden(ActorKind kind, string type) => kind switch
    {
        ActorKind.Justice or ActorKind.Social => !JusticeTypes.Contains(type),
        ActorKind.Auditor => type is not ("AuditEvent" or "Patient"),
        _ => type == "AuditEvent",
    };

    private static Task<HttpResponseMessage> Send(HttpClient client, string url, IReadOnlyList<(string Name, string Value)> headers)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        return client.SendAsync(request);
    }

    /// <summary>The resource of a row, written by its author organisation in the consent state's patient (made once per combination).</summary>
    private async Task<(string Type, string Id)> ResourceOf(MatrixCase c, string patient)
    {
        var spec = fixture.Matrix.Resources[c.Resource];
        var author = c.Author ?? "usmp";
        var key = $"{c.Resource}|{author}|{c.Consent}";
        if (Made.TryGetValue(key, out var made)) return made;
        if (spec.OutsidePatient) return Made[key] = ("Organization", "matrix-usmp");
        if (spec.Type == "Patient") return Made[key] = ("Patient", patient);
        if (spec.Type == "AuditEvent")
        {
            var auditor = fixture.Gateway.Fhir(TestAuthenticationHandler.Describe("matrix-dpo", ActorKind.Auditor, null, "system/AuditEvent.rs"));
            var audits = await auditor.SearchAsync($"AuditEvent?patient={patient}&_count=1");
            return Made[key] = ("AuditEvent", audits.Matches().First());
        }
        var writer = fixture.Gateway.Fhir(TestAuthenticationHandler.Describe($"matrix-writer-{author}", ActorKind.Csapa,
            fixture.Matrix.Organisations[author], "system/*.cruds"));
        if (author == "usmp") writer = fixture.Gateway.Fhir();
        var resource = Build(spec, patient);
        resource.Meta = new Meta
        {
            Security = spec.Labels.Select(l => new Coding(l is "V" or "R" or "N" ? SecurityLabels.Confidentiality : SecurityLabels.ActCode, l)).ToList(),
        };
        var created = await writer.CreateAsync(resource);
        return Made[key] = (spec.Type, created.Id!);
    }

    private Dictionary<string, (string, string)> Made => fixture.Made;

    private static Resource Build(MatrixResource spec, string patient)
    {
        var subject = new ResourceReference("Patient/" + patient);
        return spec.Type switch
        {
            "MedicationRequest" => new MedicationRequest
            {
                Status = MedicationRequest.MedicationrequestStatus.Active, Intent = MedicationRequest.MedicationRequestIntent.Order,
                Medication = new CodeableConcept { Text = "medication" }, Subject = subject,
            },
            "Condition" => new Condition { Code = new CodeableConcept { Text = "condition" }, Subject = subject },
            "CarePlan" => new CarePlan { Status = RequestStatus.Active, Intent = CarePlan.CarePlanIntent.Plan, Subject = subject },
            "DocumentReference" => new DocumentReference
            {
                Status = DocumentReferenceStatus.Current,
                Type = spec.Attestation
                    ? new CodeableConcept(AccessRules.DocumentTypes, AccessRules.AttendanceAttestationCode)
                    : new CodeableConcept("http://loinc.org", "34133-9"),
                // The access rules recognise an attestation by its category (profile AttendanceAttestation).
                Category = spec.Attestation ? [new CodeableConcept(AccessRules.DocumentCategories, AccessRules.AttendanceAttestationCategory)] : [],
                Subject = subject,
                Content = [new DocumentReference.ContentComponent { Attachment = new Attachment { ContentType = "text/plain", Url = "urn:uuid:" + Guid.NewGuid() } }],
            },
            "Appointment" => new Appointment
            {
                Status = Appointment.AppointmentStatus.Booked,
                Participant = [new Appointment.ParticipantComponent { Actor = subject, Status = ParticipationStatus.Accepted }],
            },
            "Consent" => new Hl7.Fhir.Model.Consent
            {
                Status = Hl7.Fhir.Model.Consent.ConsentState.Proposed,
                Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
                Category = [new CodeableConcept("http://loinc.org", "59284-0")],
                Patient = subject,
            },
            _ => throw new InvalidOperationException("no builder for " + spec.Type),
        };
    }
}

public sealed class SqliteConsentHttpMatrixTests(SqliteConsentMatrixFixture fixture)
    : ConsentHttpMatrixTests<SqliteGateway>(fixture), IClassFixture<SqliteConsentMatrixFixture>;
public sealed class PostgresConsentHttpMatrixTests(PostgresConsentMatrixFixture fixture)
    : ConsentHttpMatrixTests<PostgresGateway>(fixture), IClassFixture<PostgresConsentMatrixFixture>;
