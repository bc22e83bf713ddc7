#nullable disable warnings
using System.Net;
using FhirSortie.Server.Consents;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>The rules in profiles/labelling, applied to resources in memory.</summary>
public sealed class SecurityLabellerTests
{
    private static readonly SecurityLabeller Labeller = SecurityLabeller.Load(Path.Combine(AppContext.BaseDirectory, "profiles", "labelling"));

    private static Condition Condition(string icd10) => new()
    {
        Code = new CodeableConcept("http://hl7.org/fhir/sid/icd-10", icd10),
        Subject = new ResourceReference("Patient/p1"),
    };

    private static string[] Labels(Resource r) => r.Meta.Security.Select(c => $"{c.System![(c.System!.LastIndexOf('/') + 1)..]}|{c.Code}").Order().ToArray();

    [Theory]
    [InlineData("N07BC01", "v3-ActCode|ETH")]
    [InlineData("N07BC02", "v3-ActCode|ETH")]
    [InlineData("N07BC51", "v3-ActCode|ETH")]
    [InlineData("N05AH03", "v3-ActCode|PSY")]
    [InlineData("J05AR03", "v3-ActCode|HIV")]
    public void Medication_codes_give_their_sensitivity_and_confidentiality_R(string atc, string label)
    {
        var request = Buprenorphine("t", "p1");
        request.Medication = new CodeableConcept(Atc, atc);
        Assert.True(Labeller.Apply(request));
        Assert.Equal(new[] { label, "v3-Confidentiality|R" }.Order(), Labels(request));
    }

    [Theory]
    [InlineData("F20.0", "PSY")]
    [InlineData("F32", "PSY")]
    [InlineData("X70", "PSY")]
    [InlineData("F11.2", "ETH")]
    [InlineData("B20", "HIV")]
    [InlineData("T74.1", "SDV")]
    public void Condition_codes_give_their_sensitivity(string icd10, string label)
    {
        var condition = Condition(icd10);
        Labeller.Apply(condition);
        Assert.Contains(condition.Meta.Security, c => c.System == SecurityLabels.ActCode && c.Code == label);
        Assert.Contains(condition.Meta.Security, c => c.System == SecurityLabels.Confidentiality && c.Code == "R");
    }

    [Fact]
    public void Naloxone_and_other_conditions_get_no_label()
    {
        var naloxone = Buprenorphine("t", "p1");
        naloxone.Medication = new CodeableConcept(Atc, "V03AB15");
        Assert.False(Labeller.Apply(naloxone));
        Assert.Empty(naloxone.Meta.Security);
        var hepatitis = Condition("B18.2");
        Assert.False(Labeller.Apply(hepatitis));
        Assert.Null(hepatitis.Meta);
    }

    [Fact]
    public void Sender_labels_are_kept_and_a_higher_confidentiality_wins()
    {
        var request = Buprenorphine("t", "p1");
        request.Meta.Security = [new Coding(SecurityLabels.ActCode, "SDV"), new Coding(SecurityLabels.Confidentiality, "V")];
        Labeller.Apply(request);
        Assert.Equal(["v3-ActCode|ETH", "v3-ActCode|SDV", "v3-Confidentiality|V"], Labels(request));
    }

    [Fact]
    public void Applying_twice_changes_nothing_and_duplicates_are_merged()
    {
        var request = Buprenorphine("t", "p1");
        request.Meta.Security = [new Coding(SecurityLabels.ActCode, "ETH"), new Coding(SecurityLabels.ActCode, "ETH"), new Coding(SecurityLabels.Confidentiality, "N")];
        Assert.True(Labeller.Apply(request));
        var once = Labels(request);
        Assert.Equal(["v3-ActCode|ETH", "v3-Confidentiality|R"], once);
        Assert.False(Labeller.Apply(request));
        Assert.Equal(once, Labels(request));
    }

    [Fact]
    public void A_rule_with_an_unknown_label_stops_the_start()
    {
        var rule = new LabellingRule("bad", "XYZ", ["Condition"], "code.coding", ["http://hl7.org/fhir/sid/icd-10"], ["F"]);
        Assert.Throws<InvalidOperationException>(() => new SecurityLabeller([rule]));
    }
}

/// <summary>Labels are added on every kind of write through HTTP, kept across updates, never duplicated.</summary>
public abstract class SecurityLabellingHttpTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private static string[] Sensitivities(Resource r) => r.Meta.Security.Where(c => c.System == SecurityLabels.ActCode).Select(c => c.Code!).Order().ToArray();

    [Fact]
    public async Task Create_update_and_patch_label_the_stored_resource()
    {
        var run = NewRun();
        var created = await Search.SearchHttp.CreateAsync(_fhir, Buprenorphine(run, "p-label"));
        Assert.Equal(["ETH"], Sensitivities(created));
        Assert.Contains(created.Meta.Security, c => c.System == SecurityLabels.Confidentiality && c.Code == "R");

        // The read-back resource sent again: same labels, once each.
        var updated = await (await _fhir.PutAsync($"MedicationRequest/{created.Id}", FhirHttp.Json(created))).ReadAs<MedicationRequest>();
        Assert.Equal(created.Meta.Security.Count, updated.Meta.Security.Count);
        Assert.Equal("2", updated.Meta.VersionId);

        var naloxone = Buprenorphine(run, "p-label");
        naloxone.Medication = new CodeableConcept(Atc, "V03AB15");
        var plain = await Search.SearchHttp.CreateAsync(_fhir, naloxone);
        Assert.Empty(plain.Meta.Security);
        var patch = new HttpRequestMessage(HttpMethod.Patch, $"MedicationRequest/{plain.Id}")
        {
            Content = FhirHttp.Json("""[{"op":"replace","path":"/medicationCodeableConcept/coding/0/code","value":"N07BC02"}]"""),
        };
        patch.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json-patch+json");
        var patched = await _fhir.SendAsync(patch);
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        Assert.Equal(["ETH"], Sensitivities(await patched.ReadAs<MedicationRequest>()));

        var found = await Search.SearchHttp.SearchAsync(_fhir, $"MedicationRequest?_tag={RunTag}|{run}&_security={SecurityLabels.ActCode}|ETH");
        Assert.Equal(2, found.Total);
    }

    [Fact]
    public async Task Transaction_entries_are_labelled()
    {
        var run = NewRun();
        var condition = new Condition
        {
            Meta = Tagged(run),
            Code = new CodeableConcept("http://hl7.org/fhir/sid/icd-10", "F20.0"),
            Subject = new ResourceReference("Patient/p-label"),
        };
        var bundle = new Bundle
        {
            Type = Bundle.BundleType.Transaction,
            Entry =
            [
                new Bundle.EntryComponent { Resource = condition, Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "Condition" } },
                new Bundle.EntryComponent { Resource = Buprenorphine(run, "p-label"), Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = "MedicationRequest" } },
            ],
        };
        var response = await _fhir.PostAsync("", FhirHttp.Json(bundle));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var psy = await Search.SearchHttp.SearchAsync(_fhir, $"Condition?_tag={RunTag}|{run}&_security={SecurityLabels.ActCode}|PSY");
        Assert.Equal(1, psy.Total);
        var eth = await Search.SearchHttp.SearchAsync(_fhir, $"MedicationRequest?_tag={RunTag}|{run}&_security={SecurityLabels.ActCode}|ETH");
        Assert.Equal(1, eth.Total);
    }
}

public sealed class SqliteSecurityLabellingHttpTests(SqliteGateway gateway) : SecurityLabellingHttpTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresSecurityLabellingHttpTests(PostgresGateway gateway) : SecurityLabellingHttpTests(gateway), IClassFixture<PostgresGateway>;
