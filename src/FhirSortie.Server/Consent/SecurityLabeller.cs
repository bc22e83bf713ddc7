using System.Text.Json;
using System.Text.Json.Serialization;
using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Consents;

/// <summary>
/// Adds sensitivity labels to <c>meta.security</c> from a resource's codes, with rules kept as data
/// (profiles/labelling/security-labelling-rules.json). Sender labels are kept; applying twice changes nothing.
/// </summary>
public sealed class SecurityLabeller
{
    public const string RulesFile = "security-labelling-rules.json";

    private static readonly Hl7.FhirPath.FhirPathCompiler Compiler = new();
    private readonly Dictionary<string, List<CompiledRule>> _byType;

    public IReadOnlyList<LabellingRule> Rules { get; }

    static SecurityLabeller() => ElementNavFhirExtensions.PrepareFhirSymbolTableFunctions();

    public SecurityLabeller(IReadOnlyList<LabellingRule> rules)
    {
        Rules = rules;
        _byType = new Dictionary<string, List<CompiledRule>>(StringComparer.Ordinal);
        foreach (var rule in rules)
        {
            if (!SecurityLabels.Sensitivities.Contains(rule.Label))
                throw new InvalidOperationException($"Labelling rule '{rule.Id}': unknown label '{rule.Label}' (use {string.Join(", ", SecurityLabels.Sensitivities)}).");
            var compiled = new CompiledRule(rule, Compiler.Compile(rule.Path), rule.Systems.ToHashSet(StringComparer.Ordinal), Search.ElementPath.Parse(rule.Path, null));
            foreach (var type in rule.ResourceTypes)
            {
                if (!ModelInfo.IsKnownResource(type)) throw new InvalidOperationException($"Labelling rule '{rule.Id}': unknown resource type '{type}'.");
                if (!_byType.TryGetValue(type, out var list)) _byType[type] = list = [];
                list.Add(compiled);
            }
        }
    }

    /// <summary>Loads the rules from <paramref name="folder"/> (profiles/labelling); a broken file stops the start.</summary>
    public static SecurityLabeller Load(string folder)
    {
        var path = Path.Combine(folder, RulesFile);
        var file = JsonSerializer.Deserialize<RulesFileModel>(File.ReadAllBytes(path), JsonOptions)
            ?? throw new InvalidOperationException($"{path} is empty.");
        return new SecurityLabeller(file.Rules);
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNameCaseInsensitive = true, ReadCommentHandling = JsonCommentHandling.Skip };

    /// <summary>The sensitivity labels the rules derive from the resource's content.</summary>
    public IReadOnlyList<string> Derive(Resource resource)
    {
        if (!_byType.TryGetValue(resource.TypeName, out var rules)) return [];
        var found = new List<string>();
        // FHIRPath's input, made only for a rule whose path is not walked on the POCO (see CompiledRule.Walker).
        PocoNode[]? root = null;
        FhirEvaluationContext? context = null;
        var values = new List<Base>();
        foreach (var rule in rules)
        {
            if (found.Contains(rule.Rule.Label)) continue;
            values.Clear();
            if (rule.Walker is not { } walker || !walker.TrySelect(resource, resource, values))
            {
                values.Clear();
                root ??= [resource.ToPocoNode(ModelInfo.ModelInspector, null)];
                context ??= new FhirEvaluationContext();
                foreach (var value in rule.Expression(root, context).ToFhirValues()) if (value is not null) values.Add(value);
            }
            foreach (var value in values)
            {
                var codings = value switch
                {
                    Coding c => [c],
                    CodeableConcept cc => cc.Coding,
                    _ => [],
                };
                if (codings.Any(rule.Matches))
                {
                    found.Add(rule.Rule.Label);
                    break;
                }
            }
        }
        return found;
    }

    /// <summary>
    /// Adds the derived labels the resource does not carry yet, and confidentiality R with any sensitivity label
    /// unless R or V is there; keeps one confidentiality label (the highest). Returns whether anything changed.
    /// </summary>
    public bool Apply(Resource resource)
    {
        var derived = Derive(resource);
        var security = resource.Meta?.Security ?? [];
        var changed = false;
        foreach (var code in derived)
        {
            if (security.Any(c => c.System == SecurityLabels.ActCode && c.Code == code)) continue;
            resource.Meta ??= new Meta();
            resource.Meta.Security.Add(new Coding(SecurityLabels.ActCode, code));
            changed = true;
        }
        if (resource.Meta is null) return changed;
        security = resource.Meta.Security;
        var hasSensitivity = security.Any(c => c.System == SecurityLabels.ActCode && SecurityLabels.Sensitivities.Contains(c.Code));
        var highest = SecurityLabels.ConfidentialityOf(resource);
        if (hasSensitivity && (highest is null || SecurityLabels.ConfidentialityRank(highest) < SecurityLabels.ConfidentialityRank("R")))
        {
            highest = "R";
            security.Add(new Coding(SecurityLabels.Confidentiality, "R"));
            changed = true;
        }
        // Duplicates (the sender's own, or N beside R) would make searches on _security ambiguous: keep one of each.
        var seen = new HashSet<(string?, string?)>();
        for (var i = 0; i < security.Count; i++)
        {
            var c = security[i];
            var lowerConfidentiality = c.System == SecurityLabels.Confidentiality && c.Code != highest;
            if (!seen.Add((c.System, c.Code)) || lowerConfidentiality)
            {
                security.RemoveAt(i--);
                changed = true;
            }
        }
        return changed;
    }

    /// <param name="Walker">The path walked on the POCO ("code.coding", "medication.ofType(CodeableConcept).coding"), the
    /// same values as FHIRPath without its engine (run on every save: 1 % of an exit package's CPU); null for other paths.</param>
    private sealed record CompiledRule(LabellingRule Rule, Hl7.FhirPath.CompiledExpression Expression, HashSet<string> Systems, Search.ElementPath? Walker)
    {
        public bool Matches(Coding coding) =>
            coding.System is { } system && Systems.Contains(system) && coding.Code is { } code
            && Rule.CodePrefixes.Any(p => code.StartsWith(p, StringComparison.OrdinalIgnoreCase));
    }

    private sealed record RulesFileModel([property: JsonPropertyName("rules")] IReadOnlyList<LabellingRule> Rules);
}

/// <summary>One labelling rule: resources of these types whose codings at <see cref="Path"/> match get <see cref="Label"/>.</summary>
public sealed record LabellingRule(
    string Id,
    string Label,
    IReadOnlyList<string> ResourceTypes,
    string Path,
    IReadOnlyList<string> Systems,
    IReadOnlyList<string> CodePrefixes);
