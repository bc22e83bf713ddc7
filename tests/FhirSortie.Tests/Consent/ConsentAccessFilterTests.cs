using FhirSortie.Server.Consents;
using FhirSortie.Server.Security;

namespace FhirSortie.Tests.Consents;

public sealed class ConsentAccessFilterTests
{
    private static Caller Of(ActorKind kind, string? patient = null) => new("c", kind, "750000028", ["system/*.rs"], patient, null);

    [Fact]
    public void Only_auditors_see_AuditEvents()
    {
        Assert.True(ConsentAccessFilter.For(Of(ActorKind.Auditor)).AllowsType("AuditEvent"));
        Assert.False(ConsentAccessFilter.For(Of(ActorKind.Auditor)).AllowsType("Condition"));
        foreach (var kind in new[] { ActorKind.Usmp, ActorKind.Csapa, ActorKind.Telemedicine, ActorKind.Admin, ActorKind.Justice })
            Assert.False(ConsentAccessFilter.For(Of(kind)).AllowsType("AuditEvent"));
        Assert.True(ConsentAccessFilter.For(Of(ActorKind.Csapa)).AllowsType("MedicationRequest"));
    }

    [Fact]
    public void Justice_and_social_searches_see_administrative_unlabelled_resources_only()
    {
        var filter = ConsentAccessFilter.For(Of(ActorKind.Justice));
        Assert.True(filter.AllowsType("Appointment"));
        Assert.False(filter.AllowsType("Condition"));
        Assert.False(filter.AllowsType("MedicationRequest"));
        Assert.Contains((SecurityLabels.ActCode, "PSY"), filter.DeniedLabels!);
        Assert.Contains((SecurityLabels.Confidentiality, "R"), filter.DeniedLabels!);
    }

    [Fact]
    public void A_launch_patient_restricts_searches_to_that_patient()
    {
        Assert.Equal(["p1"], ConsentAccessFilter.For(Of(ActorKind.Telemedicine, "p1")).PatientIds!);
        Assert.Null(ConsentAccessFilter.For(Of(ActorKind.Usmp)).PatientIds);
    }
}
