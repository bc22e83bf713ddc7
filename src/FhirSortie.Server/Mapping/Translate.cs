using System.Net;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// ConceptMap/$translate (GET or POST, type level and instance level) over the ConceptMaps shipped in profiles/:
/// in = system + code (or coding, or codeableConcept), optional url / conceptMap, source, target, targetsystem;
/// out = Parameters with result, message and one match (equivalence, concept, source) per translation.
/// Not supported (400): reverse, dependency. ConceptMaps stored through the REST API are not used: what the
/// gateway translates with is what it ships, so that a write cannot change how later writes are normalised.
/// </summary>
public static class Translate
{
    public static async Task Handle(HttpContext context)
    {
        // Shipped terminology, no patient data: reading ConceptMaps is what the caller needs.
        Security.AccessPoint.Of(context).Require(Security.Interaction.Read, "ConceptMap");
        var args = await ArgumentsAsync(context);
        var maps = context.RequestServices.GetRequiredService<ConceptMaps>();
        IEnumerable<ConceptMap>? within = null;
        if (context.Request.RouteValues["id"] is string id)
        {
            within = [maps.ById(id) ?? throw FhirException.NotFound($"ConceptMap/{id} is not one of the ConceptMaps this gateway ships.")];
        }
        else if (args.Get("url") is { } url)
        {
            within = [maps.ByUrl(url) ?? throw FhirException.NotFound($"No ConceptMap with url {url}.")];
        }
        if (args.Get("reverse") is "true") throw Unsupported("reverse");
        if (args.Has("dependency")) throw Unsupported("dependency");

        var codings = args.Codings();
        if (codings.Count == 0)
            throw FhirException.BadRequest("$translate needs system and code, or coding, or codeableConcept.", "Parameters.parameter");
        var matches = codings
            .SelectMany(c => maps.Translate(c.System!, c.Code!, args.Get("targetsystem"), args.Get("source"), args.Get("target"), within))
            .ToList();

        var result = new Parameters();
        result.Add("result", new FhirBoolean(matches.Count > 0));
        result.Add("message", new FhirString(matches.Count > 0
            ? $"{matches.Count} translation(s) found."
            : "No translation found for the concept in the ConceptMaps asked."));
        foreach (var match in matches)
        {
            result.Add("match", [
                Tuple.Create("equivalence", (Base)new Code(match.Equivalence.GetLiteral())),
                Tuple.Create("concept", (Base)match.Concept),
                Tuple.Create("source", (Base)new FhirUri(match.MapUrl)),
            ]);
        }
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, result));
    }

    private static FhirException Unsupported(string parameter) =>
        FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
            $"$translate parameter '{parameter}' is not supported by this gateway.", parameter);

    /// <summary>The operation's parameters from the query string (GET) or a Parameters body (POST).</summary>
    private sealed class Arguments(Dictionary<string, List<DataType>> values)
    {
        public bool Has(string name) => values.ContainsKey(name);

        public string? Get(string name) => values.GetValueOrDefault(name)?.FirstOrDefault() switch
        {
            PrimitiveType p => p.ToString(),
            _ => null,
        };

        public List<Coding> Codings()
        {
            var codings = new List<Coding>();
            if (Get("code") is { } code)
            {
                var system = Get("system") ?? throw FhirException.BadRequest("$translate: code needs a system.", "system");
                codings.Add(new Coding(system, code));
            }
            codings.AddRange(values.GetValueOrDefault("coding")?.OfType<Coding>() ?? []);
            codings.AddRange(values.GetValueOrDefault("codeableConcept")?.OfType<CodeableConcept>().SelectMany(c => c.Coding) ?? []);
            return codings.Where(c => c.System is not null && c.Code is not null).ToList();
        }
    }

    private static async Task<Arguments> ArgumentsAsync(HttpContext context)
    {
        var values = new Dictionary<string, List<DataType>>(StringComparer.Ordinal);
        void Add(string name, DataType value)
        {
            if (!values.TryGetValue(name, out var list)) values[name] = list = [];
            list.Add(value);
        }
        foreach (var (name, strings) in context.Request.Query)
        {
            foreach (var value in strings) if (value is not null) Add(name, new FhirString(value));
        }
        if (HttpMethods.IsPost(context.Request.Method))
        {
            var body = await FhirRequest.BodyAsync(context);
            if (body is not Parameters parameters)
                throw FhirException.BadRequest($"POST $translate takes a Parameters resource, not a {body.TypeName}.", "resourceType");
            foreach (var p in parameters.Parameter)
            {
                if (p.Name is null || p.Value is null) continue;
                Add(p.Name, p.Value);
            }
        }
        return new Arguments(values);
    }
}
