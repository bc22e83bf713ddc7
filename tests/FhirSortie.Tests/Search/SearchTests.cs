#nullable disable warnings
using System.Net;
using Hl7.Fhir.Model;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Search;

/// <summary>Search through HTTP: parameter types, modifiers, prefixes, chains, _has, includes, sort, paging. Both dialects.</summary>
public abstract class SearchTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private Task<T> Create<T>(T resource) where T : Resource => _fhir.CreateAsync(resource);

    private Task<Bundle> Search(string url) => _fhir.SearchAsync(url);

    [Fact]
    public async Task String_search_is_starts_with_ignoring_case_and_accents_with_exact_and_contains_modifiers()
    {
        var run = NewRun();
        var helene = await Create(Patient(run, "280021400000101", "Hélène"));
        var hel = await Create(Patient(run, "280021400000102", "Helmut"));
        await Create(Patient(run, "280021400000103", "Martin"));

        Assert.Equal([helene.Id, hel.Id], (await Search($"Patient?_tag={RunTag}|{run}&family=HEL&_sort=family")).Matches());
        Assert.Equal([helene.Id], (await Search($"Patient?_tag={RunTag}|{run}&family:exact=Hélène")).Matches());
        Assert.Empty((await Search($"Patient?_tag={RunTag}|{run}&family:exact=helene")).Matches());
        Assert.Equal([helene.Id], (await Search($"Patient?_tag={RunTag}|{run}&name:contains=lèn")).Matches());
        Assert.Equal(3, (await Search($"Patient?_tag={RunTag}|{run}&family=hel,mart&given=mar")).Total);
    }

    [Fact]
    public async Task Token_search_matches_system_and_code_and_supports_not_text_and_of_type()
    {
        var run = NewRun();
        var p = Patient(run, "180021400000201", "Durand");
        p.Identifier[0].Type = new CodeableConcept("http://interopsante.org/CodeSystem/v2-0203", "INS-NIR");
        var durand = await Create(p);
        var other = await Create(Patient(run, "180021400000202", "Petit"));

        Assert.Equal([durand.Id], (await Search($"Patient?identifier={Ins}|180021400000201")).Matches());
        Assert.Equal([durand.Id], (await Search($"Patient?identifier=180021400000201")).Matches());
        Assert.Empty((await Search($"Patient?identifier=urn:other|180021400000201")).Matches());
        Assert.Equal(2, (await Search($"Patient?_tag={RunTag}|{run}&identifier={Ins}|")).Total);
        Assert.Equal([other.Id], (await Search($"Patient?_tag={RunTag}|{run}&identifier:not={Ins}|180021400000201")).Matches());
        Assert.Equal([durand.Id], (await Search($"Patient?identifier:of-type=http://interopsante.org/CodeSystem/v2-0203|INS-NIR|180021400000201")).Matches());

        var mr = await Create(Buprenorphine(run, durand.Id));
        Assert.Equal([mr.Id], (await Search($"MedicationRequest?_tag={RunTag}|{run}&code:text=BUPRENORPHINE")).Matches());
        Assert.Equal([mr.Id], (await Search($"MedicationRequest?_tag={RunTag}|{run}&code={Atc}|N07BC01,{Atc}|N07BC02")).Matches());
    }

    [Fact]
    public async Task Reference_search_by_id_by_type_qualified_id_and_by_identifier()
    {
        var run = NewRun();
        var patient = await Create(Patient(run, "180021400000301", "Bernard"));
        var mr = await Create(Buprenorphine(run, patient.Id));
        var byIdentifier = Buprenorphine(run, "unknown");
        byIdentifier.Subject = new ResourceReference { Identifier = new Identifier(Ins, "180021400000301") };
        var logical = await Create(byIdentifier);

        Assert.Equal([mr.Id], (await Search($"MedicationRequest?subject=Patient/{patient.Id}")).Matches());
        Assert.Equal([mr.Id], (await Search($"MedicationRequest?patient={patient.Id}")).Matches());
        Assert.Equal([mr.Id], (await Search($"MedicationRequest?subject:Patient={patient.Id}")).Matches());
        Assert.Equal([mr.Id], (await Search($"MedicationRequest?subject=http://localhost/fhir/Patient/{patient.Id}")).Matches());
        Assert.Empty((await Search($"MedicationRequest?subject:Group={patient.Id}")).Matches());
        Assert.Equal([logical.Id], (await Search($"MedicationRequest?subject:identifier={Ins}|180021400000301")).Matches());
    }

    [Fact]
    public async Task Date_prefixes_compare_ranges_given_by_the_precision_of_both_values()
    {
        var run = NewRun();
        var march = await Create(Patient(run, "180021400000401", "Mars", birthDate: "1980-03"));
        var day = await Create(Patient(run, "180021400000402", "Jour", birthDate: "1980-03-15"));
        var later = await Create(Patient(run, "180021400000403", "Tard", birthDate: "1990-01-01"));
        string Q(string v) => $"Patient?_tag={RunTag}|{run}&birthdate={v}";

        Assert.Equal(new[] { march.Id, day.Id }.Order(), (await Search(Q("1980-03"))).Matches().Order());
        Assert.Equal([day.Id], (await Search(Q("1980-03-15"))).Matches()); // March as a whole is not within the day
        Assert.Equal([day.Id], (await Search(Q("eq1980-03-15"))).Matches());
        Assert.Equal(new[] { march.Id, later.Id }.Order(), (await Search(Q("ne1980-03-15"))).Matches().Order());
        Assert.Equal([later.Id], (await Search(Q("gt1980-03-31"))).Matches());
        Assert.Equal(new[] { march.Id, later.Id }.Order(), (await Search(Q("ge1980-03-20"))).Matches().Order()); // March overlaps, the 15th does not
        Assert.Equal(new[] { march.Id, day.Id }.Order(), (await Search(Q("lt1985"))).Matches().Order());
        Assert.Equal([later.Id], (await Search(Q("sa1980"))).Matches());
        Assert.Equal(new[] { march.Id, day.Id }.Order(), (await Search(Q("eb1981-01-01"))).Matches().Order());
        Assert.Equal(new[] { march.Id, day.Id }.Order(), (await Search(Q("ge1980-01-01") + "&birthdate=le1980-12-31")).Matches().Order());
        Assert.Equal([later.Id], (await Search(Q("ap1990-01-02"))).Matches());
    }

    [Fact]
    public async Task Number_search_uses_the_precision_of_the_value_and_prefixes()
    {
        var run = NewRun();
        RiskAssessment Risk(decimal p) => new()
        {
            Meta = Tagged(run),
            Status = ObservationStatus.Final,
            Subject = new ResourceReference("Patient/x"),
            Prediction = [new RiskAssessment.PredictionComponent { Probability = new FhirDecimal(p) }],
        };
        var high = await Create(Risk(0.82m));
        var low = await Create(Risk(0.1m));
        string Q(string v) => $"RiskAssessment?_tag={RunTag}|{run}&probability={v}";

        Assert.Equal([high.Id], (await Search(Q("0.8"))).Matches()); // 0.8 means [0.75, 0.85)
        Assert.Empty((await Search(Q("0.80"))).Matches());
        Assert.Equal([high.Id], (await Search(Q("gt0.5"))).Matches());
        Assert.Equal([low.Id], (await Search(Q("le0.1"))).Matches());
        Assert.Equal([low.Id], (await Search(Q("ne0.8"))).Matches());
    }

    [Fact]
    public async Task Quantity_search_matches_value_with_prefix_system_and_code()
    {
        var run = NewRun();
        Observation Weight(decimal kg) => new()
        {
            Meta = Tagged(run),
            Status = ObservationStatus.Final,
            Code = new CodeableConcept(Loinc, "29463-7"),
            Value = new Quantity(kg, "kg", Ucum),
        };
        var heavy = await Create(Weight(92.4m));
        var light = await Create(Weight(54m));
        string Q(string v) => $"Observation?_tag={RunTag}|{run}&value-quantity={v}";

        Assert.Equal([heavy.Id], (await Search(Q($"92.4|{Ucum}|kg"))).Matches());
        Assert.Equal([heavy.Id], (await Search(Q("92.4||kg"))).Matches());
        Assert.Empty((await Search(Q($"92.4|{Ucum}|g"))).Matches());
        Assert.Equal([light.Id], (await Search(Q("lt60"))).Matches());
        Assert.Equal(new[] { heavy.Id, light.Id }.Order(), (await Search(Q("ge54"))).Matches().Order());
    }

    [Fact]
    public async Task Composite_search_matches_both_components_within_the_same_tuple()
    {
        var run = NewRun();
        var bp = await Create(new Observation
        {
            Meta = Tagged(run),
            Status = ObservationStatus.Final,
            Code = new CodeableConcept(Loinc, "85354-9"),
            Component =
            [
                new Observation.ComponentComponent { Code = new CodeableConcept(Loinc, "8480-6"), Value = new Quantity(150, "mm[Hg]", Ucum) },
                new Observation.ComponentComponent { Code = new CodeableConcept(Loinc, "8462-4"), Value = new Quantity(95, "mm[Hg]", Ucum) },
            ],
        });
        string Q(string v) => $"Observation?_tag={RunTag}|{run}&component-code-value-quantity={v}";

        Assert.Equal([bp.Id], (await Search(Q($"{Loinc}|8480-6$gt140"))).Matches());
        Assert.Empty((await Search(Q($"{Loinc}|8462-4$gt140"))).Matches()); // 150 belongs to the systolic tuple only
        Assert.Equal([bp.Id], (await Search(Q($"8462-4$95|{Ucum}|mm[Hg]"))).Matches());
    }

    [Fact]
    public async Task Uri_search_is_exact_with_below_and_above()
    {
        var run = NewRun();
        var vs = await Create(new ValueSet { Meta = Tagged(run), Status = PublicationStatus.Active, Url = "https://fhirsortie.example.fr/ValueSet/tso" });
        string Q(string v) => $"ValueSet?_tag={RunTag}|{run}&{v}";

        Assert.Equal([vs.Id], (await Search(Q("url=https://fhirsortie.example.fr/ValueSet/tso"))).Matches());
        Assert.Empty((await Search(Q("url=https://fhirsortie.example.fr/ValueSet"))).Matches());
        Assert.Equal([vs.Id], (await Search(Q("url:below=https://fhirsortie.example.fr/"))).Matches());
        Assert.Equal([vs.Id], (await Search(Q("url:above=https://fhirsortie.example.fr/ValueSet/tso/v2"))).Matches());
    }

    [Fact]
    public async Task Missing_modifier_finds_resources_with_and_without_a_value()
    {
        var run = NewRun();
        var withBirth = await Create(Patient(run, "180021400000501", "Avec"));
        var p = Patient(run, "180021400000502", "Sans");
        p.BirthDate = null;
        var without = await Create(p);

        Assert.Equal([without.Id], (await Search($"Patient?_tag={RunTag}|{run}&birthdate:missing=true")).Matches());
        Assert.Equal([withBirth.Id], (await Search($"Patient?_tag={RunTag}|{run}&birthdate:missing=false")).Matches());
    }

    [Fact]
    public async Task Common_parameters_id_lastUpdated_tag_profile_and_security()
    {
        var run = NewRun();
        var p = Patient(run, "180021400000601", "Commun");
        // A core FHIR profile: claimed profiles must be known (ours) or core (warning only), see Profiles/.
        p.Meta.Profile = ["http://hl7.org/fhir/StructureDefinition/Patient"];
        p.Meta.Security = [new Coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R")];
        var created = await Create(p);
        var other = await Create(Patient(run, "180021400000602", "Autre"));

        Assert.Equal([created.Id], (await Search($"Patient?_id={created.Id}")).Matches());
        Assert.Equal(new[] { created.Id, other.Id }.Order(), (await Search($"Patient?_id={created.Id},{other.Id}")).Matches().Order());
        Assert.Equal([created.Id], (await Search($"Patient?_tag={RunTag}|{run}&_profile=http://hl7.org/fhir/StructureDefinition/Patient")).Matches());
        Assert.Equal([created.Id], (await Search($"Patient?_tag={RunTag}|{run}&_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R")).Matches());
        var since = created.Meta.LastUpdated!.Value.AddSeconds(-5).ToString("yyyy-MM-ddTHH:mm:ssK");
        Assert.Equal(2, (await Search($"Patient?_tag={RunTag}|{run}&_lastUpdated=ge{Uri.EscapeDataString(since)}")).Total);
        Assert.Equal(0, (await Search($"Patient?_tag={RunTag}|{run}&_lastUpdated=lt2000-01-01")).Total);
    }

    [Fact]
    public async Task Chained_search_follows_references_over_several_levels()
    {
        var run = NewRun();
        var csapa = await Create(new Organization { Meta = Tagged(run), Name = "CSAPA Le Relais", Identifier = [new Identifier(Finess, "130012345")] });
        var p = Patient(run, "180021400000701", "Chaine");
        p.ManagingOrganization = new ResourceReference($"Organization/{csapa.Id}");
        var patient = await Create(p);
        var other = await Create(Patient(run, "180021400000702", "Autre"));
        var mr = await Create(Buprenorphine(run, patient.Id));
        await Create(Buprenorphine(run, other.Id));

        Assert.Equal([mr.Id], (await Search($"MedicationRequest?patient.identifier={Ins}|180021400000701")).Matches());
        Assert.Equal([mr.Id], (await Search($"MedicationRequest?_tag={RunTag}|{run}&subject:Patient.name=chaine")).Matches());
        Assert.Equal([mr.Id], (await Search($"MedicationRequest?patient.organization.identifier={Finess}|130012345")).Matches());
        Assert.Empty((await Search($"MedicationRequest?patient.organization.identifier={Finess}|999999999")).Matches());
    }

    [Fact]
    public async Task Reverse_chaining_has_selects_resources_referenced_by_matching_ones()
    {
        var run = NewRun();
        var treated = await Create(Patient(run, "180021400000801", "Traite"));
        await Create(Patient(run, "180021400000802", "NonTraite"));
        await Create(Buprenorphine(run, treated.Id));

        Assert.Equal([treated.Id], (await Search($"Patient?_tag={RunTag}|{run}&_has:MedicationRequest:patient:code={Atc}|N07BC01")).Matches());
        Assert.Empty((await Search($"Patient?_tag={RunTag}|{run}&_has:MedicationRequest:patient:code={Atc}|N07BB04")).Matches());
    }

    [Fact]
    public async Task Include_and_revinclude_with_iterate_add_resources_once_and_do_not_count_them()
    {
        var run = NewRun();
        var csapa = await Create(new Organization { Meta = Tagged(run), Name = "CSAPA", Identifier = [new Identifier(Finess, "130054321")] });
        var p = Patient(run, "180021400000901", "Inclus");
        p.ManagingOrganization = new ResourceReference($"Organization/{csapa.Id}");
        var patient = await Create(p);
        var first = await Create(Buprenorphine(run, patient.Id));
        var second = await Create(Buprenorphine(run, patient.Id, 7));

        var bundle = await Search($"MedicationRequest?_tag={RunTag}|{run}&_include=MedicationRequest:patient&_include:iterate=Patient:organization");
        Assert.Equal(2, bundle.Total);
        Assert.Equal(new[] { first.Id, second.Id }.Order(), bundle.Matches().Order());
        Assert.Equal(new[] { $"Organization/{csapa.Id}", $"Patient/{patient.Id}" }.Order(), bundle.Included().Order());

        var notIterated = await Search($"MedicationRequest?_tag={RunTag}|{run}&_include=MedicationRequest:patient&_include=Patient:organization");
        Assert.Equal([$"Patient/{patient.Id}"], notIterated.Included());

        var typed = await Search($"MedicationRequest?_tag={RunTag}|{run}&_include=MedicationRequest:subject:Group");
        Assert.Empty(typed.Included());

        var rev = await Search($"Patient?_id={patient.Id}&_revinclude=MedicationRequest:patient");
        Assert.Equal(1, rev.Total);
        Assert.Equal(new[] { $"MedicationRequest/{first.Id}", $"MedicationRequest/{second.Id}" }.Order(), rev.Included().Order());

        var star = await Search($"MedicationRequest?_id={first.Id}&_include=*");
        Assert.Contains($"Patient/{patient.Id}", star.Included());
    }

    [Fact]
    public async Task Sort_on_several_keys_with_descending_and_a_total_order()
    {
        var run = NewRun();
        var b1 = await Create(Patient(run, "180021400001001", "Bernard", birthDate: "1970-01-01"));
        var a = await Create(Patient(run, "180021400001002", "Arnaud", birthDate: "1990-01-01"));
        var b2 = await Create(Patient(run, "180021400001003", "Bernard", birthDate: "1985-01-01"));
        var c = await Create(Patient(run, "180021400001004", "Colin", birthDate: "1985-01-01"));

        Assert.Equal([a.Id, b2.Id, b1.Id, c.Id], (await Search($"Patient?_tag={RunTag}|{run}&_sort=family,-birthdate")).Matches());
        Assert.Equal([a.Id, b2.Id, c.Id, b1.Id], (await Search($"Patient?_tag={RunTag}|{run}&_sort=-birthdate,family")).Matches());
        Assert.Equal(new[] { b1.Id, a.Id, b2.Id, c.Id }.Order(StringComparer.Ordinal), (await Search($"Patient?_tag={RunTag}|{run}&_sort=_id")).Matches());
    }

    [Fact]
    public async Task Paging_is_stable_when_writes_happen_between_pages()
    {
        var run = NewRun();
        var created = new List<Patient>();
        for (var i = 0; i < 5; i++) created.Add(await Create(Patient(run, $"18002140000110{i}", $"Page{i}")));

        var page1 = await Search($"Patient?_tag={RunTag}|{run}&_count=2&_sort=family");
        Assert.Equal(5, page1.Total);
        Assert.Null(page1.Link("previous"));
        Assert.NotNull(page1.Link("first"));
        Assert.Contains("_getpages=", page1.Link("next"));

        // A new match sorting first, and an update that changes the order, happen between pages.
        await Create(Patient(run, "180021400001199", "Aaa"));
        var moved = created[0];
        moved.Name[0].Family = "Zzz";
        Assert.Equal(HttpStatusCode.OK, (await _fhir.PutAsync($"Patient/{moved.Id}", FhirHttp.Json(moved))).StatusCode);

        var seen = new List<string>(page1.Matches());
        var next = page1.Link("next");
        Bundle? last = null;
        while (next is not null)
        {
            last = await Search(next);
            Assert.Equal(5, last.Total);
            seen.AddRange(last.Matches());
            next = last.Link("next");
        }
        Assert.Equal(created.Select(p => p.Id).ToList(), seen);
        Assert.NotNull(last!.Link("previous"));
        var previous = await Search(last.Link("previous")!);
        Assert.Equal(seen.Skip(2).Take(2), previous.Matches());
    }

    [Fact]
    public async Task Total_modes_count_zero_and_summary_count()
    {
        var run = NewRun();
        for (var i = 0; i < 3; i++) await Create(Patient(run, $"18002140000120{i}", "Total"));
        var q = $"Patient?_tag={RunTag}|{run}";

        Assert.Null((await Search(q + "&_total=none")).Total);
        Assert.Equal(3, (await Search(q + "&_total=accurate&_count=1")).Total);
        Assert.Null((await Search(q + "&_total=none&_count=1")).Total);
        var countOnly = await Search(q + "&_count=0");
        Assert.Equal(3, countOnly.Total);
        Assert.Empty(countOnly.Entry);
        var summary = await Search(q + "&_summary=count");
        Assert.Equal(3, summary.Total);
        Assert.Empty(summary.Entry);
    }

    [Fact]
    public async Task Summary_and_elements_reshape_entries_and_mark_them_subsetted()
    {
        var run = NewRun();
        await Create(Patient(run, "180021400001301", "Resume"));
        var bundle = await Search($"Patient?_tag={RunTag}|{run}&_elements=identifier");
        var patient = (Patient)bundle.Entry.Single().Resource;
        Assert.Empty(patient.Name);
        Assert.Single(patient.Identifier);
        Assert.Contains(patient.Meta.Tag, t => t.Code == "SUBSETTED");

        var xml = await _fhir.GetAsync($"Patient?_tag={RunTag}|{run}&_format=xml");
        Assert.Equal("application/fhir+xml", xml.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<Bundle", await xml.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Compartment_search_returns_the_patients_resources()
    {
        var run = NewRun();
        var patient = await Create(Patient(run, "180021400001401", "Compartiment"));
        var other = await Create(Patient(run, "180021400001402", "Autre"));
        var mr = await Create(Buprenorphine(run, patient.Id));
        await Create(Buprenorphine(run, other.Id));

        Assert.Equal([mr.Id], (await Search($"Patient/{patient.Id}/MedicationRequest")).Matches());
        Assert.Equal([mr.Id], (await Search($"Patient/{patient.Id}/MedicationRequest?code={Atc}|N07BC01")).Matches());
        var all = await Search($"Patient/{patient.Id}/*");
        // The gateway's own records of these writes (Provenance, AuditEvent) are in the compartment too.
        Assert.Equal(new[] { $"MedicationRequest/{mr.Id}", $"Patient/{patient.Id}" }.Order(),
            all.Entry.Where(e => e.Resource is not (AuditEvent or Provenance)).Select(e => $"{e.Resource.TypeName}/{e.Resource.Id}").Order());
        await _fhir.SearchFailsAsync($"Patient/{patient.Id}/Organization", HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task System_search_by_type_get_and_post()
    {
        var run = NewRun();
        await Create(Patient(run, "180021400001501", "Systeme"));
        await Create(new Organization { Meta = Tagged(run), Name = "CSAPA" });
        await Create(Buprenorphine(run, "x"));

        Assert.Equal(3, (await Search($"?_tag={RunTag}|{run}")).Total);
        var typed = await Search($"?_type=Patient,Organization&_tag={RunTag}|{run}");
        Assert.Equal(2, typed.Total);
        var post = await _fhir.PostAsync("_search", new FormUrlEncodedContent([new("_type", "Organization"), new("_tag", $"{RunTag}|{run}")]));
        Assert.Equal(HttpStatusCode.OK, post.StatusCode);
        Assert.Equal(1, (await post.ReadAs<Bundle>()).Total);
        var typePost = await _fhir.PostAsync("Patient/_search", new FormUrlEncodedContent([new("family", "systeme"), new("_tag", $"{RunTag}|{run}")]));
        Assert.Equal(1, (await typePost.ReadAs<Bundle>()).Total);
    }

    [Fact]
    public async Task Lenient_ignores_unknown_parameters_and_strict_refuses_them()
    {
        var run = NewRun();
        await Create(Patient(run, "180021400001601", "Strict"));
        var lenient = await Search($"Patient?_tag={RunTag}|{run}&colour=blue&family:sounds-like=x");
        Assert.Equal(1, lenient.Total);
        Assert.DoesNotContain("colour", lenient.Link("self"));
        Assert.DoesNotContain("sounds-like", lenient.Link("self"));
        Assert.Contains("_tag=", lenient.Link("self"));
        // ...and says so in a warning entry (search.mode outcome), so that a misspelt parameter is not taken for no filter.
        var warnings = Assert.IsType<OperationOutcome>(Assert.Single(lenient.Entry, e => e.Search?.Mode == Bundle.SearchEntryMode.Outcome).Resource);
        Assert.Equal(["colour", "family:sounds-like"], warnings.Issue.SelectMany(i => i.Expression));
        Assert.All(warnings.Issue, i => Assert.Equal(OperationOutcome.IssueSeverity.Warning, i.Severity));
        Assert.Contains(lenient.Entry, e => e.Search?.Mode == Bundle.SearchEntryMode.Match);
        var counted = await Search($"Patient?_tag={RunTag}|{run}&colour=blue&_summary=count");
        Assert.Equal(["colour"], Assert.IsType<OperationOutcome>(Assert.Single(counted.Entry).Resource).Issue.SelectMany(i => i.Expression));
        Assert.DoesNotContain((await Search($"Patient?_tag={RunTag}|{run}")).Entry, e => e.Search?.Mode == Bundle.SearchEntryMode.Outcome);

        var unknown = await _fhir.SearchFailsAsync($"Patient?colour=blue", HttpStatusCode.BadRequest, "handling=strict");
        Assert.Equal(OperationOutcome.IssueType.NotSupported, unknown.Issue[0].Code);
        Assert.Equal(["colour"], unknown.Issue[0].Expression);
        var modifier = await _fhir.SearchFailsAsync($"Patient?family:sounds-like=x", HttpStatusCode.BadRequest, "handling=strict");
        Assert.Equal(["family:sounds-like"], modifier.Issue[0].Expression);
    }

    [Theory]
    [InlineData("Patient?birthdate=not-a-date")]
    [InlineData("Patient?birthdate=xx2020")]
    [InlineData("Observation?value-quantity=heavy")]
    [InlineData("RiskAssessment?probability=gt")]
    [InlineData("Patient?_count=many")]
    [InlineData("Patient?_total=some")]
    [InlineData("Patient?_contained=true")]
    [InlineData("Patient?birthdate:missing=maybe")]
    public async Task Bad_values_are_400_in_both_handling_modes(string url)
    {
        await _fhir.SearchFailsAsync(url, HttpStatusCode.BadRequest);
        await _fhir.SearchFailsAsync(url, HttpStatusCode.BadRequest, "handling=strict");
    }

    [Fact]
    public async Task Unknown_page_set_is_410()
    {
        await _fhir.SearchFailsAsync("?_getpages=nope&_getpagesoffset=10&_count=10", HttpStatusCode.Gone);
    }

    [Fact]
    public async Task Custom_dispense_interval_parameter_finds_daily_dispensing()
    {
        var run = NewRun();
        var patient = await Create(Patient(run, "180021400001701", "Quotidien"));
        var daily = await Create(Buprenorphine(run, patient.Id, 1));
        await Create(Buprenorphine(run, patient.Id, 7));

        Assert.Equal([daily.Id], (await Search($"MedicationRequest?_tag={RunTag}|{run}&dispense-interval=le1|{Ucum}|d")).Matches());
    }
}

public sealed class SqliteSearchTests(SqliteGateway gateway) : SearchTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresSearchTests(PostgresGateway gateway) : SearchTests(gateway), IClassFixture<PostgresGateway>;
