using System.Net;
using System.Text.Json;
using FhirSortie.Server.Demo;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Tests.Demo;

/// <summary>
/// Domain scenario 4 on the demo data: a teleconsultation module launched for patient P (patient/*.rs + patient/*.c,
/// launch patient P) opens P's context in one call, reads P's conditions, medications and allergies, cannot reach
/// another patient, and what it writes carries a Provenance naming it. Also $patient-context for other callers.
/// </summary>
public abstract class TelemedicineContextTests(DemoFixture fixture)
{
    private async Task<(string Planned, string Other)> PatientsAsync() =>
        (await fixture.PatientIdAsync(DemoPackages.PlannedExitIns), await fixture.PatientIdAsync(DemoPackages.ActAdmissionIns));

    [Fact]
    public async Task Launched_module_gets_letter_prescriptions_plan_appointment_team_conditions_allergies_and_contacts_in_one_call()
    {
        var (patient, _) = await PatientsAsync();
        using var app = fixture.Gateway.Fhir(DemoFixture.TelemedicineFor(patient));

        var context = await DemoFixture.GetJsonAsync(app, $"Patient/{patient}/$patient-context");

        Assert.Equal("searchset", context.GetProperty("type").GetString());
        var matches = DemoFixture.Types(context);
        Assert.Equal(matches.Count, context.GetProperty("total").GetInt32());
        Assert.Equal(1, matches.Count(t => t == "Patient"));
        Assert.Equal(1, matches.Count(t => t == "DocumentReference"));
        Assert.Equal(4, matches.Count(t => t == "MedicationRequest"));
        Assert.Equal(1, matches.Count(t => t == "CarePlan"));
        Assert.Equal(1, matches.Count(t => t == "Appointment"));
        Assert.Equal(1, matches.Count(t => t == "CareTeam"));
        Assert.Equal(2, matches.Count(t => t == "Condition"));
        Assert.Equal(1, matches.Count(t => t == "AllergyIntolerance"));
        Assert.DoesNotContain("MedicationDispense", matches); // not part of the context
        var contacts = DemoFixture.Types(context, "include");
        Assert.Contains("Practitioner", contacts);
        Assert.Contains("PractitionerRole", contacts);
        Assert.Contains("Organization", contacts);
        Assert.Contains("Location", contacts);
        var letter = Resources(context).Single(r => r.GetProperty("resourceType").GetString() == "DocumentReference");
        Assert.Equal("11490-0", letter.GetProperty("type").GetProperty("coding")[0].GetProperty("code").GetString());
        var appointment = Resources(context).Single(r => r.GetProperty("resourceType").GetString() == "Appointment");
        Assert.True(DateTimeOffset.Parse(appointment.GetProperty("start").GetString()!, System.Globalization.CultureInfo.InvariantCulture) > DateTimeOffset.UtcNow);
    }

    [Fact]
    public async Task Launched_module_reads_its_patient_conditions_medications_and_allergies()
    {
        var (patient, _) = await PatientsAsync();
        using var app = fixture.Gateway.Fhir(DemoFixture.TelemedicineFor(patient));

        Assert.Equal(2, (await DemoFixture.GetJsonAsync(app, $"Condition?patient={patient}&clinical-status=active")).GetProperty("total").GetInt32());
        Assert.Equal(4, (await DemoFixture.GetJsonAsync(app, $"MedicationRequest?patient={patient}&status=active")).GetProperty("total").GetInt32());
        Assert.Equal(1, (await DemoFixture.GetJsonAsync(app, $"AllergyIntolerance?patient={patient}")).GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Launched_module_cannot_reach_another_patient_by_id_and_name_searches_stay_inside_its_patient()
    {
        var (patient, other) = await PatientsAsync();
        using var app = fixture.Gateway.Fhir(DemoFixture.TelemedicineFor(patient));

        foreach (var url in new[] { $"Patient/{other}/$patient-context", $"Patient/{other}", $"Patient/{other}/MedicationRequest", $"Patient/{other}/$everything" })
        {
            using var refused = await app.GetAsync(url);
            Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, $"{url}: {(int)refused.StatusCode}");
        }
        // Type searches are not refused but confined to the launch patient (ScopeRule.Filter): another patient's name,
        // or another patient's id as a parameter, finds nothing; the patient's own name finds the patient.
        Assert.Equal(0, (await DemoFixture.GetJsonAsync(app, "Patient?name=Modèle")).GetProperty("total").GetInt32());
        Assert.Equal(0, (await DemoFixture.GetJsonAsync(app, $"MedicationRequest?patient={other}")).GetProperty("total").GetInt32());
        Assert.Equal(1, (await DemoFixture.GetJsonAsync(app, "Patient?name=Fictif")).GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task What_the_module_writes_carries_a_provenance_naming_it_and_it_cannot_write_for_another_patient()
    {
        var (patient, other) = await PatientsAsync();
        using var app = fixture.Gateway.Fhir(DemoFixture.TelemedicineFor(patient));

        using var created = await app.PostAsync("Observation", FhirHttp.Json(Note(patient)));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var id = (await created.ReadAs<Observation>()).Id;
        using var usmp = fixture.Gateway.Fhir();
        var provenance = await DemoFixture.GetJsonAsync(usmp, $"Provenance?target=Observation/{id}");
        var agents = provenance.GetProperty("entry")[0].GetProperty("resource").GetProperty("agent").EnumerateArray()
            .Select(a => a.GetProperty("who").GetProperty("identifier").GetProperty("value").GetString()).ToList();
        Assert.Contains("telemed-demo", agents);
        Assert.Contains(DemoPackages.TelemedicineFiness, agents);

        using var refused = await app.PostAsync("Observation", FhirHttp.Json(Note(other)));
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
    }

    [Fact]
    public async Task Context_since_an_instant_has_only_what_changed_after_it()
    {
        var (patient, _) = await PatientsAsync();
        using var app = fixture.Gateway.Fhir(DemoFixture.TelemedicineFor(patient));
        await Task.Delay(20);
        var since = DateTimeOffset.UtcNow;
        await Task.Delay(20);

        var unchanged = await DemoFixture.GetJsonAsync(app, $"Patient/{patient}/$patient-context?_since={Uri.EscapeDataString(since.ToString("o"))}");
        Assert.Equal(0, unchanged.GetProperty("total").GetInt32());

        using var usmp = fixture.Gateway.Fhir();
        var plans = await DemoFixture.GetJsonAsync(usmp, $"CarePlan?patient={patient}&status=active");
        var plan = plans.GetProperty("entry")[0].GetProperty("resource");
        var updated = (CarePlan)new FhirJsonDeserializer().DeserializeResource(plan.GetRawText());
        updated.Note.Add(new Annotation { Text = "Créneau de téléconsultation ajouté" });
        using (var put = await usmp.PutAsync($"CarePlan/{updated.Id}", FhirHttp.Json(updated))) Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        var changed = await DemoFixture.GetJsonAsync(app, $"Patient/{patient}/$patient-context?_since={Uri.EscapeDataString(since.ToString("o"))}");
        Assert.Equal(new[] { "CarePlan" }, DemoFixture.Types(changed));
    }

    [Fact]
    public async Task Context_of_a_patient_hidden_by_consent_is_404_like_a_read()
    {
        var (patient, _) = await PatientsAsync();
        using var csapaB = fixture.Gateway.Fhir(DemoFixture.CsapaB);
        using var response = await csapaB.GetAsync($"Patient/{patient}/$patient-context");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Spip_context_leaves_clinical_sections_out_and_says_which()
    {
        var (patient, _) = await PatientsAsync();
        using var spip = fixture.Gateway.Fhir(DemoFixture.Spip);

        var context = await DemoFixture.GetJsonAsync(spip, $"Patient/{patient}/$patient-context");

        Assert.Equal(new[] { "Patient", "Appointment" }, DemoFixture.Types(context).Order(StringComparer.Ordinal).Reverse().ToList());
        var outcome = Assert.Single(DemoFixture.Types(context, "outcome"));
        Assert.Equal("OperationOutcome", outcome);
        var text = context.GetRawText();
        Assert.Contains("MedicationRequest left out", text, StringComparison.Ordinal);
        Assert.DoesNotContain("buprénorphine", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Capability_statement_lists_patient_context()
    {
        using var client = fixture.Gateway.Fhir();
        var metadata = await DemoFixture.GetJsonAsync(client, "metadata");
        var patient = metadata.GetProperty("rest")[0].GetProperty("resource").EnumerateArray().Single(r => r.GetProperty("type").GetString() == "Patient");
        Assert.Contains(patient.GetProperty("operation").EnumerateArray(), o => o.GetProperty("name").GetString() == "patient-context");
    }

    private static IEnumerable<JsonElement> Resources(JsonElement bundle) =>
        bundle.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("resource"));

    private static Observation Note(string patientId) => new()
    {
        Status = ObservationStatus.Final,
        Code = new CodeableConcept("http://loinc.org", "8867-4", "Heart rate"),
        Subject = new ResourceReference("Patient/" + patientId),
        Value = new Quantity { Value = 72, Unit = "/min", System = "http://unitsofmeasure.org", Code = "/min" },
    };
}

public sealed class SqliteTelemedicineContextTests(SqliteDemoFixture fixture) : TelemedicineContextTests(fixture), IClassFixture<SqliteDemoFixture>;

public sealed class PostgresTelemedicineContextTests(PostgresDemoFixture fixture) : TelemedicineContextTests(fixture), IClassFixture<PostgresDemoFixture>;
