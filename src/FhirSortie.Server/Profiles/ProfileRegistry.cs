using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// The conformance resources of profiles/ (StructureDefinitions, ValueSets, CodeSystems; the R4 base snapshots in
/// profiles/base/), loaded and compiled once at start. A profile that does not compile (unknown element path,
/// unknown ValueSet, bad FHIRPath) stops the start: better than validating against half a profile.
/// </summary>
public sealed class ProfileRegistry
{
    public const string BaseCanonical = "http://hl7.org/fhir/StructureDefinition/";

    private readonly Dictionary<string, CompiledProfile> _profiles = new(StringComparer.Ordinal);

    public BaseDefinitions Base { get; }
    public Terminology Terminology { get; }

    public IEnumerable<CompiledProfile> Profiles => _profiles.Values;

    public ProfileRegistry(IEnumerable<Resource> conformance, IEnumerable<StructureDefinition> baseDefinitions)
    {
        var errors = new List<string>();
        var resources = conformance.ToList();
        Base = new BaseDefinitions(baseDefinitions);
        Terminology = new Terminology(resources.OfType<ValueSet>(), resources.OfType<CodeSystem>(), errors);
        var definitions = new Dictionary<string, StructureDefinition>(StringComparer.Ordinal);
        foreach (var sd in resources.OfType<StructureDefinition>())
        {
            if (sd.Url is null || sd.Type is null) errors.Add($"StructureDefinition {sd.Id}: url and type are required");
            else if (!definitions.TryAdd(sd.Url, sd)) errors.Add($"{sd.Url} is defined twice");
        }
        var compiler = new ProfileCompiler(Base, Terminology, url => TypeOf(url, definitions), errors);
        foreach (var sd in definitions.Values)
        {
            if (sd.Derivation != StructureDefinition.TypeDerivationRule.Constraint)
            {
                errors.Add($"{sd.Url}: only constraint StructureDefinitions (profiles, extensions) are supported");
                continue;
            }
            if (!Base.Defines(sd.Type!)) { errors.Add($"{sd.Url}: no base definition of {sd.Type} in profiles/base/"); continue; }
            _profiles[sd.Url!] = new CompiledProfile(sd, compiler.Compile(sd));
        }
        foreach (var p in _profiles.Values)
        {
            var parent = p.Definition.BaseDefinition;
            if (parent is not null && !parent.StartsWith(BaseCanonical, StringComparison.Ordinal) && !_profiles.ContainsKey(parent))
                errors.Add($"{p.Url}: base profile {parent} is not in profiles/");
        }
        if (errors.Count > 0) throw new InvalidOperationException("profiles/ does not compile:\n  " + string.Join("\n  ", errors));
    }

    private static string? TypeOf(string profileUrl, Dictionary<string, StructureDefinition> definitions)
    {
        var url = Terminology.Canonical(profileUrl);
        if (url.StartsWith(BaseCanonical, StringComparison.Ordinal)) return url[BaseCanonical.Length..];
        return definitions.TryGetValue(url, out var sd) ? sd.Type : null;
    }

    public CompiledProfile? Find(string canonical) => _profiles.GetValueOrDefault(Terminology.Canonical(canonical));

    /// <summary>The profile and the profiles it derives from (ours or national), most general first.</summary>
    public IReadOnlyList<CompiledProfile> Chain(CompiledProfile profile)
    {
        var chain = new List<CompiledProfile>();
        for (var p = profile; p is not null; p = p.Definition.BaseDefinition is { } b ? Find(b) : null)
        {
            if (chain.Contains(p)) break;
            chain.Insert(0, p);
        }
        return chain;
    }

    /// <summary>Loads profiles/*.json and profiles/base/*.json (single resources or collection Bundles).</summary>
    public static ProfileRegistry Load(string folder)
    {
        var conformance = Directory.EnumerateFiles(folder, "*.json", SearchOption.TopDirectoryOnly).Order(StringComparer.Ordinal).SelectMany(Read);
        var baseFolder = Path.Combine(folder, "base");
        var baseDefinitions = Directory.Exists(baseFolder)
            ? Directory.EnumerateFiles(baseFolder, "*.json").SelectMany(Read).OfType<StructureDefinition>()
            : [];
        return new ProfileRegistry(conformance.ToList(), baseDefinitions.ToList());
    }

    private static readonly FhirJsonDeserializer Strict = new(new DeserializerSettings());

    private static IEnumerable<Resource> Read(string file)
    {
        Resource resource;
        try
        {
            resource = Strict.DeserializeResource(File.ReadAllText(file));
        }
        catch (DeserializationFailedException e)
        {
            throw new InvalidOperationException($"{file} is not a valid FHIR resource: {e.Message}", e);
        }
        return resource is Bundle bundle ? bundle.Entry.Select(e => e.Resource).OfType<Resource>() : [resource];
    }
}
