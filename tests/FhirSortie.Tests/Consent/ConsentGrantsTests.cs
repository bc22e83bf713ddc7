using FhirSortie.Server.Consents;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Consents;

/// <summary>Grant periods at the edge of what .NET can hold (found while mending year 9999 dates).</summary>
public sealed class ConsentGrantsTests
{
    private static IReadOnlyList<GrantRow> Grants(string? start, string? end) => ConsentGrants.FromConsent(new Hl7.Fhir.Model.Consent
    {
        Id = "edge",
        Status = Hl7.Fhir.Model.Consent.ConsentState.Active,
        Patient = new ResourceReference("Patient/p1"),
        Provision = new Hl7.Fhir.Model.Consent.provisionComponent
        {
            Type = Hl7.Fhir.Model.Consent.ConsentProvisionType.Permit,
            Actor = [new Hl7.Fhir.Model.Consent.provisionActorComponent { Reference = new ResourceReference("Organization/csapa") }],
            Period = new Period { Start = start, End = end },
        },
    }, _ => "750000028");

    [Fact]
    public void A_start_past_the_last_instant_held_never_comes()
    {
        // 9999-12-31T23:00-05:00 is in year 10000 in UTC: taken as "no start", the permit would be active today.
        var row = Assert.Single(Grants("9999-12-31T23:00:00-05:00", null));
        Assert.False(row.ActiveAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
    }

    [Fact]
    public void An_end_on_9999_12_31_runs_to_the_last_instant()
    {
        var row = Assert.Single(Grants("2026-11-23", "9999-12-31"));
        Assert.True(row.ActiveAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        Assert.Equal(DateTimeOffset.MaxValue.ToUnixTimeMilliseconds(), row.PeriodEnd);
    }
}
