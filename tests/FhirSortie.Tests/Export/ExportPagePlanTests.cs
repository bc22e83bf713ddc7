using FhirSortie.Server.Export;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace FhirSortie.Tests.Export;

/// <summary>
/// An export page must cost the same at the first page and at the last, whatever the size: on SQLite (no statistics)
/// its plan walks the rowid range from the last key, never sorting the whole type (a temporary B-tree for ORDER BY, which
/// made memory and time grow with the export) nor building the list of every compartment row for each page.
/// </summary>
public sealed class ExportPagePlanTests(SqliteGateway gateway) : IClassFixture<SqliteGateway>
{
    [Theory]
    [InlineData(ExportLevel.System, "usmp")]
    [InlineData(ExportLevel.Patient, "usmp")]
    [InlineData(ExportLevel.Group, "usmp")]
    [InlineData(ExportLevel.Patient, "csapa")]
    public async Task A_page_walks_the_rowid_range_without_sorting_the_type(ExportLevel level, string who)
    {
        var caller = who == "usmp"
            ? new Caller("usmp-plan", ActorKind.Usmp, "750000010", ["system/*.cruds"], null, null)
            : new Caller("csapa-plan", ActorKind.Csapa, "750000028", ["system/*.rs"], null, null);
        var spec = new ExportSpec(caller, level, level == ExportLevel.Group ? "g" : null, ["MedicationRequest"], DateTimeOffset.UtcNow.AddDays(-1),
            new Dictionary<string, List<List<KeyValuePair<string, string>>>>(), level == ExportLevel.Group ? ["p1", "p2"] : [],
            "http://localhost/fhir/$export", "http://localhost/fhir", null);
        var services = gateway.Services;
        var run = services.GetRequiredService<ExportRun>();
        var q = run.Page("MedicationRequest", spec, AccessPoint.For(caller, services).Filter("MedicationRequest"), 1234);

        var dialect = services.GetRequiredService<StorageDialect>();
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync();
        await using var explain = q.ToCommand(connection, null);
        explain.CommandText = "EXPLAIN QUERY PLAN " + explain.CommandText;
        var plan = new List<string>();
        await using (var reader = await explain.ExecuteReaderAsync())
            while (await reader.ReadAsync()) plan.Add(reader.GetString(3));
        var text = string.Join("\n", plan);
        Assert.Contains("SEARCH r USING INTEGER PRIMARY KEY (rowid>?)", text);
        Assert.DoesNotContain("TEMP B-TREE", text);
        Assert.DoesNotContain("LIST SUBQUERY", text);
    }
}
