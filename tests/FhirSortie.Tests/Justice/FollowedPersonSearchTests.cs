using System.Net;
using FhirSortie.Server.Audit;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Justice;

/// <summary>
/// Justice and social actors identify the person they follow (exact identifier or _id) and search that person's
/// appointments and attestations; every search across patients is 403, and the refusal is audited.
/// </summary>
public abstract class FollowedPersonSearchTests(Gateway gateway)
{
    [Fact]
    public async Task The_person_is_found_by_exact_identifier_or_id_only()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var spip = JusticeRecord.Spip(gateway, "spip-identify");
        Assert.Equal([record.PatientId], (await spip.SearchAsync($"Patient?identifier={Domain.Ins}|{record.Ins}")).Matches());
        Assert.Equal([record.PatientId], (await spip.SearchAsync($"Patient?_id={record.PatientId}")).Matches());
        Assert.Empty((await spip.SearchAsync($"Patient?identifier={Domain.Ins}|000000000000000")).Entry);
    }

    public static TheoryData<string> AcrossPatients() => new()
    {
        "Patient?name=Suivi",
        "Patient?birthdate=1980-02-14",
        "Patient",
        "Patient?_count=50",
        "Patient?identifier={ins}",
        "Patient?identifier=%7C{ins}",
        "Patient?identifier={system}%7C{ins},{system}%7C000000000000000",
        "Patient?identifier:contains={ins}",
        "Patient?_id={patient},other",
        "Patient?_id={patient}&name=Suivi",
        "Patient?_has:Appointment:patient:status=booked",
        "Patient?general-practitioner.name=Addictologue",
        "Patient?_id={patient}&_revinclude=Condition:subject",
        "Patient?_id={patient}&_revinclude=*",
        "Appointment?status=booked",
        "Appointment?date=2026-11-28",
        "Appointment?patient=Patient/{patient},Patient/other",
        "Appointment?patient.name=Suivi",
        "Appointment?patient=Patient/{patient}&_include=Appointment:actor:Practitioner",
        "Appointment?patient=Patient/{patient}&_include=*",
        "DocumentReference?_count=10",
        "DocumentReference?category=attestation-presence",
        "Appointment/_history",
        "_history",
        "?_type=Appointment",
        "?_id={patient}",
        "Condition?subject=Patient/{patient}",
    };

    [Theory]
    [MemberData(nameof(AcrossPatients))]
    public async Task A_search_across_patients_is_403(string template)
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var url = template.Replace("{ins}", record.Ins, StringComparison.Ordinal).Replace("{patient}", record.PatientId, StringComparison.Ordinal)
            .Replace("{system}", Uri.EscapeDataString(Domain.Ins), StringComparison.Ordinal);
        foreach (var client in new[] { JusticeRecord.Spip(gateway, "spip-across"), JusticeRecord.Social(gateway, "social-across") })
        {
            var outcome = await client.SearchFailsAsync(url, HttpStatusCode.Forbidden);
            Assert.Contains(outcome.Issue, i => i.Code == OperationOutcome.IssueType.Forbidden);
        }
    }

    [Fact]
    public async Task The_persons_appointments_and_attestations_are_searched_one_patient_at_a_time()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var spip = JusticeRecord.Spip(gateway, "spip-one");
        Assert.Equal([record.AppointmentId], (await spip.SearchAsync($"Appointment?patient=Patient/{record.PatientId}&status=booked")).Matches());
        Assert.Equal([record.AppointmentId], (await spip.SearchAsync($"Appointment?patient={record.PatientId}&_include=Appointment:actor:Location")).Matches());
        Assert.Equal([record.AttestationId], (await spip.SearchAsync($"DocumentReference?subject=Patient/{record.PatientId}")).Matches());
        Assert.Equal([record.AttestationId], (await spip.SearchAsync($"Patient/{record.PatientId}/DocumentReference")).Matches());
        // Directories hold no patient data.
        Assert.Equal([record.LocationId], (await spip.SearchAsync($"Location?_id={record.LocationId}")).Matches());

        // Pages of an allowed search stay allowed (the paging link is a system-level URL).
        var usmp = gateway.Fhir();
        var second = JusticeRecord.ClinicalAppointment(record.PatientId, record.LocationId, record.CsapaId, record.PractitionerId, record.ConditionId);
        await usmp.CreateAsync(second);
        var first = await spip.SearchAsync($"Appointment?patient=Patient/{record.PatientId}&_count=1");
        var next = first.Link("next");
        Assert.NotNull(next);
        var page = await spip.SearchAsync(SearchHttp.Relative(next!));
        Assert.Single(page.Matches());
        var both = new[] { first, page }.SelectMany(b => b.Entry).Select(e => Assert.IsType<Appointment>(e.Resource)).ToList();
        record.AssertRedacted(both.Single(x => x.Id == record.AppointmentId));
    }

    [Fact]
    public async Task A_refused_search_leaves_an_audit_event_with_outcome_failure()
    {
        var record = await JusticeRecord.CreateAsync(gateway);
        var client = "spip-audited-" + record.Run;
        await JusticeRecord.Spip(gateway, client).SearchFailsAsync("Patient?name=Suivi", HttpStatusCode.Forbidden);
        await JusticeRecord.Spip(gateway, client).SearchFailsAsync("?_type=Appointment,Condition", HttpStatusCode.Forbidden);

        var audits = (await JusticeRecord.Auditor(gateway).SearchAsync("AuditEvent?outcome=4&_sort=-date&_count=500")).Entry
            .Select(e => Assert.IsType<AuditEvent>(e.Resource))
            .Where(a => a.Agent.Any(g => g.Who?.Identifier?.Value == client)).ToList();
        Assert.Equal(2, audits.Count);
        Assert.All(audits, a =>
        {
            Assert.Equal(AuditEvent.AuditEventOutcome.N4, a.Outcome);
            Assert.StartsWith("denied: Justice and social actors", a.OutcomeDesc, StringComparison.Ordinal);
        });
        Assert.Contains(audits, a => a.Subtype.Any(s => s.Code == "search-type"));
        Assert.Contains(audits, a => a.Subtype.Any(s => s.Code == "search-system"));
    }
}

public sealed class SqliteFollowedPersonSearchTests(SqliteGateway gateway) : FollowedPersonSearchTests(gateway), IClassFixture<SqliteGateway>;
public sealed class PostgresFollowedPersonSearchTests(PostgresGateway gateway) : FollowedPersonSearchTests(gateway), IClassFixture<PostgresGateway>;
