using System.Globalization;
using System.Text;
using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;
using P = Hl7.Fhir.ElementModel.Types;

namespace FhirSortie.Server.Search;

/// <summary>
/// Turns a resource into its search index rows by evaluating each search parameter's FHIRPath expression
/// with the SDK's engine, then converting the values by parameter type.
/// </summary>
public sealed partial class ResourceIndexer
{
    private readonly SearchParameters _parameters;
    private readonly Compartments _compartments;

    // Compiled once per expression: re-parsing and re-wrapping the resource per parameter was most of the
    // write cost (about 500 µs per resource before, measured on the 15-resource exit package).
    private static readonly Hl7.FhirPath.FhirPathCompiler Compiler = new();
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string Type, string Expression), Hl7.FhirPath.CompiledExpression> Compiled = new();

    static ResourceIndexer()
    {
        // Without this, resolve() is an unknown function and reference parameters such as `patient` index nothing.
        ElementNavFhirExtensions.PrepareFhirSymbolTableFunctions();
    }

    // The parameters of a type with their compiled expressions, built on first use (SearchParameters is frozen).
    // Looking each expression up by (type, expression) hashed and compared the whole expression text, some of them
    // over a kilobyte, for every parameter of every resource written.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Plan[]> _plans = new(StringComparer.Ordinal);

    /// <param name="Roots">The top-level elements the expression starts from (Patient.name.given: "name"); the
    /// parameter cannot index anything when the instance has none of them. Null when the expression's start is not
    /// a plain element path (then it is always evaluated).</param>
    /// <param name="Path">Set when the expression is a plain element path, walked on the POCO without FHIRPath.</param>
    /// <param name="Components">The composite's two component expressions, walked on each focus when both are plain paths.</param>
    private sealed record Plan(SearchParamDefinition Parameter, Hl7.FhirPath.CompiledExpression Expression, string[]? Roots, ElementPath? Path,
        ElementPath?[]? Components = null);

    private Plan[] PlanFor(string type) =>
        _plans.GetOrAdd(type, t => _parameters.For(t)
            .Where(p => !string.IsNullOrEmpty(p.Expression) && p.Code is not ("_id" or "_lastUpdated")) // those two are columns of the resources table
            .Select(p => (Parameter: p, Expression: TryCompile(t, p.Expression!)))
            .Where(p => p.Expression is not null)
            .Select(p => new Plan(p.Parameter, p.Expression!, Roots(ForType(p.Parameter.Expression!, t), t), ElementPath.Parse(ForType(p.Parameter.Expression!, t), t),
                _parameters.CompositeComponents(p.Parameter)?.Select(c => ElementPath.Parse(c.Expression, null)).ToArray()))
            .ToArray());

    /// <summary>
    /// Evaluate every parameter with the FHIRPath engine, even those with a plain element path (tests compare both).
    /// </summary>
    internal bool FhirPathOnly { get; init; }

    /// <summary>Skip parameters whose first element the instance lacks (off only in tests that compare both ways).</summary>
    internal bool SkipAbsentElements { get; init; } = true;

    /// <summary>
    /// The first element name of every top-level branch ("Patient.name | Patient.address.city": name, address), or
    /// null when a branch does not start with "Type.element" (a function, a bare "Observation" focus, a constant...).
    /// Parameters are about 30 per type and an instance has a handful of elements: evaluating the FHIRPath of the
    /// ones that cannot match was most of the indexing time.
    /// </summary>
    public static string[]? Roots(string expression, string type)
    {
        if (Branches(expression) is not { } branches) return null;
        var roots = new List<string>();
        foreach (var raw in branches)
        {
            var branch = raw.TrimStart('(', ' ');
            // A nested union ("(Patient.a | Patient.b).c"), a second path from the root ("Patient.a.exists() or
            // Patient.b...") or a variable (%resource) would start from more than one element: always evaluated.
            if (branch.Contains('|') || branch.Contains('%') || CountOccurrences(branch, type + ".") + CountOccurrences(branch, "Resource.") > 1) return null;
            string? prefix = null;
            foreach (var candidate in new[] { type, "Resource", "DomainResource" })
            {
                if (branch.Length > candidate.Length && branch.StartsWith(candidate, StringComparison.Ordinal) && branch[candidate.Length] == '.')
                {
                    prefix = candidate;
                    break;
                }
            }
            // "meta.tag": an element of the resource, its type left out (the _tag, _profile, _security, _source expressions).
            // Only a plain path: anything else ("meta.tag.exists() and subject...") may start from several elements.
            var relative = prefix is null && RelativePath().IsMatch(branch);
            if (prefix is null && !relative) return null;
            var start = relative ? 0 : prefix!.Length + 1;
            var end = start;
            while (end < branch.Length && (char.IsAsciiLetterOrDigit(branch[end]) || branch[end] == '_')) end++;
            if (end == start || (end < branch.Length && branch[end] == '(')) return null; // Type.fn(...) is not an element
            roots.Add(branch[start..end]);
        }
        return roots.Count == 0 ? null : roots.Distinct(StringComparer.Ordinal).ToArray();
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)+$")]
    private static partial System.Text.RegularExpressions.Regex RelativePath();

    /// <summary>An expression that does not compile indexes nothing rather than failing every write of the type.</summary>
    private static Hl7.FhirPath.CompiledExpression? TryCompile(string type, string expression)
    {
        try
        {
            return Compiled.GetOrAdd((type, expression), key => Compiler.Compile(ForType(key.Expression, key.Type)));
        }
        catch (Exception)
        {
            return null;
        }
    }

    public ResourceIndexer(SearchParameters parameters, Compartments compartments)
    {
        _parameters = parameters;
        _compartments = compartments;
    }

    public IndexEntries Index(Resource resource)
    {
        var entries = new IndexEntries();
        // The FHIRPath engine's input, made only when a parameter needs it (most are walked on the POCO).
        FhirEvaluationContext? context = null;
        PocoNode[]? root = null;
        // The elements this instance has (choice elements under their plain name: "value" for valueQuantity).
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var element in resource.EnumerateElements()) present.Add(element.Key);
        foreach (var plan in PlanFor(resource.TypeName))
        {
            if (SkipAbsentElements && plan.Roots is { } roots && !HasAny(present, roots)) continue;
            var parameter = plan.Parameter;
            List<Base> values;
            try
            {
                values = [];
                if (plan.Path is not { } path || FhirPathOnly || !path.TrySelect(resource, resource, values))
                {
                    values.Clear();
                    context ??= new FhirEvaluationContext { ElementResolver = ResolveForTypeTest(resource) };
                    root ??= [resource.ToPocoNode(ModelInfo.ModelInspector, null)];
                    foreach (var value in plan.Expression(root, context).ToFhirValues()) if (value is not null) values.Add(value);
                }
            }
            catch (Exception)
            {
                // A definition whose expression cannot run on this instance indexes nothing rather than failing the write.
                continue;
            }
            if (values.Count == 0) continue;
            var code = parameter.Code ?? parameter.Name ?? "";
            if (parameter.Type == SearchParamType.Composite)
            {
                AddComposites(entries, code, parameter, values, resource, FhirPathOnly ? null : plan.Components,
                    () => context ??= new FhirEvaluationContext { ElementResolver = ResolveForTypeTest(resource) });
                continue;
            }
            foreach (var value in values) Add(entries, code, parameter.Type, value);
        }
        _compartments.AddMemberships(resource, entries);
        Bound(entries);
        return entries;
    }

    /// <summary>
    /// The longest value an index row keeps, in characters. PostgreSQL refuses a b-tree row past about 2,700 bytes, so
    /// a 3,000-character DocumentReference.description made the write fail (found by review). A longer string is indexed
    /// by its first <see cref="MaxIndexedLength"/> characters (search values are cut the same way, so starts-with still
    /// finds it); a longer code, system, URI or reference URL is not indexed (no one searches by such a value).
    /// </summary>
    public const int MaxIndexedLength = 600;

    /// <summary>The first <see cref="MaxIndexedLength"/> characters, never half a surrogate pair.</summary>
    public static string Cut(string s) =>
        s.Length <= MaxIndexedLength ? s : s[..(char.IsHighSurrogate(s[MaxIndexedLength - 1]) ? MaxIndexedLength - 1 : MaxIndexedLength)];

    private static void Bound(IndexEntries e)
    {
        for (var i = 0; i < e.Strings.Count; i++)
        {
            if (e.Strings[i].Value.Length > MaxIndexedLength) e.Strings[i] = e.Strings[i] with { Value = Cut(e.Strings[i].Value) };
        }
        e.Tokens.RemoveAll(t => t.System?.Length > MaxIndexedLength || t.Code?.Length > MaxIndexedLength);
        e.Uris.RemoveAll(u => u.Value.Length > MaxIndexedLength);
        e.References.RemoveAll(r => r.Url?.Length > MaxIndexedLength);
    }

    private static int CountOccurrences(string text, string part)
    {
        var n = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    private static bool HasAny(HashSet<string> present, string[] roots)
    {
        foreach (var root in roots) if (present.Contains(root)) return true;
        return false;
    }

    /// <summary>
    /// Each focus of a composite (the Observation, or each Observation.component) gives the cross product of its
    /// first (token) and second component values, so that "code$value" matches within one tuple only.
    /// </summary>
    private void AddComposites(IndexEntries entries, string code, SearchParamDefinition parameter, IEnumerable<Base> foci, Resource resource,
        ElementPath?[]? walkers, Func<FhirEvaluationContext> context)
    {
        if (!_parameters.IsIndexedComposite(parameter)) return;
        var components = _parameters.CompositeComponents(parameter)!;
        // A component walked on the POCO when it is a plain path and the walk is sure to give what FHIRPath would.
        List<Base> Component(Base focus, int i)
        {
            var values = new List<Base>();
            if (walkers?[i] is { } walker && walker.TrySelect(resource, focus, values)) return values;
            values.Clear();
            foreach (var v in focus.Select(components[i].Expression, context())) if (v is not null) values.Add(v);
            return values;
        }
        foreach (var focus in foci)
        {
            var first = new IndexEntries();
            var second = new IndexEntries();
            try
            {
                foreach (var v in Component(focus, 0)) Add(first, "1", SearchParamType.Token, v);
                foreach (var v in Component(focus, 1)) Add(second, "2", components[1].Type, v);
            }
            catch (Exception)
            {
                continue; // as for simple parameters: an expression that cannot run here indexes nothing
            }
            var seconds = second.Tokens.Select(t => (t.System, t.Code, 0d, 0d))
                .Concat(second.Quantities.Select(x => (x.System, x.Code, x.Low, x.High)))
                .Concat(second.Numbers.Select(x => ((string?)null, (string?)null, x.Low, x.High)))
                .Concat(second.Dates.Select(x => ((string?)null, (string?)null, (double)x.Low, (double)x.High)))
                .Concat(second.Strings.Select(x => ((string?)null, (string?)x.Value, 0d, 0d)))
                .ToList();
            foreach (var t in first.Tokens)
                foreach (var (s2, c2, low, high) in seconds)
                    entries.Composites.Add(new CompositeEntry(code, t.System, t.Code, s2, c2, low, high));
        }
    }

    /// <summary>
    /// R4 shares one definition across types for common parameters: `patient` is a union of about 30 branches
    /// ("AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient) | ..."), and evaluating every
    /// branch was most of the indexing cost. Keep the top-level branches that start with this type; when none
    /// does (an expression not written per type), keep it whole.
    /// </summary>
    public static string ForType(string expression, string type)
    {
        var branches = Branches(expression);
        if (branches is null) return expression;
        if (branches.Count == 1) return expression;
        var mine = branches.Where(b => StartsWithType(b, type)).ToList();
        return mine.Count == 0 || mine.Count == branches.Count ? expression : string.Join(" | ", mine);
    }

    /// <summary>The top-level branches of a union ("a | b"), or null when the text cannot be split safely (open quote).</summary>
    internal static List<string>? Branches(string expression)
    {
        var branches = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i < expression.Length; i++)
        {
            var c = expression[i];
            if (c is '(' or '[') depth++;
            else if (c is ')' or ']') depth--;
            else if (c == '\'' ) { var end = expression.IndexOf('\'', i + 1); if (end < 0) return null; i = end; }
            else if (c == '|' && depth == 0) { branches.Add(expression[start..i].Trim()); start = i + 1; }
        }
        branches.Add(expression[start..].Trim());
        return branches;
    }

    private static bool StartsWithType(string branch, string type)
    {
        var b = branch.TrimStart('(').TrimStart();
        return b.StartsWith(type, StringComparison.Ordinal) && b.Length > type.Length && b[type.Length] is '.' or ' ' or ')';
    }

    /// <summary>
    /// resolve() only needs to answer "is this a Patient?" for search expressions: build an empty resource
    /// of the referenced type (or the contained one) instead of reading the database.
    /// </summary>
    private static Func<string, PocoNode?> ResolveForTypeTest(Resource resource) => url =>
    {
        if (url.StartsWith('#') && resource is DomainResource dr)
        {
            var contained = dr.Contained.FirstOrDefault(c => c.Id == url[1..]);
            return contained?.ToPocoNode(ModelInfo.ModelInspector, null);
        }
        var (type, id) = ReferenceParts(url);
        if (type is null || ModelInfo.GetTypeForFhirType(type) is not { } clr) return null;
        var target = (Resource)Activator.CreateInstance(clr)!;
        target.Id = id;
        return target.ToPocoNode(ModelInfo.ModelInspector, null);
    };

    /// <summary>"Patient/1", "http://x/fhir/Patient/1", "Patient/1/_history/2" → ("Patient", "1").</summary>
    public static (string? Type, string? Id) ReferenceParts(string reference)
    {
        var path = reference;
        var history = path.IndexOf("/_history/", StringComparison.Ordinal);
        if (history >= 0) path = path[..history];
        var parts = path.Split('/');
        if (parts.Length < 2) return (null, null);
        var type = parts[^2];
        var id = parts[^1];
        return ModelInfo.IsKnownResource(type) && id.Length > 0 ? (type, id) : (null, null);
    }

    private static void Add(IndexEntries e, string param, SearchParamType type, Base value)
    {
        switch (type)
        {
            case SearchParamType.String: AddString(e, param, value); break;
            case SearchParamType.Token: AddToken(e, param, value); break;
            case SearchParamType.Reference: AddReference(e, param, value); break;
            case SearchParamType.Date: AddDate(e, param, value); break;
            case SearchParamType.Number: AddNumber(e, param, value); break;
            case SearchParamType.Quantity: AddQuantity(e, param, value); break;
            case SearchParamType.Uri: AddUri(e, param, value); break;
        }
    }

    private static void AddString(IndexEntries e, string param, Base value)
    {
        void Put(string? s)
        {
            if (!string.IsNullOrWhiteSpace(s)) e.Strings.Add(new StringEntry(param, Normalize(s), s));
        }
        switch (value)
        {
            case HumanName n:
                Put(n.Family); foreach (var g in n.Given) Put(g);
                foreach (var p in n.Prefix) Put(p); foreach (var s in n.Suffix) Put(s);
                Put(n.Text);
                break;
            case Address a:
                foreach (var l in a.Line) Put(l);
                Put(a.City); Put(a.District); Put(a.State); Put(a.PostalCode); Put(a.Country); Put(a.Text);
                break;
            case PrimitiveType p: Put(p.ToString()); break;
        }
    }

    private static void AddToken(IndexEntries e, string param, Base value)
    {
        switch (value)
        {
            case Coding c:
                e.Tokens.Add(new TokenEntry(param, c.System, c.Code, NormalizeOrNull(c.Display)));
                break;
            case CodeableConcept cc:
                foreach (var c in cc.Coding) e.Tokens.Add(new TokenEntry(param, c.System, c.Code, NormalizeOrNull(c.Display ?? cc.Text)));
                if (cc.Coding.Count == 0 && cc.Text is not null) e.Tokens.Add(new TokenEntry(param, null, null, Normalize(cc.Text)));
                break;
            case Identifier id:
                e.Tokens.Add(new TokenEntry(param, id.System, id.Value, NormalizeOrNull(id.Type?.Text)));
                // For the :of-type modifier: the identifier type coding and the value together.
                foreach (var t in id.Type?.Coding ?? [])
                    e.Tokens.Add(new TokenEntry(param + ":of-type", t.System, $"{t.Code}|{id.Value}", null));
                break;
            case ContactPoint cp:
                e.Tokens.Add(new TokenEntry(param, cp.System?.GetLiteral(), cp.Value, null));
                break;
            case FhirBoolean b when b.Value is not null:
                e.Tokens.Add(new TokenEntry(param, null, b.Value.Value ? "true" : "false", null));
                break;
            case PrimitiveType p when p.ToString() is { Length: > 0 } s:
                e.Tokens.Add(new TokenEntry(param, null, s, null));
                break;
        }
    }

    private static void AddReference(IndexEntries e, string param, Base value)
    {
        switch (value)
        {
            case ResourceReference r:
                if (r.Reference is { Length: > 0 } reference && !reference.StartsWith('#'))
                {
                    var (type, id) = ReferenceParts(reference);
                    var absolute = reference.Contains("://", StringComparison.Ordinal) ? reference : null;
                    e.References.Add(new ReferenceEntry(param, type, id, absolute, null));
                }
                if (r.Identifier is { } ident)
                    e.Tokens.Add(new TokenEntry(param + ":identifier", ident.System, ident.Value, null));
                break;
            case Canonical c when c.Value is { Length: > 0 } url:
                var bar = url.IndexOf('|');
                e.References.Add(new ReferenceEntry(param, null, null, bar < 0 ? url : url[..bar], bar < 0 ? null : url[(bar + 1)..]));
                break;
            case FhirUri u when u.Value is { Length: > 0 }:
                e.References.Add(new ReferenceEntry(param, null, null, u.Value, null));
                break;
        }
    }

    private static void AddDate(IndexEntries e, string param, Base value)
    {
        switch (value)
        {
            case Date d when DateRange(d.Value) is { } r: e.Dates.Add(new DateEntry(param, r.Low, r.High)); break;
            case FhirDateTime dt when DateRange(dt.Value) is { } r: e.Dates.Add(new DateEntry(param, r.Low, r.High)); break;
            case Instant i when i.Value is { } v: e.Dates.Add(new DateEntry(param, v.ToUnixTimeMilliseconds(), v.ToUnixTimeMilliseconds())); break;
            case Period p:
                var low = DateRange(p.Start)?.Low ?? long.MinValue;
                var high = DateRange(p.End)?.High ?? long.MaxValue;
                if (p.Start is not null || p.End is not null) e.Dates.Add(new DateEntry(param, low, high));
                break;
            case Timing t:
                foreach (var ev in t.Event) if (DateRange(ev) is { } r) e.Dates.Add(new DateEntry(param, r.Low, r.High));
                break;
        }
    }

    /// <summary>The instants covered by a partial date: "2024-03" covers the whole of March 2024.</summary>
    public static (long Low, long High)? DateRange(string? value)
    {
        if (string.IsNullOrEmpty(value) || !P.DateTime.TryParse(value, out var parsed)) return null;
        DateTimeOffset start;
        try
        {
            start = parsed.ToDateTimeOffset(TimeSpan.Zero);
        }
        catch (ArgumentOutOfRangeException)
        {
            return null; // 9999-12-31T23:00:00-05:00 is past the last instant .NET can hold
        }
        try
        {
            return (start.ToUnixTimeMilliseconds(), Next(start, parsed.Precision).ToUnixTimeMilliseconds() - 1);
        }
        catch (ArgumentOutOfRangeException)
        {
            // "9999-12-31", a common "no end" date, covers up to the last instant .NET holds: there is no next day.
            return (start.ToUnixTimeMilliseconds(), DateTimeOffset.MaxValue.ToUnixTimeMilliseconds());
        }
    }

    private static DateTimeOffset Next(DateTimeOffset start, P.DateTimePrecision precision) => precision switch
    {
        P.DateTimePrecision.Year => start.AddYears(1),
        P.DateTimePrecision.Month => start.AddMonths(1),
        P.DateTimePrecision.Day => start.AddDays(1),
        P.DateTimePrecision.Hour => start.AddHours(1),
        P.DateTimePrecision.Minute => start.AddMinutes(1),
        P.DateTimePrecision.Second => start.AddSeconds(1),
        _ => start.AddMilliseconds(1),
    };

    private static void AddNumber(IndexEntries e, string param, Base value)
    {
        if (value is PrimitiveType p && double.TryParse(p.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
            e.Numbers.Add(new NumberEntry(param, d, d));
    }

    private static void AddQuantity(IndexEntries e, string param, Base value)
    {
        switch (value)
        {
            case Quantity q when q.Value is { } v:
                e.Quantities.Add(new QuantityEntry(param, q.System, q.Code ?? q.Unit, (double)v, (double)v));
                if (q.Unit is { } unit && q.Code is not null && unit != q.Code)
                    e.Quantities.Add(new QuantityEntry(param, null, unit, (double)v, (double)v));
                break;
            case Money m when m.Value is { } mv:
                e.Quantities.Add(new QuantityEntry(param, "urn:iso:std:iso:4217", m.Currency?.GetLiteral(), (double)mv, (double)mv));
                break;
        }
    }

    private static void AddUri(IndexEntries e, string param, Base value)
    {
        if (value is PrimitiveType p && p.ToString() is { Length: > 0 } s) e.Uris.Add(new UriEntry(param, s));
    }

    private static string? NormalizeOrNull(string? s) => s is null ? null : Normalize(s);

    /// <summary>Lower case without accents: "Hélène" and "helene" match, as FHIR string search requires.</summary>
    public static string Normalize(string s)
    {
        var decomposed = s.Trim().Normalize(NormalizationForm.FormD);
        var sb = new StringBuilder(decomposed.Length);
        foreach (var ch in decomposed)
        {
            if (CharUnicodeInfo.GetUnicodeCategory(ch) != UnicodeCategory.NonSpacingMark) sb.Append(char.ToLowerInvariant(ch));
        }
        return sb.ToString();
    }
}

/// <summary>
/// A search expression made of plain element paths, walked on the POCO instead of the FHIRPath engine (node wrapping,
/// closures and invokee dispatch per step were most of the CPU of indexing a resource). Accepted shapes, per branch of
/// a union: <c>Type.a.b</c>, <c>(Type.a as T)</c> or <c>Type.a.as(T)</c> or <c>Type.a.ofType(T)</c> optionally followed
/// by <c>.c.d</c>, each optionally ending in <c>.where(resolve() is X)</c>; relative paths (<c>value.as(Quantity)</c>,
/// the components of a composite) when parsed with no type. Same values as FHIRPath gives, in the same order:
/// navigation flattens lists, and resolve() is answered as ResourceIndexer's resolver does. Where FHIRPath could answer
/// differently, <see cref="TrySelect"/> gives up and the caller runs FHIRPath: a union with more than one value in all
/// (FHIRPath's <c>|</c> removes duplicates by value), an <c>as</c> cast applied to several items, or a value whose type
/// only FHIRPath's type hierarchy can compare with the cast's (a subtype, or two primitive types).
/// </summary>
internal sealed partial class ElementPath
{
    private readonly Branch[] _branches;

    private ElementPath(Branch[] branches) => _branches = branches;

    /// <param name="Cast">The type of <c>as</c>/<c>ofType</c> after <see cref="Steps"/>, or null.</param>
    /// <param name="CastClr">Its POCO class.</param>
    /// <param name="OfType">ofType filters any number of items; as with several items is left to FHIRPath.</param>
    /// <param name="ResolveType">Keep only references whose target is of this type (where(resolve() is Type)).</param>
    private sealed record Branch(string[] Steps, string? Cast, Type? CastClr, bool OfType, string[] After, string? ResolveType);

    private const string Step = @"[a-z][A-Za-z0-9]*";

    [System.Text.RegularExpressions.GeneratedRegex(@"^(?:\((?<path>[A-Za-z][A-Za-z0-9]*(?:\.[a-z][A-Za-z0-9]*)*) as (?<cast>[A-Za-z]+)\)|(?<path>[A-Za-z][A-Za-z0-9]*(?:\.[a-z][A-Za-z0-9]*)*?)(?:\.(?<fn>as|ofType)\((?<cast>[A-Za-z]+)\))?)(?<after>(?:\.[a-z][A-Za-z0-9]*)*)(?:\.where\(resolve\(\) is (?<target>[A-Z][A-Za-z]+)\))?$")]
    private static partial System.Text.RegularExpressions.Regex Shape();

    /// <summary>
    /// The walker of an expression (already reduced to the type's branches), or null when a branch is not of the
    /// accepted shapes. <paramref name="type"/>: the resource type its paths start from ("Patient.name"), or null for
    /// a path relative to the focus ("value.as(Quantity)").
    /// </summary>
    public static ElementPath? Parse(string expression, string? type)
    {
        var texts = ResourceIndexer.Branches(expression);
        if (texts is null || texts.Count == 0) return null;
        var branches = new List<Branch>();
        foreach (var text in texts)
        {
            var match = Shape().Match(text.Trim());
            if (!match.Success) return null;
            var path = match.Groups["path"].Value.Split('.');
            var after = match.Groups["after"].Value is { Length: > 0 } a ? a[1..].Split('.') : [];
            if (!match.Groups["cast"].Success)
            {
                path = [.. path, .. after];
                after = [];
            }
            if (type is not null)
            {
                // "Observation" alone (the focus of a composite) is the resource itself: no steps. "meta.tag" (the
                // expression of _tag, _profile, _security, _source) starts from the resource too, without its type.
                if (path[0] == type || path[0] is "Resource" or "DomainResource") path = path[1..];
                else if (!char.IsAsciiLetterLower(path[0][0]) || path.Length < 2) return null;
            }
            else if (!System.Text.RegularExpressions.Regex.IsMatch(path[0], "^" + Step + "$")) return null;
            // A step that is a FHIRPath keyword or function name written without parentheses is not an element name.
            if (path.Concat(after).Any(s => s is "as" or "is" or "and" or "or" or "xor" or "implies" or "div" or "mod" or "in" or "contains" or "not" or "exists" or "empty" or "first" or "last")) return null;
            string? cast = null;
            Type? castClr = null;
            if (match.Groups["cast"].Success)
            {
                cast = match.Groups["cast"].Value;
                castClr = ModelInfo.GetTypeForFhirType(cast);
                if (castClr is null) return null; // System types (DateTime, String...) are FHIRPath's to compare
            }
            var target = match.Groups["target"].Success ? match.Groups["target"].Value : null;
            if (target is not null && ModelInfo.GetTypeForFhirType(target) is null) return null;
            branches.Add(new Branch(path, cast, castClr, match.Groups["fn"].Value == "ofType", after, target));
        }
        return new ElementPath([.. branches]);
    }

    /// <summary>
    /// Adds the values of the expression on <paramref name="focus"/> (the resource, or a composite's focus) to
    /// <paramref name="values"/>; false (values then unspecified) when FHIRPath must answer instead.
    /// </summary>
    public bool TrySelect(Resource resource, Base focus, List<Base> values)
    {
        var start = values.Count;
        foreach (var branch in _branches)
            if (!TrySelect(branch, resource, focus, values)) return false;
        // FHIRPath's union removes duplicates by value (its own equality): with one value at most there are none.
        return _branches.Length == 1 || values.Count - start <= 1;
    }

    private static bool TrySelect(Branch branch, Resource resource, Base focus, List<Base> values)
    {
        var found = new List<Base>();
        Walk(focus, branch.Steps, 0, found);
        if (branch.Cast is { } cast)
        {
            if (!branch.OfType && found.Count > 1) return false;
            var kept = new List<Base>(found.Count);
            foreach (var value in found)
            {
                if (value.TypeName == cast) kept.Add(value);
                // A subtype (Age for Quantity) or two primitives (code and string): FHIRPath's type rules decide.
                else if (branch.CastClr!.IsInstanceOfType(value) || (value is PrimitiveType && typeof(PrimitiveType).IsAssignableFrom(branch.CastClr))) return false;
            }
            found = kept;
        }
        if (branch.After.Length > 0)
        {
            var next = new List<Base>();
            foreach (var value in found) Walk(value, branch.After, 0, next);
            found = next;
        }
        if (branch.ResolveType is null) values.AddRange(found);
        else foreach (var value in found) if (TargetType(resource, value) == branch.ResolveType) values.Add(value);
        return true;
    }

    private static void Walk(Base node, string[] steps, int step, List<Base> values)
    {
        if (step == steps.Length)
        {
            values.Add(node);
            return;
        }
        if (!node.TryGetValue(steps[step], out var child) || child is null) return;
        if (child is Base single) Walk(single, steps, step + 1, values);
        else if (child is System.Collections.IEnumerable many)
        {
            foreach (var item in many) if (item is Base b) Walk(b, steps, step + 1, values);
        }
    }

    /// <summary>What resolve() finds for the reference: a contained resource, or an instance of the referenced type.</summary>
    private static string? TargetType(Resource resource, Base value)
    {
        // resolve() takes a Reference's reference, or the value of a uri/canonical/string.
        var url = value switch
        {
            ResourceReference r => r.Reference,
            PrimitiveType p => p.ToString(),
            _ => null,
        };
        if (string.IsNullOrEmpty(url)) return null;
        if (url.StartsWith('#'))
            return resource is DomainResource dr ? dr.Contained.FirstOrDefault(c => c.Id == url[1..])?.TypeName : null;
        var (type, _) = ResourceIndexer.ReferenceParts(url);
        return type is not null && ModelInfo.GetTypeForFhirType(type) is not null ? type : null;
    }
}
