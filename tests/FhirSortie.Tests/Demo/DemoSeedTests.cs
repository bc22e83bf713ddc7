using System.Net;
using FhirSortie.Server.Demo;
using FhirSortie.Server.Profiles;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Demo;

/// <summary>The demo data set as the receiving sides see it (domain scenarios 1, 2, 3, 5 on seeded data), and seeding twice.</summary>
public abstract class DemoSeedTests(DemoFixture fixture)
{
    private HttpClient As(string caller) => fixture.Gateway.Fhir(caller);

    [Fact]
    public async Task Seeding_again_creates_nothing_and_each_person_exists_once()
    {
        Assert.All(fixture.FirstSeeding.Packages, p => Assert.True(p.Created > 0, p.Package));
        Assert.Equal(1, fixture.FirstSeeding.Withdrawn);

        using var usmp = fixture.Gateway.Fhir();
        var again = await new DemoSeeder(usmp).SeedAsync(DateTimeOffset.UtcNow, CancellationToken.None);

        Assert.All(again.Packages, p => Assert.Equal(0, p.Created));
        Assert.Equal(0, again.Withdrawn);
        var patients = await DemoFixture.GetJsonAsync(usmp, $"Patient?identifier={DemoIdentifiers.InsDemo}|&_count=50");
        Assert.Equal(6, patients.GetProperty("total").GetInt32());
        var consents = await DemoFixture.GetJsonAsync(usmp, $"Consent?identifier={DemoIdentifiers.Local}/consent|&_summary=count");
        // P1 two (CSAPA A, telemedicine), P2, P3, P5, P6 one each, P4 the contact with the CSAPA référent (issue 22 view 2).
        Assert.Equal(7, consents.GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Csapa_A_pulls_the_planned_exit_prescriptions_with_prescriber_and_last_supervised_dose_and_Csapa_B_sees_nothing()
    {
        var patient = await fixture.PatientIdAsync(DemoPackages.PlannedExitIns);

        using var csapa = As(DemoFixture.CsapaA);
        var pulled = await DemoFixture.GetJsonAsync(csapa, $"MedicationRequest?patient={patient}&status=active&_include=MedicationRequest:requester&_revinclude=MedicationAdministration:request");
        var requests = pulled.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("resource"))
            .Where(r => r.GetProperty("resourceType").GetString() == "MedicationRequest").ToList();
        Assert.Equal(4, requests.Count);
        var codes = requests.Select(r => r.GetProperty("medicationCodeableConcept").GetProperty("coding")[0].GetProperty("code").GetString()).ToList();
        Assert.Equal(2, codes.Count(c => c == "N07BC01")); // the prescription and the 7-day bridging supply
        Assert.Contains("V03AB15", codes);
        Assert.Contains("J05AP55", codes);
        Assert.Contains(requests, r => r.GetProperty("dispenseRequest").TryGetProperty("expectedSupplyDuration", out var supply) && supply.GetProperty("value").GetInt32() == 7);
        Assert.Contains("Practitioner", DemoFixture.Types(pulled, "include"));
        Assert.Contains("MedicationAdministration", DemoFixture.Types(pulled, "include"));

        using var other = As(DemoFixture.CsapaB);
        var nothing = await DemoFixture.GetJsonAsync(other, $"MedicationRequest?patient={patient}");
        Assert.Equal(0, nothing.GetProperty("total").GetInt32());
        using var read = await other.GetAsync($"Patient/{patient}");
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
    }

    [Fact]
    public async Task Spip_sees_the_appointment_and_the_attendance_attestation_but_never_the_letter_or_a_prescription()
    {
        var planned = await fixture.PatientIdAsync(DemoPackages.PlannedExitIns);
        var act = await fixture.PatientIdAsync(DemoPackages.ActAdmissionIns);
        using var usmp = fixture.Gateway.Fhir();
        var letter = await DemoFixture.GetJsonAsync(usmp, $"DocumentReference?patient={planned}&type=http://loinc.org|{DemoPackages.LiaisonLetterLoinc}");
        var letterId = letter.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString();

        using var spip = As(DemoFixture.Spip);
        var appointments = await DemoFixture.GetJsonAsync(spip, $"Appointment?patient={planned}");
        Assert.Equal(1, appointments.GetProperty("total").GetInt32());
        using (var hidden = await spip.GetAsync($"DocumentReference/{letterId}")) Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
        using (var refused = await spip.GetAsync($"MedicationRequest?patient={planned}")) Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        var documents = await DemoFixture.GetJsonAsync(spip, $"DocumentReference?patient={act}");
        var attestation = Assert.Single(documents.GetProperty("entry").EnumerateArray()).GetProperty("resource");
        Assert.Equal("attendance-attestation", attestation.GetProperty("type").GetProperty("coding")[0].GetProperty("code").GetString());
        var honoured = await DemoFixture.GetJsonAsync(spip, $"Appointment?patient={act}&status=fulfilled");
        Assert.Equal(1, honoured.GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Unannounced_release_without_consent_is_shared_with_no_outside_organisation()
    {
        var patients = await DemoFixture.GetJsonAsync(fixture.Gateway.Fhir(), $"Patient?family=Essai&identifier={DemoIdentifiers.InsDemo}|");
        var patient = patients.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString();

        using var csapa = As(DemoFixture.CsapaA);
        var everything = await DemoFixture.GetJsonAsync(csapa, $"MedicationRequest?patient={patient}");
        Assert.Equal(0, everything.GetProperty("total").GetInt32());
        var own = await DemoFixture.GetJsonAsync(fixture.Gateway.Fhir(), $"Task?patient={patient}");
        Assert.Equal(1, own.GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Withdrawn_consent_shares_nothing_with_the_csapa_it_named()
    {
        var patients = await DemoFixture.GetJsonAsync(fixture.Gateway.Fhir(), $"Patient?family=Spécimen&identifier={DemoIdentifiers.InsDemo}|");
        var patient = patients.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString();
        var consent = await DemoFixture.GetJsonAsync(fixture.Gateway.Fhir(), $"Consent?patient={patient}");
        Assert.Equal("inactive", consent.GetProperty("entry")[0].GetProperty("resource").GetProperty("status").GetString());

        using var csapaB = As(DemoFixture.CsapaB);
        var prescriptions = await DemoFixture.GetJsonAsync(csapaB, $"MedicationRequest?patient={patient}");
        Assert.Equal(0, prescriptions.GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Psychiatric_follow_up_is_labelled_PSY_and_shared_with_the_CMP_only()
    {
        var patients = await DemoFixture.GetJsonAsync(fixture.Gateway.Fhir(), $"Patient?family=Exemple&identifier={DemoIdentifiers.InsDemo}|");
        var patient = patients.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString();

        using var cmp = As(DemoFixture.Cmp);
        var conditions = await DemoFixture.GetJsonAsync(cmp, $"Condition?patient={patient}&_security=PSY");
        Assert.Equal(1, conditions.GetProperty("total").GetInt32());
        using var csapa = As(DemoFixture.CsapaA);
        var none = await DemoFixture.GetJsonAsync(csapa, $"Condition?patient={patient}");
        Assert.Equal(0, none.GetProperty("total").GetInt32());
    }
}

/// <summary>The packages themselves: fictitious identifiers whose keys the gateway's own checks accept.</summary>
public sealed class DemoPackagesTests
{
    [Fact]
    public void Every_national_identifier_in_the_packages_has_a_valid_key()
    {
        var identifiers = DemoPackages.All(DateTimeOffset.UtcNow)
            .SelectMany(p => p.Transaction.Entry)
            .SelectMany(e => e.Resource switch
            {
                Patient patient => patient.Identifier,
                Practitioner practitioner => practitioner.Identifier,
                Organization organization => organization.Identifier,
                _ => [],
            })
            .ToList();
        Assert.Equal(6, identifiers.Count(i => i.System == DemoIdentifiers.InsDemo));
        foreach (var identifier in identifiers)
        {
            var kind = identifier.System switch
            {
                DemoIdentifiers.InsDemo => IdentifierKeyKind.Nir,
                DemoIdentifiers.Rpps => IdentifierKeyKind.Rpps,
                DemoIdentifiers.Finess => IdentifierKeyKind.Finess,
                var other => throw new InvalidOperationException("unexpected identifier system " + other),
            };
            Assert.Null(IdentifierKeys.Check(kind, identifier.Value!));
        }
    }

    [Fact]
    public void Every_entry_is_a_conditional_create_on_an_identifier()
    {
        foreach (var entry in DemoPackages.All(DateTimeOffset.UtcNow).SelectMany(p => p.Transaction.Entry))
        {
            // The one exception: the USMP doctor is written at its fixed id, the portal user's fhirUser Practitioner/usmp-medecin.
            if (entry.Resource is Practitioner { Id: DemoPackages.UsmpDoctorId })
            {
                Assert.Equal(Bundle.HTTPVerb.PUT, entry.Request!.Method);
                Assert.Equal("Practitioner/" + DemoPackages.UsmpDoctorId, entry.Request.Url);
                continue;
            }
            Assert.Equal(Bundle.HTTPVerb.POST, entry.Request!.Method);
            Assert.StartsWith("identifier=", entry.Request.IfNoneExist, StringComparison.Ordinal);
        }
    }
}

public sealed class SqliteDemoSeedTests(SqliteDemoFixture fixture) : DemoSeedTests(fixture), IClassFixture<SqliteDemoFixture>;

public sealed class PostgresDemoSeedTests(PostgresDemoFixture fixture) : DemoSeedTests(fixture), IClassFixture<PostgresDemoFixture>;
