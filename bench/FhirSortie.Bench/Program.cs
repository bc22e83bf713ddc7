using System.Diagnostics;
using System.Globalization;
using FhirSortie.Bench;

// Commands (bench/run.sh calls them; see bench/README.md):
//   load <fhir-base-url> <out-dir> [patients=2000] [concurrency=8]   data set + files for the wrk scripts
//   templates <out-dir>                                                 request bodies only (no server needed)
//   micro-read <sqlite-data-dir | npgsql-connection-string> <ids-file> [seconds=5] [workers=4]
//   micro-tx <sqlite-data-dir | npgsql-connection-string> [packages=300] [workers=1]   exit-package transaction, per stage
//   micro-tx-http <sqlite-data-dir> [packages=300] [workers=1]   the same through the whole gateway (TestServer, real token, hooks)
//   micro-audit <sqlite-data-dir | npgsql-connection-string> [rows=5000] [workers=10]   audit row on the request path, then AuditEvent?patient= searches
//   scale-load <sqlite-data-dir | npgsql-connection-string> <out-dir> <people> [workers=8]   national-year data set through the in-process gateway (resumable)
//   scale-clone <sqlite-data-dir | npgsql-connection-string> <out-dir> <people> [batch=500]   bulk copies of the loaded people up to <people> (resumable)
//   scale-files <sqlite-data-dir | npgsql-connection-string> <out-dir>   clients.env, paths-*.txt and the package template for bench/scale.sh
//   scale-audit <sqlite-data-dir | npgsql-connection-string> <out-dir> <records> [workers=2]   audit records of that data set, bulk (resumable)
//   portal-timings <base-url> <server-log> [handoffs=200] [exits=500] [requests=30] [warmup=5]   portal pages' server time (bench/portal-timings.sh)
if (args.Length >= 3 && args[0] == "micro-read")
{
    return await Micro.ReadAsync(args[1], args[2], args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 5,
        args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 4);
}
if (args.Length >= 2 && args[0] == "micro-tx")
{
    return await MicroTx.RunAsync(args[1], args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 300,
        args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1);
}
if (args.Length >= 2 && args[0] == "micro-tx-http")
{
    return await MicroTxHttp.RunAsync(args[1], args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 300,
        args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1);
}
if (args.Length >= 2 && args[0] == "micro-audit")
{
    return await MicroAudit.RunAsync(args[1], args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 5000,
        args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 10);
}
if (args.Length >= 4 && args[0] == "scale-load")
{
    return await FhirSortie.Bench.Scale.ScaleLoad.RunAsync(args[1], args[2], int.Parse(args[3], CultureInfo.InvariantCulture),
        args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 8);
}
if (args.Length >= 4 && args[0] == "scale-clone")
{
    return await FhirSortie.Bench.Scale.ScaleClone.RunAsync(args[1], args[2], int.Parse(args[3], CultureInfo.InvariantCulture),
        args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 500);
}
if (args.Length >= 3 && args[0] == "scale-files")
{
    return await FhirSortie.Bench.Scale.ScaleFiles.RunAsync(args[1], args[2]);
}
if (args.Length >= 4 && args[0] == "scale-audit")
{
    return await FhirSortie.Bench.Scale.ScaleAudit.RunAsync(args[1], args[2], long.Parse(args[3], CultureInfo.InvariantCulture),
        args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 2);
}
if (args.Length >= 3 && args[0] == "portal-timings")
{
    int At(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
    return await PortalTimings.RunAsync(args[1], args[2], At(3, 200), At(4, 500), At(5, 30), At(6, 5));
}
if (args.Length < 2 || args[0] is not ("load" or "templates"))
{
    Console.Error.WriteLine("usage: FhirSortie.Bench load <fhir-base-url> <out-dir> [patients] [concurrency] | templates <out-dir>");
    return 2;
}

if (args[0] == "templates")
{
    WriteTemplates(args[1]);
    return 0;
}

var baseUrl = args[1].TrimEnd('/');
var outDir = args[2];
var patients = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 2000;
var concurrency = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 8;
WriteTemplates(outDir);

// The gateway needs an access token: FHIRSORTIE_BENCH_CLIENT ("id:secret", set by run.sh) gets client_credentials tokens.
using var http = new HttpClient(new BenchToken(baseUrl, new SocketsHttpHandler { MaxConnectionsPerServer = concurrency })) { Timeout = TimeSpan.FromSeconds(60) };
var clock = Stopwatch.StartNew();
var loaded = await new Loader(http, baseUrl).LoadAsync(patients, concurrency, CancellationToken.None);
var seconds = clock.Elapsed.TotalSeconds;
File.WriteAllLines(Path.Combine(outDir, "patient-ids.txt"), loaded.Select(p => p.Id));
// Search values URL-encoded once here so the Lua scripts only concatenate.
File.WriteAllLines(Path.Combine(outDir, "ins.txt"), loaded.Select(p => Uri.EscapeDataString($"{Identifiers.InsSystem}|{p.Ins}")));
var requests = loaded.Count * 3.5;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"loaded {loaded.Count} patients and about {loaded.Count * 2.5:0} MedicationRequests in {seconds:0.0} s ({requests / seconds:0} creates/s, {concurrency} concurrent)"));
return 0;

static void WriteTemplates(string outDir)
{
    Directory.CreateDirectory(outDir);
    var transaction = ExitPackage.Serialize(ExitPackage.Build(DateTimeOffset.UtcNow));
    ExitPackage.CheckStrict(ExitPackage.Instantiate(transaction, 12345678));
    File.WriteAllText(Path.Combine(outDir, "transaction.json"), transaction);

    // Creates: a Patient with a fresh INS per request ("38503" + token + key), same placeholders as the transaction.
    var ins = "38503" + ExitPackage.Token + ExitPackage.InsKey;
    var patient = ExitPackage.Serialize(Clinical.Patient(ins, "C" + ExitPackage.Token, 3));
    ExitPackage.CheckStrict(ExitPackage.Instantiate(patient, 1));
    File.WriteAllText(Path.Combine(outDir, "create-patient.json"), patient);
}
