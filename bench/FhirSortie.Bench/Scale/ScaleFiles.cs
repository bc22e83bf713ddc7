extern alias server;
using System.Globalization;
using server::FhirSortie.Server.Demo;
using server::FhirSortie.Server.Storage;
using server::FhirSortie.Server.Storage.Postgres;
using server::FhirSortie.Server.Storage.Sqlite;

namespace FhirSortie.Bench.Scale;

/// <summary>
/// scale-files: what bench/scale.sh needs to measure a loaded data set: the gateway's client settings
/// (<c>clients.env</c>), one file of request paths per scenario (<c>paths-*.txt</c>, read by lua/paths.lua) and the
/// exit-package template. The USMP scenarios use the people of prison 0 (the largest), the CSAPA ones receiver 0 and
/// the people who named it in a consent, the auditor's every person.
/// </summary>
public static class ScaleFiles
{
    public static async Task<int> RunAsync(string storage, string outDir)
    {
        StorageDialect dialect = ScaleGateway.IsPostgres(storage) ? new PostgresDialect(storage) : new SqliteDialect(storage);
        var people = File.ReadLines(Path.Combine(outDir, ScaleLoad.PeopleFile)).Select(l => l.Split('\t')).ToArray();
        var files = Path.Combine(outDir, "wrk");
        Directory.CreateDirectory(files);
        string receiverOrganization;
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync();
            await using var select = Sql.Command(connection, null,
                "SELECT r.id FROM resources r JOIN search_token t ON t.rkey = r.rkey WHERE r.type = 'Organization' AND t.param = 'identifier' AND t.code = @f")
                .With("@f", ScaleWorld.ReceiverFiness(0));
            receiverOrganization = (string)(await select.ExecuteScalarAsync() ?? throw new InvalidOperationException("receiver 0 not loaded"));
        }
        var random = new Random(7);
        string[] Sample(IEnumerable<string> values) => values.OrderBy(_ => random.Next()).Take(5000).ToArray();
        var usmp = people.Where(p => p[3] == "0").ToArray();
        var consented = people.Where(p => p[4] == "0" && p[6] == "1").ToArray();
        var ins = DemoIdentifiers.InsDemo;
        void Write(string name, IEnumerable<string> lines) => File.WriteAllLines(Path.Combine(files, "paths-" + name + ".txt"), lines);
        Write("read", Sample(usmp.Select(p => "/fhir/Patient/" + p[1])));
        Write("search-ins", Sample(usmp.Select(p => "/fhir/Patient?identifier=" + Uri.EscapeDataString(ins + "|" + p[7]))));
        Write("search-mr", Sample(usmp.Select(p => "/fhir/MedicationRequest?patient=" + p[1])));
        Write("patient-context", Sample(usmp.Select(p => "/fhir/Patient/" + p[1] + "/$patient-context")));
        Write("everything", Sample(usmp.Select(p => "/fhir/Patient/" + p[1] + "/$everything")));
        Write("csapa-mr", Sample(consented.Select(p => "/fhir/MedicationRequest?patient=" + p[1])));
        Write("csapa-broad", ["/fhir/MedicationRequest?code=" + Uri.EscapeDataString("http://www.whocc.no/atc|N07BC01") + "&_count=20"]);
        Write("task-inbox", ["/fhir/Task?owner=Organization/" + receiverOrganization + "&status=requested"]);
        Write("audit-patient", Sample(people.Select(p => "/fhir/AuditEvent?patient=" + p[1])));
        Write("access-report", Sample(people.Select(p => "/fhir/Patient/" + p[1] + "/$access-report")));
        File.WriteAllText(Path.Combine(files, "transaction.json"), ExitPackage.Serialize(ExitPackage.Build(DateTimeOffset.UtcNow)));
        var settings = ScaleWorld.ClientSettings().Select(kv => $"export {kv.Key.Replace(":", "__", StringComparison.Ordinal)}='{kv.Value}'");
        File.WriteAllLines(Path.Combine(outDir, "clients.env"), settings);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {files}: {usmp.Length} people of prison 0, {consented.Length} who named receiver 0, {people.Length} in all"));
        return 0;
    }
}
