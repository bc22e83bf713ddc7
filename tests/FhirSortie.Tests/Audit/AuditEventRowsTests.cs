using FhirSortie.Server.Audit;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Audit;

/// <summary>
/// The audit store's build of an AuditEvent (JSON, <see cref="AuditEventRows"/>; search keys, <see cref="AuditStore.Keys"/>)
/// must give what the generic path gave for the same entry: the resource of <see cref="AuditRecords.Interaction"/>
/// serialised by the SDK and indexed by FHIRPath. Otherwise reads, searches (AuditEvent?patient=, agent, entity...) and
/// the patient access report would see something else than when AuditEvents were materialised as resources.
/// </summary>
public sealed class AuditEventRowsTests
{
    private static readonly string Conformance = Path.Combine(AppContext.BaseDirectory, "conformance");
    private static readonly SearchParameters Parameters = new(SearchParameters.LoadCustom(Path.Combine(Conformance, "searchparameters")));
    private static readonly Compartments Compartments = Compartments.Load(Conformance);
    private static readonly ResourceIndexer Indexer = new(Parameters, Compartments);

    private static AuditEntry Entry(string interaction = "read", int status = 200, long recorded = 1_795_000_123_456) => new()
    {
        Id = FhirRequest.NewId(),
        Recorded = recorded,
        Interaction = interaction,
        Status = status,
    };

    public static TheoryData<string, AuditEntry> Shapes => new()
    {
        { "anonymous 401, nothing named", Entry(status: 401) with { Purpose = "TREAT" } },
        { "USMP read of a Patient, from an IPv4 address", Entry() with { Address = "203.0.113.7", ClientId = "usmp-demo", Kind = "Usmp", Finess = "690000012", Permitted = true, Reason = "same organisation", Entities = ["Patient/p1"], Patients = ["p1"] } },
        { "whole second (no milliseconds)", Entry(recorded: 1_795_000_123_000) with { ClientId = "usmp-demo", Kind = "Usmp", Entities = ["Patient/p1"], Patients = ["p1"] } },
        { "search with query, several patients, break-glass, consent, user", Entry("search-type") with
            {
                ClientId = "csapa-demo", Kind = "Csapa", Finess = "750000028", User = "Practitioner/pr1", Purpose = "ETREAT",
                BreakGlassReason = "patient unconscious, \"urgent\" – Hélène", BreakGlass = true, Permitted = true, Reason = "break-the-glass",
                ConsentId = "c1", Query = "patient=p1&name=Hélène&_count=10", Patients = ["p1", "p2"],
            } },
        { "denied by consent, patient-facing user, vread entity, duplicate entities", Entry("vread", 403) with
            {
                ClientId = "app", Kind = "Care", User = "Patient/p9", Permitted = false, Reason = "consent deny",
                ConsentId = "c2", Entities = ["Patient/p9/_history/2", "Patient/p9/_history/2", "Observation/o1"], Patients = ["p9"],
            } },
        { "absolute user URL, unknown type entity, server error", Entry("operation", 500) with
            {
                ClientId = "x", User = "https://idp.example.org/fhir/Patient/p3", Entities = ["Foo/1", "Patient/p3"], Patients = ["p3", "p3"],
            } },
        { "transaction naming many versions", Entry("transaction", 200) with
            {
                ClientId = "usmp-demo", Kind = "Usmp", Finess = "690000012",
                Entities = ["Patient/p1/_history/1", "MedicationRequest/m1/_history/1", "Condition/c1/_history/3"], Patients = ["p1"],
            } },
        { "break-glass asked but not granted keeps no reason detail", Entry("read", 403) with
            {
                ClientId = "spip-demo", Kind = "Justice", BreakGlassReason = "why", BreakGlass = false, Permitted = false, Reason = "justice",
                Entities = ["Condition/c9"], Patients = ["p4"],
            } },
        { "create, delete, patch, history, capabilities", Entry("delete", 204) with { ClientId = "a", Entities = ["Patient/p5"] } },
        { "token issued to a SMART app for a patient (DICOM Login)", Entry(AuditRecords.Login) with
            {
                ClientId = "telemed-demo", Kind = "Telemedicine", Finess = "750000051", User = "Practitioner/pr1", Permitted = true,
                Reason = "token issued (authorization_code)", Patients = ["p1"],
            } },
        { "token refused to a claimed client (DICOM Login)", Entry(AuditRecords.Login, 401) with
            { ClientId = "spip-demo", Permitted = false, Reason = "invalid_client: Bad client credentials." } },
        { "grant revoked (DICOM Logout), from an IPv6 address", Entry(AuditRecords.Logout) with { Address = "2001:db8::5", ClientId = "csapa-demo", Kind = "Csapa", Permitted = true, Reason = "grant revoked" } },
    };

    private static AuditEvent Generic(AuditEntry entry, DateTimeOffset lastUpdated)
    {
        var resource = AuditRecords.Interaction(entry);
        resource.Meta = new Meta { VersionId = "1", LastUpdated = lastUpdated };
        return resource;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Json_is_what_the_sdk_writes_for_the_same_AuditEvent(string shape, AuditEntry entry)
    {
        foreach (var lastUpdated in new[] { DateTimeOffset.FromUnixTimeMilliseconds(1_795_000_124_007), DateTimeOffset.FromUnixTimeMilliseconds(1_795_000_124_000) })
        {
            var expected = System.Text.Encoding.UTF8.GetString(FhirFormat.Serialize(Generic(entry, lastUpdated), WireFormat.Json, pretty: false));
            var actual = System.Text.Encoding.UTF8.GetString(AuditEventRows.Json(entry, lastUpdated));
            Assert.True(expected == actual, $"{shape}:\nexpected {expected}\nactual   {actual}");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Index_rows_are_what_fhirpath_indexing_gives(string shape, AuditEntry entry)
    {
        var expected = Indexer.Index(Generic(entry, DateTimeOffset.UtcNow));
        var actual = AuditEventRows.Index(entry, Compartments);
        Assert.True(Rows(expected) == Rows(actual), $"{shape}:\nexpected\n{Rows(expected)}\nactual\n{Rows(actual)}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Fast_json_parses_strictly_as_the_same_AuditEvent(string shape, AuditEntry entry)
    {
        var parsed = (AuditEvent)FhirFormat.Parse(AuditEventRows.Json(entry, DateTimeOffset.UtcNow), WireFormat.Json);
        Assert.True(parsed.Id == entry.Id, shape);
        Assert.Equal(entry.Interaction, parsed.Subtype.Single().Code);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Audit_store_search_keys_are_the_values_fhirpath_indexed_for_patient_entity_agent_and_address(string shape, AuditEntry entry)
    {
        var index = Indexer.Index(Generic(entry, DateTimeOffset.UtcNow));
        var expected = index.References.Where(r => r.Param is "patient" or "entity" or "agent" && r.TargetType is not null && r.TargetId is not null)
            .Select(r => $"{r.Param} {r.TargetType} {r.TargetId}")
            .Concat(index.Tokens.Where(t => t.Param == "agent:identifier").Select(t => $"{t.Param} {t.System} {t.Code}"))
            .Concat(index.Strings.Where(s => s.Param == "address").Select(s => $"{s.Param}  {s.Value}"))
            .Distinct().Order(StringComparer.Ordinal).ToList();
        var actual = AuditStore.Keys(entry).Select(k => $"{k.Param} {k.System} {k.Value}").Order(StringComparer.Ordinal).ToList();
        Assert.True(expected.SequenceEqual(actual), $"{shape}:\nexpected\n{string.Join("\n", expected)}\nactual\n{string.Join("\n", actual)}");
    }

    private static string Rows(IndexEntries e) => string.Join("\n", new IEnumerable<object>[]
        {
            e.Strings, e.Tokens, e.References, e.Dates, e.Numbers, e.Quantities, e.Uris, e.Composites, e.Compartments,
        }.SelectMany(list => list.Select(row => row.ToString()!)).Order(StringComparer.Ordinal));
}
