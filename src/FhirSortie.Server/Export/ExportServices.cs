using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Export;

public static class ExportServices
{
    /// <summary>Bulk export (Export/): its jobs, the run, and every node's worker.</summary>
    public static IServiceCollection AddBulkExport(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<ExportOptions>(configuration.GetSection(ExportOptions.Section));
        services.AddSingleton<ExportJobs>();
        services.AddSingleton(s => new ExportRun(s.GetRequiredService<ExportJobs>(), s.GetRequiredService<Search.SearchEngine>(),
            s.GetRequiredService<Storage.StorageDialect>(), s.GetRequiredService<Audit.AuditTrail>(), s, s.GetRequiredService<TimeProvider>(),
            s.GetRequiredService<IOptions<ExportOptions>>().Value));
        services.AddSingleton<ExportWorker>();
        services.AddHostedService(s => s.GetRequiredService<ExportWorker>());
        return services;
    }
}
