using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Storage;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// The conformance resources the gateway ships and enforces, served as FHIR resources: the StructureDefinitions,
/// ValueSets, CodeSystems and ConceptMaps of profiles/ and the SearchParameters of conformance/searchparameters. An
/// integrator reads the profile the CapabilityStatement names (<c>StructureDefinition?url=...</c>), the ValueSet of
/// a binding, or the ConceptMap that <c>$translate</c> uses, from the gateway itself, with every read and search
/// the REST layer serves (_summary, _elements, paging, history).
/// <para>
/// Published at start (<see cref="PublishAsync"/>) into the resource store under their own ids, in one write under a
/// database lock, and only where the stored version differs: restarts and nodes starting together write nothing
/// new, and a new release's profile becomes a new version of the same resource. They are read-only for clients
/// (<see cref="RefuseClientWrite"/>): what is served is what the gateway enforces, so changing one means changing
/// profiles/ and restarting. A client's own conformance resource may not take a shipped canonical url either.
/// </para>
/// </summary>
public sealed class ShippedConformance
{
    private const string LockKey = "shipped-conformance";

    private readonly List<Resource> _resources;
    private readonly HashSet<(string Type, string Id)> _ids;
    private readonly Dictionary<string, string> _urls;

    private ShippedConformance(List<Resource> resources)
    {
        _resources = resources;
        _ids = resources.Select(r => (r.TypeName, r.Id!)).ToHashSet();
        _urls = resources.Where(r => Url(r) is not null).ToDictionary(r => Url(r)!, r => $"{r.TypeName}/{r.Id}", StringComparer.Ordinal);
    }

    /// <summary>
    /// The top-level JSON files of <paramref name="profilesFolder"/> (not base/, examples/, labelling/), the custom
    /// SearchParameters, the OperationDefinitions of the custom operations (conformance/operations) and the continuity
    /// indicators' Measures (conformance/measures, evaluated by Measures/EvaluateMeasure.cs).
    /// </summary>
    public static ShippedConformance Load(string profilesFolder, string searchParametersFolder, string? operationsFolder = null, string? measuresFolder = null)
    {
        var deserializer = new FhirJsonDeserializer(new DeserializerSettings());
        var files = new[] { profilesFolder, searchParametersFolder, operationsFolder, measuresFolder }.OfType<string>().Where(Directory.Exists)
            .SelectMany(folder => Directory.EnumerateFiles(folder, "*.json").Order(StringComparer.Ordinal));
        var resources = new List<Resource>();
        foreach (var file in files)
        {
            var resource = deserializer.DeserializeResource(File.ReadAllText(file));
            if (resource is not (StructureDefinition or ValueSet or CodeSystem or ConceptMap or SearchParameter or OperationDefinition or Measure))
                throw new InvalidOperationException($"{file}: a {resource.TypeName} is not a conformance resource the gateway ships.");
            if (string.IsNullOrEmpty(resource.Id)) throw new InvalidOperationException($"{file}: a shipped {resource.TypeName} needs an id.");
            resources.Add(resource);
        }
        var twice = resources.GroupBy(r => (r.TypeName, r.Id)).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new InvalidOperationException($"Two shipped files are {twice.Key.TypeName}/{twice.Key.Id}.");
        return new ShippedConformance(resources);
    }

    /// <summary>
    /// Stores every shipped resource whose stored current version differs (or that is missing or deleted); returns how
    /// many were written. One write unit under a database lock: nodes starting together publish once.
    /// </summary>
    public async Task<int> PublishAsync(ResourceStore store, StorageDialect dialect, CancellationToken ct)
    {
        return await store.WriteAsync(async session =>
        {
            await dialect.LockAsync(session.Connection, session.Transaction, LockKey, ct);
            var written = 0;
            foreach (var resource in _resources)
            {
                var before = await session.ReadForUpdateAsync(resource.TypeName, resource.Id!, ct);
                // keepUnchanged: identical content writes no version (and answers the current one).
                var result = await Update.ExecuteAsync(session, resource.TypeName, resource.Id!, (Resource)resource.DeepCopy(), null, ct, keepUnchanged: true);
                if (result.Stored?.Version != before?.Version || before?.Deleted == true) written++;
            }
            return written;
        }, ct);
    }

    /// <summary>A client's create, update or patch of a shipped resource, or of one taking a shipped canonical url: refused.</summary>
    public void RefuseClientWrite(Resource resource)
    {
        if (resource.Id is { } id && _ids.Contains((resource.TypeName, id)))
            throw ReadOnly($"{resource.TypeName}/{resource.Id}");
        if (Url(resource) is { } url && _urls.TryGetValue(url, out var shipped))
        {
            throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.BusinessRule,
                $"The url {url} is the canonical url of {shipped}, which the gateway ships (read it there): another resource cannot take it.", "url");
        }
    }

    /// <summary>A client's delete of a shipped resource: refused.</summary>
    public void RefuseClientDelete(string type, string id)
    {
        if (_ids.Contains((type, id))) throw ReadOnly($"{type}/{id}");
    }

    private static FhirException ReadOnly(string reference) =>
        FhirException.Error(HttpStatusCode.MethodNotAllowed, OperationOutcome.IssueType.NotSupported,
            $"{reference} is shipped with the gateway (profiles/, conformance/) and enforced by it: it is read-only. A new release of the gateway changes it.");

    private static string? Url(Resource resource) => resource switch
    {
        IVersionableConformanceResource conformance => conformance.Url,
        _ => null,
    };
}
