using System.Globalization;
using System.Net;
using FhirSortie.Server.Exit;
using FhirSortie.Server.Security;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Measures;

/// <summary>
/// A prison's USMP as the indicator tests craft it: its Organization (a FINESS of its own, valid key) and a client acting
/// for it, which records releases step by step at the times given (the gateway's clock is set before each write): the
/// stay posted while in progress, the exit package (liaison letter) when it was posted, the stay finished at release.
/// </summary>
internal sealed class Prison(Gateway gateway, MovableClock clock, string finess, string organizationId, string name)
{
    private static int _next = 100;

    public string Finess { get; } = finess;
    public string OrganizationId { get; } = organizationId;
    public string Name { get; } = name;
    public HttpClient Usmp { get; } = gateway.Fhir(TestAuthenticationHandler.Describe("usmp-" + finess, ActorKind.Usmp, finess, "system/*.cruds"));

    public static async Task<Prison> CreateAsync(Gateway gateway, MovableClock clock, string name)
    {
        var finess = NewFiness();
        var usmp = gateway.Fhir(TestAuthenticationHandler.Describe("usmp-" + finess, ActorKind.Usmp, finess, "system/*.cruds"));
        var organization = await usmp.CreateAsync(new Organization { Identifier = [new Identifier(Domain.Finess, finess)], Name = name });
        return new Prison(gateway, clock, finess, organization.Id!, name);
    }

    /// <summary>A FINESS no other test uses: 8 digits and the Luhn key (Security/Finess.cs).</summary>
    public static string NewFiness()
    {
        var body = "93" + Interlocked.Increment(ref _next).ToString("D3", CultureInfo.InvariantCulture) + Random.Shared.Next(100, 999).ToString(CultureInfo.InvariantCulture);
        for (var key = 0; key < 10; key++)
        {
            var candidate = body + key.ToString(CultureInfo.InvariantCulture);
            if (FhirSortie.Server.Security.Finess.IsValid(candidate)) return candidate;
        }
        throw new InvalidOperationException("no Luhn key");
    }

    public sealed record Release(string PatientId, Encounter Stay);

    /// <summary>
    /// One release at <paramref name="released"/> (kind <paramref name="kind"/>), its liaison letter posted at
    /// <paramref name="package"/> (none when null). The stay is posted 30 days before the earlier of both, planned for
    /// <paramref name="planned"/> (default: the release), and finished at the release.
    /// </summary>
    public async Task<Release> ReleaseAsync(DateTimeOffset released, DateTimeOffset? package, string kind = "fin-de-peine", DateTimeOffset? planned = null)
    {
        var first = package is { } p && p < released ? p : released;
        clock.Now = first.AddDays(-30);
        var run = Domain.NewRun();
        var ins = "1800299" + Random.Shared.NextInt64(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);
        var patient = (await Usmp.CreateAsync(Domain.Patient(run, ins, "Sortant"))).Id!;
        var stay = await Usmp.CreateAsync(Stay(run, patient, planned ?? released, kind));
        var steps = new List<(DateTimeOffset At, Func<System.Threading.Tasks.Task> Step)>
        {
            (released, async () => stay = await FinishAsync(stay, released)),
        };
        if (package is { } posted) steps.Add((posted, () => PostLetterAsync(patient, stay.Id!)));
        foreach (var (at, step) in steps.OrderBy(s => s.At))
        {
            clock.Now = at;
            await step();
        }
        return new Release(patient, stay);
    }

    /// <summary>A stay still in progress, planned for <paramref name="planned"/>: no release yet.</summary>
    public async Task<Encounter> PlannedAsync(DateTimeOffset planned)
    {
        clock.Now = planned.AddDays(-30);
        var run = Domain.NewRun();
        var ins = "1800299" + Random.Shared.NextInt64(10_000_000, 99_999_999).ToString(CultureInfo.InvariantCulture);
        var patient = (await Usmp.CreateAsync(Domain.Patient(run, ins, "Sortant"))).Id!;
        var stay = await Usmp.CreateAsync(Stay(run, patient, planned, "fin-de-peine"));
        await PostLetterAsync(patient, stay.Id!);
        return stay;
    }

    public async Task<Composition> PostLetterAsync(string patient, string stayId, string title = "Lettre de liaison de sortie")
    {
        return await Usmp.CreateAsync(new Composition
        {
            Status = CompositionStatus.Final,
            Type = new CodeableConcept(Domain.Loinc, "18842-5"),
            Subject = new ResourceReference("Patient/" + patient),
            Encounter = new ResourceReference("Encounter/" + stayId),
            DateElement = new FhirDateTime(clock.Now),
            Author = [new ResourceReference { Display = "Dr Médecin USMP" }],
            Title = title,
        });
    }

    public async Task<Encounter> FinishAsync(Encounter stay, DateTimeOffset released)
    {
        stay.Status = Encounter.EncounterStatus.Finished;
        stay.Period!.End = Text(released);
        var response = await Usmp.PutAsync($"Encounter/{stay.Id}", FhirHttp.Json(stay));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.ReadAs<Encounter>();
    }

    public static string Text(DateTimeOffset instant) => instant.ToString("yyyy-MM-ddTHH:mm:sszzz", CultureInfo.InvariantCulture);

    private Encounter Stay(string run, string patient, DateTimeOffset planned, string kind) => new()
    {
        Meta = new Meta
        {
            Profile = [ReleaseDates.Profile],
            Tag = [new Coding("https://fhirsortie.fr/fhir/CodeSystem/exit-package-status", "complete")],
        },
        Extension = [new Extension(ReleaseDates.CertaintyUrl, new Code(ReleaseDates.Estimated))],
        Identifier = [new Identifier($"https://fhirsortie.example.fr/usmp-{Finess}/encounter", "SEJ-" + run)],
        Status = Encounter.EncounterStatus.InProgress,
        Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
        Type = [new CodeableConcept(ReleaseDates.EncounterTypes, ReleaseDates.DetentionStayCode)],
        Subject = new ResourceReference("Patient/" + patient),
        Period = new Period { Start = Text(planned.AddDays(-200)), End = Text(planned) },
        Hospitalization = new Encounter.HospitalizationComponent { DischargeDisposition = new CodeableConcept(ReleaseDates.ExitKinds, kind) },
        Location = [new Encounter.LocationComponent { Location = new ResourceReference { Display = Name } }],
        ServiceProvider = new ResourceReference("Organization/" + OrganizationId),
    };

    /// <summary>An instant, Paris time (the offset of that date: +01:00 in winter, +02:00 in summer).</summary>
    public static DateTimeOffset Paris(int year, int month, int day, int hour = 12, int minute = 0)
    {
        var local = new DateTime(year, month, day, hour, minute, 0, DateTimeKind.Unspecified);
        var offset = TimeSpan.FromMilliseconds(FhirSortie.Server.Measures.ParisTime.OffsetAt(
            new DateTimeOffset(local, TimeSpan.FromHours(1)).ToUnixTimeMilliseconds()));
        return new DateTimeOffset(local, offset);
    }
}
