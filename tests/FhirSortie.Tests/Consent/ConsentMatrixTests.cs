using FhirSortie.Server.Consents;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Consents;

/// <summary>
/// Sets up every consent state of the access matrix on a gateway, through HTTP as the USMP would: the
/// organisations, one patient per state, its Consents. The decision point then reads them from the database.
/// </summary>
public abstract class ConsentMatrixFixture<TGateway> : IAsyncLifetime where TGateway : Gateway, new()
{
    public TGateway Gateway { get; } = new();
    public AccessMatrix Matrix { get; } = AccessMatrix.Load();
    public Dictionary<string, string> Patients { get; } = [];
    public Dictionary<string, HashSet<string>> ConsentIds { get; } = [];
    public string OtherPatient { get; private set; } = "";
    /// <summary>Resources written for HTTP runs of the matrix, by "resource|author|consent state" (see ConsentHttpMatrixTests).</summary>
    public Dictionary<string, (string Type, string Id)> Made { get; } = [];

    public async Task InitializeAsync()
    {
        var fhir = Gateway.Fhir();
        foreach (var organisation in Matrix.OrganisationResources())
        {
            var response = await fhir.PutAsync($"Organization/{organisation.Id}", FhirHttp.Json(organisation));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }
        var now = DateTimeOffset.UtcNow;
        var run = NewRun();
        OtherPatient = (await Search.SearchHttp.CreateAsync(fhir, Patient(run, "180029900000001", "Ailleurs"))).Id!;
        foreach (var state in Matrix.ConsentStates.Keys)
        {
            var patient = Patient(run, "180029900000002", "Etat-" + state);
            patient.ManagingOrganization = new ResourceReference("Organization/matrix-usmp");
            Patients[state] = (await Search.SearchHttp.CreateAsync(fhir, patient)).Id!;
            ConsentIds[state] = [];
            foreach (var consent in Matrix.ConsentsFor(state, Patients[state], now))
                ConsentIds[state].Add((await Search.SearchHttp.CreateAsync(fhir, consent)).Id!);
        }
    }

    public Task DisposeAsync()
    {
        Gateway.Dispose();
        return Task.CompletedTask;
    }
}

public sealed class SqliteConsentMatrixFixture : ConsentMatrixFixture<SqliteGateway>;
public sealed class PostgresConsentMatrixFixture : ConsentMatrixFixture<PostgresGateway>;

/// <summary>Every row of the access matrix gives its expected decision from the decision point, with stored Consents.</summary>
public abstract class ConsentMatrixTests<TGateway>(ConsentMatrixFixture<TGateway> fixture) where TGateway : Gateway, new()
{
    public static IEnumerable<object[]> Cases() => AccessMatrix.Load().Cases.Select((c, i) => new object[] { i, c.ToString() });

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Matrix_row_gets_its_expected_decision(int row, string description)
    {
        var matrix = fixture.Matrix;
        var c = matrix.Cases[row];
        var resource = matrix.Resources[c.Resource];
        var patient = fixture.Patients[c.Consent];
        var caller = matrix.Caller(c, $"matrix-{c.Actor}-{row}", patient, fixture.OtherPatient);
        var request = new AccessRequest(
            caller,
            c.Purpose ?? AccessRules.Treatment,
            resource.OutsidePatient ? null : patient,
            resource.Type,
            resource.Labels,
            matrix.Organisations[c.Author ?? "usmp"],
            resource.Attestation);
        var decisions = fixture.Gateway.Services.GetRequiredService<ConsentDecisions>();

        var decision = await decisions.DecideAsync(request, new PurposeOfUse(c.Purpose ?? AccessRules.Treatment, c.BreakGlassReason), CancellationToken.None);

        Assert.True(decision.Permitted == (c.Expect == "permit"), $"{description}: got {(decision.Permitted ? "permit" : "deny")} ({decision.Reason})");
        if (c.BreakGlass is { } breakGlass) Assert.Equal(breakGlass, decision.BreakGlass);
        if (c.ExpectConsentId) Assert.True(decision.ConsentId is { } id && fixture.ConsentIds[c.Consent].Contains(id), $"{description}: permitting consent {decision.ConsentId}");
    }
}

public sealed class SqliteConsentMatrixTests(SqliteConsentMatrixFixture fixture)
    : ConsentMatrixTests<SqliteGateway>(fixture), IClassFixture<SqliteConsentMatrixFixture>;
public sealed class PostgresConsentMatrixTests(PostgresConsentMatrixFixture fixture)
    : ConsentMatrixTests<PostgresGateway>(fixture), IClassFixture<PostgresConsentMatrixFixture>;
