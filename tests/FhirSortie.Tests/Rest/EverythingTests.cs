#nullable disable warnings
using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Rest;

/// <summary>Patient/{id}/$everything with start and end: care dates per resource type, undated and timeless resources kept.</summary>
public abstract class EverythingTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private sealed record Record(string Patient, string January, string June, string Undated, string Condition, string JuneVisit);

    /// <summary>A patient with prescriptions of January and June 2026, one undated request, a condition and a June appointment.</summary>
    private async Task<Record> RecordAsync()
    {
        var run = NewRun();
        var patient = await _fhir.CreateAsync(Patient(run, "1" + Random.Shared.NextInt64(10_000_000_000_000, 99_999_999_999_999), "Periode"));
        var january = Buprenorphine(run, patient.Id);
        january.AuthoredOn = "2026-01-10";
        var june = Buprenorphine(run, patient.Id);
        june.AuthoredOn = "2026-06-01T09:30:00+02:00";
        var undated = new ServiceRequest
        {
            Meta = Tagged(run),
            Status = RequestStatus.Active,
            Intent = RequestIntent.Order,
            Code = new CodeableConcept("http://snomed.info/sct", "385763009", "Hand-off to the CSAPA"),
            Subject = new ResourceReference($"Patient/{patient.Id}"),
        };
        var condition = new Condition
        {
            Meta = Tagged(run),
            Code = new CodeableConcept("http://snomed.info/sct", "128302006", "Chronic hepatitis C"),
            Subject = new ResourceReference($"Patient/{patient.Id}"),
            RecordedDate = "2019-03-02",
        };
        var visit = new Appointment
        {
            Meta = Tagged(run),
            Status = Appointment.AppointmentStatus.Booked,
            Start = new DateTimeOffset(2026, 6, 3, 10, 0, 0, TimeSpan.FromHours(2)),
            End = new DateTimeOffset(2026, 6, 3, 10, 30, 0, TimeSpan.FromHours(2)),
            Participant = [new Appointment.ParticipantComponent { Actor = new ResourceReference($"Patient/{patient.Id}"), Status = ParticipationStatus.Accepted }],
        };
        return new Record(patient.Id, (await _fhir.CreateAsync(january)).Id, (await _fhir.CreateAsync(june)).Id, (await _fhir.CreateAsync(undated)).Id,
            (await _fhir.CreateAsync(condition)).Id, (await _fhir.CreateAsync(visit)).Id);
    }

    /// <summary>The matches, without Provenance records (recorded when the test runs: after any window of 2026's first half).</summary>
    private static List<string> Care(Bundle bundle) =>
        bundle.Entry.Where(e => e.Search?.Mode == Bundle.SearchEntryMode.Match && e.Resource is not Provenance).Select(e => e.Resource.Id).Order().ToList();

    [Fact]
    public async Task Start_keeps_care_from_that_date_and_what_has_no_care_date()
    {
        var r = await RecordAsync();

        var bundle = await _fhir.SearchAsync($"Patient/{r.Patient}/$everything?start=2026-05&_count=100");

        Assert.Equal(new[] { r.Patient, r.June, r.Undated, r.Condition, r.JuneVisit }.Order(), Care(bundle));
        // The Provenance of the Patient's creation (its target is the Patient) was recorded today, after the start.
        var provenances = bundle.Entry.Count(e => e.Resource is Provenance);
        Assert.True(provenances >= 1);
        Assert.Equal(5 + provenances, bundle.Total);
        Assert.EndsWith($"/Patient/{r.Patient}/$everything?start=2026-05&_count=100", bundle.Link("self"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task End_keeps_care_up_to_that_date_and_a_window_pages_with_its_total()
    {
        var r = await RecordAsync();

        var before = await _fhir.SearchAsync($"Patient/{r.Patient}/$everything?end=2026-02-01");
        Assert.Equal(new[] { r.Patient, r.January, r.Undated, r.Condition }.Order(), before.Matches().Order());
        Assert.DoesNotContain(before.Entry, e => e.Resource is Provenance);

        // Both ends, one day: the June prescription and the appointment two days later are apart.
        var first = await _fhir.SearchAsync($"Patient/{r.Patient}/$everything?start=2026-06-01&end=2026-06-01&_count=2");
        Assert.Equal(4, first.Total);
        var seen = first.Matches();
        var next = await _fhir.SearchAsync(SearchHttp.Relative(first.Link("next")!));
        seen.AddRange(next.Matches());
        Assert.Equal(new[] { r.Patient, r.June, r.Undated, r.Condition }.Order(), seen.Order());
        // With _type, the window applies to what is left.
        var typed = await _fhir.SearchAsync($"Patient/{r.Patient}/$everything?_type=MedicationRequest,Appointment&start=2026-06-02");
        Assert.Equal([r.JuneVisit], typed.Matches());
    }

    [Theory]
    [InlineData("start=2026-13-01")]
    [InlineData("end=yesterday")]
    [InlineData("start=2026-01-01T10:00:00Z")]
    [InlineData("start=2026&start=2027")]
    public async Task A_start_or_end_that_is_not_one_date_is_400(string query)
    {
        var r = await RecordAsync();
        var outcome = await _fhir.SearchFailsAsync($"Patient/{r.Patient}/$everything?{query}", HttpStatusCode.BadRequest);
        Assert.Contains(outcome.Issue, i => i.Expression.Any(e => e is "start" or "end"));
    }

    [Fact]
    public void Every_care_date_is_a_date_parameter_of_its_type_in_the_patient_compartment()
    {
        var parameters = gateway.Services.GetRequiredService<SearchParameters>();
        var compartments = gateway.Services.GetRequiredService<Compartments>();
        foreach (var (type, code) in Everything.CareDateParameters)
        {
            Assert.True(compartments.IsInPatientCompartment(type), type);
            Assert.Equal(Hl7.Fhir.Model.SearchParamType.Date, parameters.Find(type, code)?.Type);
        }
    }
}

public sealed class SqliteEverythingTests(SqliteGateway gateway) : EverythingTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresEverythingTests(PostgresGateway gateway) : EverythingTests(gateway), IClassFixture<PostgresGateway>;
