using System.Diagnostics;
using System.Globalization;
using FhirSortie.Server.Search;
using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Model;

namespace FhirSortie.Bench;

/// <summary>
/// `index-params`: for each resource of the exit package (urn:uuid references rewritten to Type/id, as the transaction
/// does), which search parameters the indexer runs, and whether on the plain-path walk or through the FHIRPath engine,
/// with the CPU µs of FHIRPath evaluation per parameter (median of many runs). Finds what indexing time is left.
/// </summary>
public static class IndexParams
{
    public static int Run()
    {
        var root = Repository.Root();
        var parameters = new SearchParameters(SearchParameters.LoadCustom(Path.Combine(root, "conformance", "searchparameters")));
        ElementNavFhirExtensions.PrepareFhirSymbolTableFunctions();
        var bundle = ExitPackage.Build(DateTimeOffset.UtcNow);
        var ids = bundle.Entry.Where(e => e.FullUrl is not null).ToDictionary(e => e.FullUrl!, e => $"{e.Resource!.TypeName}/{Guid.NewGuid():N}");
        var compiler = new Hl7.FhirPath.FhirPathCompiler();
        var shape = new System.Text.RegularExpressions.Regex(@"^(?<root>[A-Za-z]+)(?<steps>(\.[a-z][A-Za-z0-9]*)+)(\.where\(resolve\(\) is (?<target>[A-Z][A-Za-z]+)\))?$");
        double total = 0;
        foreach (var entry in bundle.Entry)
        {
            var resource = (Resource)entry.Resource!.DeepCopy();
            foreach (var r in FhirSortie.Server.Rest.ElementTree.DescendantsAndSelf(resource).OfType<ResourceReference>())
                if (r.Reference is { } u && ids.TryGetValue(u, out var to)) r.Reference = to;
            var present = resource.EnumerateElements().Select(e => e.Key).ToHashSet();
            var context = new FhirEvaluationContext { ElementResolver = url => ResourceIndexer.ReferenceParts(url) is ({ } t, { } i) && ModelInfo.GetTypeForFhirType(t) is { } clr
                ? ((Resource)Activator.CreateInstance(clr)!).ToPocoNode(ModelInfo.ModelInspector, null) : null };
            PocoNode[] node = [resource.ToPocoNode(ModelInfo.ModelInspector, null)];
            Console.WriteLine($"{resource.TypeName}:");
            foreach (var p in parameters.For(resource.TypeName))
            {
                if (string.IsNullOrEmpty(p.Expression) || p.Code is "_id" or "_lastUpdated") continue;
                var expression = ResourceIndexer.ForType(p.Expression, resource.TypeName);
                var roots = ResourceIndexer.Roots(expression, resource.TypeName);
                if (roots is not null && !roots.Any(present.Contains)) continue;
                var plain = shape.IsMatch(expression.Trim());
                if (plain) { Console.WriteLine($"   path     {p.Code}"); continue; }
                if (parameters.CompositeComponents(p) is { } comps) Console.WriteLine($"      components: {string.Join("  ;  ", comps.Select(c => c.Expression))}");
                var compiled = compiler.Compile(expression);
                var n = compiled(node, context).Count();
                var times = new List<double>();
                for (var k = 0; k < 300; k++)
                {
                    var sw = Stopwatch.StartNew();
                    compiled(node, context).ToFhirValues().ToList();
                    times.Add(sw.Elapsed.TotalMicroseconds);
                }
                times.Sort();
                total += times[150];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   fhirpath {p.Code,-28} {times[150],7:0.0} µs  {n} values  roots={(roots is null ? "-" : string.Join(",", roots))}  {(expression.Length > 110 ? expression[..110] + "..." : expression)}"));
            }
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FHIRPath total per package: {total:0} µs"));
        return 0;
    }
}
