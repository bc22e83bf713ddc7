using FhirSortie.Server.Security;

namespace FhirSortie.Tests.Security;

/// <summary>The SMART scope parser: v2 letters, v1 names, granular restrictions, and what grants nothing.</summary>
public sealed class SmartScopeTests
{
    [Theory]
    [InlineData("patient/Observation.rs", ScopeContext.Patient, "Observation", ScopePermissions.Read | ScopePermissions.Search)]
    [InlineData("user/*.cruds", ScopeContext.User, null, ScopePermissions.Create | ScopePermissions.Read | ScopePermissions.Update | ScopePermissions.Delete | ScopePermissions.Search)]
    [InlineData("system/Patient.c", ScopeContext.System, "Patient", ScopePermissions.Create)]
    [InlineData("system/Patient.ud", ScopeContext.System, "Patient", ScopePermissions.Update | ScopePermissions.Delete)]
    [InlineData("system/Patient.crds", ScopeContext.System, "Patient", ScopePermissions.Create | ScopePermissions.Read | ScopePermissions.Delete | ScopePermissions.Search)]
    [InlineData("patient/*.read", ScopeContext.Patient, null, ScopePermissions.Read | ScopePermissions.Search)]
    [InlineData("user/Observation.write", ScopeContext.User, "Observation", ScopePermissions.Create | ScopePermissions.Update | ScopePermissions.Delete)]
    [InlineData("system/*.*", ScopeContext.System, null, ScopePermissions.Create | ScopePermissions.Read | ScopePermissions.Update | ScopePermissions.Delete | ScopePermissions.Search)]
    public void Valid_scopes_parse_to_context_type_and_letters(string text, ScopeContext context, string? type, ScopePermissions permissions)
    {
        var scope = SmartScope.TryParse(text);
        Assert.NotNull(scope);
        Assert.Equal(context, scope.Context);
        Assert.Equal(type, scope.ResourceType);
        Assert.Equal(permissions, scope.Permissions);
        Assert.False(scope.IsRestricted);
        Assert.Equal(text, scope.Text);
    }

    [Theory]
    [InlineData("openid")]
    [InlineData("fhirUser")]
    [InlineData("launch")]
    [InlineData("launch/patient")]
    [InlineData("offline_access")]
    [InlineData("")]
    [InlineData("patient/Observation.")]
    [InlineData("patient/Observation.sr")] // letters out of order
    [InlineData("patient/Observation.rr")]
    [InlineData("patient/Observation.x")]
    [InlineData("patient/Observation.readwrite")]
    [InlineData("patient/Observation")]
    [InlineData("admin/Observation.rs")]
    [InlineData("patient/NotAType.rs")]
    [InlineData("patient/Resource.rs")]
    [InlineData("patient/observation.rs")] // types are case-sensitive
    [InlineData("/Observation.rs")]
    [InlineData("patient/*.rs?category=laboratory")] // a restriction needs a type to mean anything
    [InlineData("patient/Observation.read?category=laboratory")] // restrictions are v2 only
    [InlineData("patient/Observation.rs?")]
    [InlineData("patient/Observation.rs?category")]
    [InlineData("patient/Observation.rs?_include=Observation:subject")]
    [InlineData("patient/Observation.rs?subject:Patient.name=x")]
    [InlineData("patient/Observation.rs extra")]
    public void Non_resource_or_malformed_scopes_grant_nothing(string text) => Assert.Null(SmartScope.TryParse(text));

    [Fact]
    public void Granular_restriction_keeps_its_parameters_decoded()
    {
        var scope = SmartScope.TryParse("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category%7Claboratory&status=final");
        Assert.NotNull(scope);
        Assert.True(scope.IsRestricted);
        Assert.Equal(
            [new("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"), new("status", "final")],
            scope.Restriction);
    }

    [Theory]
    [InlineData("system/*.rs", "system/MedicationRequest.rs", true)]
    [InlineData("system/*.rs", "system/*.read", true)]
    [InlineData("system/*.read", "system/Patient.rs", true)]
    [InlineData("system/*.rs", "system/Observation.rs?category=laboratory", true)]
    [InlineData("system/*.cruds", "system/*.write", true)]
    [InlineData("system/*.*", "system/Patient.cruds", true)]
    [InlineData("system/Observation.rs?category=a,b", "system/Observation.r?category=a&status=final", true)]
    [InlineData("system/Observation.rs?category=a", "system/Observation.rs?category=a,b", false)]
    [InlineData("system/Observation.rs?category=a", "system/Observation.rs", false)]
    [InlineData("system/Observation.rs?category=a", "system/Observation.rs?status=final", false)]
    [InlineData("system/*.rs", "system/*.rus", false)]
    [InlineData("system/*.rs", "system/*.write", false)]
    [InlineData("system/Patient.rs", "system/*.rs", false)]
    [InlineData("system/Patient.rs", "system/Observation.r", false)]
    [InlineData("user/*.rs", "patient/*.rs", false)]
    [InlineData("patient/*.rs", "system/*.rs", false)]
    public void A_scope_includes_the_same_or_fewer_types_letters_and_added_restrictions(string registered, string requested, bool included) =>
        Assert.Equal(included, SmartScope.TryParse(registered)!.Includes(SmartScope.TryParse(requested)!));

    [Theory]
    [InlineData("launch openid patient/*.rs", "openid", true)]
    [InlineData("launch openid patient/*.rs", "patient/Observation.read", true)]
    [InlineData("patient/*.rs", "launch", false)]
    [InlineData("system/*.rs", "system/Nothing.rs", false)]
    public void Negotiation_grants_non_resource_scopes_only_as_registered(string registered, string requested, bool granted) =>
        Assert.Equal(granted, ScopeNegotiation.Covers(registered.Split(' '), requested));

    [Fact]
    public void Patient_scopes_count_only_with_a_launch_patient()
    {
        string[] granted = ["openid", "launch/patient", "patient/*.rs", "user/Practitioner.r", "nonsense"];
        Assert.Equal(["user/Practitioner.r"], new ScopeSet(granted, null).Usable.Select(s => s.Text));
        Assert.Equal(["patient/*.rs", "user/Practitioner.r"], new ScopeSet(granted, "p1").Usable.Select(s => s.Text));
    }
}
