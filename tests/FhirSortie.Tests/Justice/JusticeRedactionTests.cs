using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Tests.Consents;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Justice;

/// <summary>
/// What a justice or social actor reads of an Appointment (date, place, status, care organisation) and of a Patient
/// (demographics), on every path that discloses them, flagged REDACTED; care actors still get the whole resource.
/// </summary>
public abstract class JusticeRedactionTests(Gateway gateway)
{
    [Fact]
    public async Task Read_of_an_appointment_gives_date_place_status_and_care_organisation_only()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var response = await JusticeRecord.Spip(gateway, "spip-read").GetAsync($"Appointment/{record.AppointmentId}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("méthadone", body, StringComparison.Ordinal);
        Assert.DoesNotContain("Addictologue", body, StringComparison.Ordinal);
        Assert.Equal(body.Length, response.Content.Headers.ContentLength);
        record.AssertRedacted(await response.ReadAs<Appointment>());

        // The care organisation that wrote it reads it whole, without the flag.
        var whole = await gateway.Fhir().GetAsync($"Appointment/{record.AppointmentId}");
        var full = await whole.ReadAs<Appointment>();
        Assert.Equal("Consultation addictologie : ajustement méthadone", full.Description);
        Assert.Equal(4, full.Participant.Count);
        Assert.DoesNotContain(full.Meta?.Security ?? [], c => c.Code == Redaction.RedactedCode);
    }

    [Fact]
    public async Task Patient_read_gives_demographics_only()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var patient = await (await JusticeRecord.Spip(gateway, "spip-patient").GetAsync($"Patient/{record.PatientId}")).ReadAs<Patient>();
        record.AssertRedacted(patient);
        var whole = await (await gateway.Fhir().GetAsync($"Patient/{record.PatientId}")).ReadAs<Patient>();
        Assert.Single(whole.Extension);
        Assert.Single(whole.GeneralPractitioner);
    }

    [Fact]
    public async Task Vread_history_search_includes_and_everything_are_redacted()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var spip = JusticeRecord.Spip(gateway, "spip-paths");

        record.AssertRedacted(await (await spip.GetAsync($"Appointment/{record.AppointmentId}/_history/1")).ReadAs<Appointment>());

        var history = await spip.SearchAsync($"Appointment/{record.AppointmentId}/_history");
        record.AssertRedacted(Assert.IsType<Appointment>(Assert.Single(history.Entry).Resource));

        var search = await spip.SearchAsync($"Appointment?patient=Patient/{record.PatientId}");
        record.AssertRedacted(Assert.IsType<Appointment>(Assert.Single(search.Entry).Resource));

        var compartment = await spip.SearchAsync($"Patient/{record.PatientId}/Appointment");
        record.AssertRedacted(Assert.IsType<Appointment>(Assert.Single(compartment.Entry).Resource));

        var included = await spip.SearchAsync($"Patient?_id={record.PatientId}&_revinclude=Appointment:patient");
        record.AssertRedacted(Assert.IsType<Patient>(included.Entry.Single(e => e.Search?.Mode == Bundle.SearchEntryMode.Match).Resource));
        record.AssertRedacted(Assert.IsType<Appointment>(included.Entry.Single(e => e.Search?.Mode == Bundle.SearchEntryMode.Include).Resource));

        var everything = await spip.SearchAsync($"Patient/{record.PatientId}/$everything");
        record.AssertRedacted(everything.Entry.Select(e => e.Resource).OfType<Appointment>().Single());
        record.AssertRedacted(everything.Entry.Select(e => e.Resource).OfType<Patient>().Single());
        Assert.Equal(new[] { record.PatientId, record.AppointmentId, record.AttestationId }.Order(), everything.Matches().Order());
        var typed = await spip.SearchAsync($"Patient/{record.PatientId}/$everything?_type=Appointment");
        record.AssertRedacted(Assert.IsType<Appointment>(Assert.Single(typed.Entry).Resource));
    }

    [Fact]
    public async Task Batch_get_entries_are_redacted()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var batch = new Bundle
        {
            Type = Bundle.BundleType.Batch,
            Entry =
            [
                new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.GET, Url = $"Appointment/{record.AppointmentId}" } },
                new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.GET, Url = $"Appointment?patient=Patient/{record.PatientId}" } },
                new Bundle.EntryComponent { Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.GET, Url = $"Patient/{record.PatientId}" } },
            ],
        };
        var response = await JusticeRecord.Spip(gateway, "spip-batch").PostAsync("", FhirHttp.Json(batch));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await response.ReadAs<Bundle>();
        Assert.Equal(3, answer.Entry.Count);
        record.AssertRedacted(Assert.IsType<Appointment>(answer.Entry[0].Resource));
        record.AssertRedacted(Assert.IsType<Appointment>(Assert.Single(Assert.IsType<Bundle>(answer.Entry[1].Resource).Entry).Resource));
        record.AssertRedacted(Assert.IsType<Patient>(answer.Entry[2].Resource));
    }

    [Fact]
    public async Task Xml_and_summary_answers_are_redacted_too()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var spip = JusticeRecord.Spip(gateway, "spip-xml");
        var xml = await spip.GetAsync($"Appointment/{record.AppointmentId}?_format=xml");
        Assert.Equal(HttpStatusCode.OK, xml.StatusCode);
        var text = await xml.Content.ReadAsStringAsync();
        Assert.StartsWith("<Appointment", text.TrimStart(), StringComparison.Ordinal);
        Assert.DoesNotContain("méthadone", text, StringComparison.Ordinal);
        Assert.Contains(Redaction.RedactedCode, text, StringComparison.Ordinal);

        var pretty = await (await spip.GetAsync($"Appointment/{record.AppointmentId}?_pretty=true&_elements=description,status")).Content.ReadAsStringAsync();
        Assert.DoesNotContain("méthadone", pretty, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Social_actor_with_consent_reads_the_same_redacted_appointment()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var social = JusticeRecord.Social(gateway, "social-redaction");
        // Social actors need the person's consent (issue 5 rule 1): without it, hidden like an unknown id.
        Assert.Equal(HttpStatusCode.NotFound, (await social.GetAsync($"Appointment/{record.AppointmentId}")).StatusCode);
        await gateway.Fhir().CreateAsync(TestConsents.Permit(record.PatientId, JusticeRecord.SocialFiness, "Appointment", "Patient"));
        record.AssertRedacted(await (await social.GetAsync($"Appointment/{record.AppointmentId}")).ReadAs<Appointment>());
        record.AssertRedacted(await (await social.GetAsync($"Patient/{record.PatientId}")).ReadAs<Patient>());
    }
}

public sealed class SqliteJusticeRedactionTests(SqliteGateway gateway) : JusticeRedactionTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresJusticeRedactionTests(PostgresGateway gateway) : JusticeRedactionTests(gateway), IClassFixture<PostgresGateway>;
