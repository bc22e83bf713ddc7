using System.Diagnostics;
using FhirSortie.Server.Profiles;
using FhirSortie.Server.Search;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Microsoft.Extensions.Logging.Abstractions;

// How much profile validation adds to a write. An "exit package" of 15 resources (the valid examples of
// profiles/examples/valid, cycled) is validated 1,000 times, then written 200 times to a fresh SQLite store
// with and without profile enforcement. Usage: dotnet run -c Release [--show]
var root = FindRepository();
var registry = ProfileRegistry.Load(Path.Combine(root, "profiles"));
var validator = new ProfileValidator(registry);
var enforcement = new ProfileEnforcement(validator, new Dictionary<string, IReadOnlyList<string>>());
var strict = new FhirJsonDeserializer(new DeserializerSettings());
var examples = Directory.EnumerateFiles(Path.Combine(root, "profiles", "examples", "valid"), "*.json").Order()
    .Select(f => strict.DeserializeResource(File.ReadAllText(f))).ToList();
var package = Enumerable.Range(0, 15).Select(i => examples[i % examples.Count]).ToList();

if (args.Contains("--show"))
{
    foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "profiles", "examples"), "*.json", SearchOption.AllDirectories).Where(f => !f.EndsWith(".expected.json")).Order())
    {
        var r = strict.DeserializeResource(File.ReadAllText(file));
        var run = validator.Validate(r, r.Meta?.Profile.OfType<string>() ?? []);
        Console.WriteLine($"{Path.GetRelativePath(root, file)}: {run.Issues.Count} issue(s)");
        foreach (var i in run.Issues) Console.WriteLine($"   {i.Severity} {string.Join(",", i.Expression)}: {i.Diagnostics}");
    }
    return;
}

// Validation alone.
for (var i = 0; i < 50; i++) foreach (var r in package) enforcement.Check(r);
const int rounds = 1000;
// CPU time beside wall time: on a shared 2-core machine the wall clock mostly measures the neighbours.
var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
var watch = Stopwatch.StartNew();
for (var i = 0; i < rounds; i++) foreach (var r in package) enforcement.Check(r);
watch.Stop();
cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - cpu;
var perResource = watch.Elapsed.TotalMicroseconds / (rounds * package.Count);
var cpuPerResource = cpu.TotalMicroseconds / (rounds * package.Count);
Console.WriteLine($"validate: {perResource:0.0} µs wall, {cpuPerResource:0.0} µs CPU per resource; {perResource * package.Count / 1000:0.00} ms wall per 15-resource package ({rounds} packages)");

// Writing the same package in one transaction, without and with enforcement.
var conformance = Path.Combine(root, "conformance");
var indexer = new ResourceIndexer(new SearchParameters(SearchParameters.LoadCustom(Path.Combine(conformance, "searchparameters"))), Compartments.Load(conformance));
foreach (var withProfiles in new[] { false, true, false, true })
{
    var folder = Directory.CreateTempSubdirectory("profilebench").FullName;
    var dialect = new SqliteDialect(folder);
    await Migrator.MigrateAsync(dialect, NullLogger.Instance, CancellationToken.None);
    var store = new ResourceStore(dialect, indexer, TimeProvider.System, withProfiles ? enforcement : null);
    const int writes = 200;
    var write = Stopwatch.StartNew();
    for (var i = 0; i < writes; i++)
    {
        await store.WriteAsync(async session =>
        {
            foreach (var r in package)
            {
                var copy = (Resource)r.DeepCopy();
                copy.Id = Guid.NewGuid().ToString();
                await session.SaveAsync(copy, null, "POST", CancellationToken.None);
            }
            return 0;
        }, CancellationToken.None);
    }
    write.Stop();
    Console.WriteLine($"write package ({(withProfiles ? "with" : "without")} profile enforcement): {write.Elapsed.TotalMilliseconds / writes:0.00} ms per package ({writes} packages, SQLite, one transaction each)");
    try { Directory.Delete(folder, true); } catch (IOException) { }
}

static string FindRepository()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "FhirSortie.sln"))) return dir.FullName;
    throw new InvalidOperationException("Run from inside the FhirSortie repository.");
}
