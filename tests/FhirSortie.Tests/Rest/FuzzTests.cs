using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Rest;

/// <summary>
/// Seeded random bad input (search values and modifiers, mutated resources, JSON Patch documents, transaction and batch
/// bundles, conditional headers): whatever comes in, the answer is never a 5xx. Each seed replays the same requests, so
/// a failure names a request that fails again. Found, before this test existed: a JSON member with an empty name,
/// `contained` given as an object, a NUL in a search value or a string on PostgreSQL, a number search value whose
/// exponent is past an int, all 500s.
/// </summary>
public abstract class FuzzTests(Gateway gateway)
{
    private readonly HttpClient _fhir = gateway.Fhir();

    private static readonly string[] Types = ["Patient", "MedicationRequest", "Observation", "RiskAssessment", "Consent", "DocumentReference", "Basic", "Task", "Appointment", "CarePlan", "Subscription"];
    private static readonly string[] Modifiers = ["", ":exact", ":contains", ":not", ":missing", ":text", ":identifier", ":of-type", ":below", ":above", ":in", ":Patient", ":iterate", ":x", ":"];
    private static readonly string[] Controls = ["_sort", "_count", "_include", "_revinclude", "_elements", "_summary", "_total", "_id", "_lastUpdated", "_tag", "_profile",
        "_security", "_has:Observation:patient:code", "_has:X", "_since", "_list", "_type", "_getpages", "_getpagesoffset", "_include:iterate"];
    private static readonly string[] Weird = ["", "eq", "ap", "x", "\0", "a\0b", "%", "%zz", "é€😀", "1e999", "-0", "NaN", "ge2026-13-45", "2026-02-30", "ge", "|", "||",
        "a|b|c", "|x", "0e99999999999", "1e-99999999999", "Patient/", "/", "http://", "urn:uuid:", "#", "$", ",", "a,,b", "5||mg", "5|http://unitsofmeasure.org|", "ap1.5e3", "sa2026", "eb",
        "gt9999-12-31T23:59:59Z", "0001-01-01", "T", "null", "[]", "\\", "'", "\"", "a$b", "1$2$3", "99999999999999999999", new string('x', 3000),
        "Patient:subject", "*", "-_lastUpdated", "-1", "0", "count", "accurate"];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async System.Threading.Tasks.Task No_request_gets_a_server_error(int seed)
    {
        var random = new Random(seed);
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var created = await _fhir.PostAsync("Patient", FhirHttp.Json($"{{\"resourceType\":\"Patient\",\"name\":[{{\"family\":\"Fuzz{seed}{i}\"}}]}}"));
            ids.Add((await created.ReadAs<Patient>()).Id!);
        }
        var failures = new List<string>();
        for (var i = 0; i < 300; i++)
        {
            var request = random.Next(3) switch
            {
                0 => Search(random, ids),
                1 => Write(random, ids),
                _ => Bundle(random, ids),
            };
            var shown = $"{request.Method} {request.RequestUri} {(request.Content is null ? "" : await request.Content.ReadAsStringAsync())}";
            var response = await _fhir.SendAsync(request);
            if ((int)response.StatusCode >= 500) failures.Add($"{(int)response.StatusCode} {shown[..Math.Min(shown.Length, 600)]}");
        }
        Assert.Empty(failures);
    }

    private static T Pick<T>(Random random, IReadOnlyList<T> items) => items[random.Next(items.Count)];

    private static string Value(Random random, List<string> ids) => random.Next(10) switch
    {
        < 5 => Pick(random, Weird),
        < 7 => Pick(random, ids),
        < 8 => "Patient/" + Pick(random, ids),
        _ => new string(Enumerable.Range(0, random.Next(12)).Select(_ => "abc|,:$._-0123456789 %/\\"[random.Next(24)]).ToArray()),
    };

    private static string Query(Random random, List<string> ids)
    {
        var pairs = new List<string>();
        for (var n = random.Next(1, 4); n > 0; n--)
        {
            var name = random.Next(10) switch
            {
                < 5 => Pick(random, (string[])["name", "identifier", "patient", "subject", "status", "code", "date", "value-quantity", "birthdate", "family",
                    "authored", "intent", "category", "probability", "value-quantity", "code-value-quantity", "combo-code", "_content", "address-postalcode", "gender"]) + Pick(random, Modifiers),
                < 6 => Pick(random, (string[])["patient", "subject"]) + "." + Pick(random, (string[])["identifier", "name", "x", "_id", "organization.name"]),
                < 9 => Pick(random, Controls),
                _ => Pick(random, (string[])["x", " ", "_", "__", "a b"]),
            };
            pairs.Add(Uri.EscapeDataString(name) + "=" + Uri.EscapeDataString(Value(random, ids)));
        }
        return string.Join('&', pairs);
    }

    private static HttpRequestMessage Search(Random random, List<string> ids)
    {
        var type = Pick(random, Types);
        var query = Query(random, ids);
        return random.Next(10) switch
        {
            0 => new HttpRequestMessage(HttpMethod.Get, $"Patient/{Pick(random, ids)}/{type}?{query}"),
            1 => new HttpRequestMessage(HttpMethod.Post, $"{type}/_search") { Content = new StringContent(query, Encoding.UTF8, "application/x-www-form-urlencoded") },
            2 => new HttpRequestMessage(HttpMethod.Get, $"?{query}"),
            3 => new HttpRequestMessage(HttpMethod.Get, $"{Pick(random, (string[])[type, "AuditEvent", $"{type}/{Pick(random, ids)}"])}/_history?_since={Uri.EscapeDataString(Value(random, ids))}" +
                $"&_count={Uri.EscapeDataString(Value(random, ids))}&{Pick(random, (string[])["_cursor", "_before", "_at"])}={Uri.EscapeDataString(Value(random, ids))}"),
            4 => new HttpRequestMessage(HttpMethod.Get, $"AuditEvent?{query}"),
            5 => new HttpRequestMessage(random.Next(4) == 0 ? HttpMethod.Head : HttpMethod.Get, $"Patient/{Pick(random, ids)}/$everything?" +
                $"{Pick(random, (string[])["start", "end", "_since", "_type"])}={Uri.EscapeDataString(Value(random, ids))}&{Pick(random, (string[])["start", "end", "_count"])}={Uri.EscapeDataString(Value(random, ids))}"),
            _ => new HttpRequestMessage(HttpMethod.Get, $"{type}?{query}"),
        };
    }

    private static JsonObject Resource(Random random, List<string> ids) => random.Next(3) switch
    {
        0 => new JsonObject
        {
            ["resourceType"] = "Patient",
            ["identifier"] = new JsonArray(new JsonObject { ["system"] = "urn:oid:1.2.250.1.213.1.4.8", ["value"] = "1800214" + random.Next(100000, 999999) }),
            ["name"] = new JsonArray(new JsonObject { ["family"] = "Durand", ["given"] = new JsonArray("Luc") }),
            ["birthDate"] = "1980-01-01",
            ["telecom"] = new JsonArray(new JsonObject { ["system"] = "phone", ["value"] = "0600000000" }),
        },
        1 => new JsonObject
        {
            ["resourceType"] = "MedicationRequest",
            ["status"] = "active",
            ["intent"] = "order",
            ["subject"] = new JsonObject { ["reference"] = "Patient/" + Pick(random, ids) },
            ["medicationCodeableConcept"] = new JsonObject { ["coding"] = new JsonArray(new JsonObject { ["system"] = "http://www.whocc.no/atc", ["code"] = "N07BC01" }) },
            ["dosageInstruction"] = new JsonArray(new JsonObject
            {
                ["text"] = "8 mg",
                ["doseAndRate"] = new JsonArray(new JsonObject { ["doseQuantity"] = new JsonObject { ["value"] = 8, ["unit"] = "mg", ["system"] = "http://unitsofmeasure.org", ["code"] = "mg" } }),
            }),
        },
        _ => new JsonObject { ["resourceType"] = "Basic", ["code"] = new JsonObject { ["text"] = "fuzz" }, ["subject"] = new JsonObject { ["reference"] = "Patient/" + Pick(random, ids) } },
    };

    /// <summary>Changes one or two members of <paramref name="node"/> (or of a member below it) into something else.</summary>
    private static void Mutate(Random random, JsonNode node, int depth = 0)
    {
        if (node is JsonArray array && array.Count > 0)
        {
            Mutate(random, array[random.Next(array.Count)]!, depth + 1);
            return;
        }
        if (node is not JsonObject obj) return;
        var keys = obj.Select(p => p.Key).ToList();
        if (keys.Count > 0 && random.Next(3) > 0)
        {
            var key = Pick(random, keys);
            if (obj[key] is JsonObject or JsonArray && random.Next(2) == 0 && depth < 6) Mutate(random, obj[key]!, depth + 1);
            else obj[key] = Replacement(random);
        }
        if (random.Next(6) == 0)
            obj[Pick(random, (string[])["extension", "modifierExtension", "_birthDate", "contained", "meta", "id", "text", "", "resourceType", "fhir_comments"])] = Replacement(random);
    }

    private static JsonNode? Replacement(Random random) => random.Next(12) switch
    {
        0 => null,
        1 => new JsonArray(),
        2 => new JsonObject(),
        3 => JsonValue.Create(random.Next(2) == 0 ? -1 : 1.5e308),
        4 => JsonValue.Create(true),
        5 => JsonValue.Create(Pick(random, Weird)),
        6 => new JsonArray("x", "y"),
        7 => new JsonObject { ["extension"] = new JsonArray(new JsonObject { ["url"] = Pick(random, (string[])["", "x", "http://a"]), ["valueString"] = "x" }) },
        8 => new JsonObject { ["resourceType"] = "Patient" },
        9 => new JsonArray(new JsonObject { ["resourceType"] = Pick(random, (string[])["Patient", "Foo", ""]), ["id"] = Pick(random, (string[])["a", "", "#"]) }),
        10 => JsonValue.Create("a\u0000b\u0007"),
        _ => new JsonObject { [""] = 1 },
    };

    private static HttpRequestMessage Write(Random random, List<string> ids)
    {
        var resource = Resource(random, ids);
        var type = (string)resource["resourceType"]!;
        if (random.Next(4) > 0) Mutate(random, resource);
        var body = resource.ToJsonString();
        if (random.Next(10) == 0) body = body[..random.Next(body.Length)];
        HttpRequestMessage request = random.Next(10) switch
        {
            < 4 => new(HttpMethod.Post, type),
            < 6 => new(HttpMethod.Put, $"{type}/{Pick(random, (string[])[.. ids, "new-" + random.Next(9), "x" + random.Next(9)])}"),
            6 => new(HttpMethod.Put, $"{type}?{Query(random, ids)}"),
            7 => new(HttpMethod.Delete, $"{type}?{Query(random, ids)}"),
            _ => Patch(random, ids),
        };
        if (request.Content is null && request.Method != HttpMethod.Delete)
            request.Content = new StringContent(body, Encoding.UTF8, Pick(random, (string[])["application/fhir+json", "application/fhir+json", "application/json", "application/fhir+xml", "text/plain"]));
        if (random.Next(5) == 0) request.Headers.TryAddWithoutValidation("If-Match", Pick(random, (string[])["W/\"1\"", "W/\"x\"", "\"1\"", "*", "", "W/\"99999999999999999999\""]));
        if (random.Next(5) == 0) request.Headers.TryAddWithoutValidation("If-None-Exist", Query(random, ids));
        if (random.Next(5) == 0) request.Headers.TryAddWithoutValidation("Prefer", Pick(random, (string[])["return=minimal", "return=OperationOutcome", "return=x", "handling=strict", ""]));
        return request;
    }

    private static HttpRequestMessage Patch(Random random, List<string> ids)
    {
        var op = new JsonObject
        {
            ["op"] = Pick(random, (string[])["add", "replace", "remove", "move", "copy", "test", "x"]),
            ["path"] = Pick(random, (string[])["/name/0", "/name/-", "/", "", "/birthDate", "/resourceType", "/id", "/meta/versionId", "/name/9", "/a~2b", "name"]),
            ["from"] = Pick(random, (string[])["/name/0", "/x", "", "/id", "/"]),
            ["value"] = Replacement(random),
        };
        var body = random.Next(8) == 0 ? Pick(random, (string[])["{\"op\":\"x\"}", "x", "[]", "null"]) : new JsonArray(op).ToJsonString();
        return new HttpRequestMessage(HttpMethod.Patch, $"Patient/{Pick(random, ids)}")
        {
            Content = new StringContent(body, Encoding.UTF8, Pick(random, (string[])["application/json-patch+json", "application/fhir+json"])),
        };
    }

    private static HttpRequestMessage Bundle(Random random, List<string> ids)
    {
        var entries = new JsonArray();
        for (var n = random.Next(0, 4); n > 0; n--)
        {
            var resource = Resource(random, ids);
            if (random.Next(2) == 0) Mutate(random, resource);
            var entry = new JsonObject
            {
                ["fullUrl"] = Pick(random, (string[])[$"urn:uuid:{random.Next(3):D8}-0000-4000-8000-000000000000", "x", "", "http://localhost/fhir/Patient/1"]),
                ["resource"] = resource,
                ["request"] = Pick(random, (string[])["POST Patient", "PUT Patient/" + Pick(random, ids), "DELETE Patient?identifier=x", "GET " + $"Patient?{Query(random, ids)}",
                    "PATCH Patient/" + Pick(random, ids), "HEAD x", "POST Patient?x"]) is var line && line.Split(' ', 2) is [var method, var url]
                    ? new JsonObject { ["method"] = method, ["url"] = url }
                    : null,
            };
            if (random.Next(4) == 0) Mutate(random, entry);
            entries.Add(entry);
        }
        var bundle = new JsonObject { ["resourceType"] = "Bundle", ["type"] = Pick(random, (string[])["transaction", "batch", "document", "collection", "x"]), ["entry"] = entries };
        return new HttpRequestMessage(HttpMethod.Post, random.Next(5) == 0 ? "Bundle" : "") { Content = new StringContent(bundle.ToJsonString(), Encoding.UTF8, "application/fhir+json") };
    }
}

public sealed class SqliteFuzzTests(SqliteGateway gateway) : FuzzTests(gateway), IClassFixture<SqliteGateway>;

public sealed class PostgresFuzzTests(PostgresGateway gateway) : FuzzTests(gateway), IClassFixture<PostgresGateway>;
