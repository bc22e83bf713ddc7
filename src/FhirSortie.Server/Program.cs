using FhirSortie.Server;
using FhirSortie.Server.Export;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Postgres;
using FhirSortie.Server.Storage.Sqlite;
using FhirSortie.Server.Telemetry;
using Microsoft.Extensions.Options;
using Serilog;

args = FhirSortie.Server.Demo.DemoCommand.RewriteArguments(args);
// Operator commands (CommandLine.cs): the usage, an unknown verb and the commands that need no storage end here,
// before any configuration is read or any file touched; an argument the gateway does not know never starts a server.
var command = CommandLine.Parse(args);
if (await command.RunWithoutHostAsync(Console.In, Console.Out, Console.Error) is { } exitCode)
{
    Environment.ExitCode = exitCode;
    return;
}
var builder = WebApplication.CreateBuilder(args);
builder.Services.AddSerilog((services, logger) => logger
    .ReadFrom.Configuration(builder.Configuration)
    // Never configurable: at Information, ASP.NET Core's hosting logs each request's full URL, query string included,
    // and search values are names, INS and birth dates. Our request log below says the same without them.
    .MinimumLevel.Override("Microsoft.AspNetCore.Hosting.Diagnostics", Serilog.Events.LogEventLevel.Warning)
    .Enrich.FromLogContext()
    .Enrich.With<FhirSortie.Server.Telemetry.RequestPathRemoval>() // after FromLogContext, which adds ASP.NET Core's RequestPath
    .WriteTo.Console(formatProvider: System.Globalization.CultureInfo.InvariantCulture));

builder.Services.Configure<FhirSortieOptions>(builder.Configuration.GetSection(FhirSortieOptions.Section));
builder.AddGatewayTelemetry(); // Telemetry/: the gateway's meter always; traces and metrics to OTLP when an endpoint is set
builder.WebHost.ConfigureKestrel((context, kestrel) =>
{
    // We check the limit ourselves to answer 413 with an OperationOutcome; Kestrel's cap is a backstop.
    var max = context.Configuration.GetValue<long?>("FhirSortie:MaxRequestBodyBytes") ?? new FhirSortieOptions().MaxRequestBodyBytes;
    kestrel.Limits.MaxRequestBodySize = max + 1024 * 1024;
    kestrel.AddServerHeader = false;
});

builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<StorageDialect>(services =>
{
    var options = services.GetRequiredService<IOptions<FhirSortieOptions>>().Value;
    return options.Storage.Provider.ToLowerInvariant() switch
    {
        "sqlite" => new SqliteDialect(options.DataDirectory, meter: services.GetRequiredService<System.Diagnostics.Metrics.Meter>()),
        "postgres" or "postgresql" => new PostgresDialect(options.Storage.ConnectionString
            ?? throw new InvalidOperationException("FhirSortie:Storage:ConnectionString is required when the provider is Postgres.")),
        var other => throw new InvalidOperationException($"Unknown storage provider '{other}' (use Sqlite or Postgres)."),
    };
});
var conformanceFolder = Path.Combine(AppContext.BaseDirectory, "conformance");
builder.Services.AddSingleton(_ => new SearchParameters(SearchParameters.LoadCustom(Path.Combine(conformanceFolder, "searchparameters"))));
builder.Services.AddSingleton(_ => Compartments.Load(conformanceFolder));
builder.Services.AddSingleton<ResourceIndexer>();
builder.Services.AddSingleton(_ => FhirSortie.Server.Profiles.ProfileRegistry.Load(Path.Combine(AppContext.BaseDirectory, "profiles")));
builder.Services.AddSingleton<FhirSortie.Server.Profiles.ProfileValidator>();
builder.Services.AddSingleton(services => FhirSortie.Server.Profiles.ProfileEnforcement.FromConfiguration(
    services.GetRequiredService<FhirSortie.Server.Profiles.ProfileValidator>(), builder.Configuration));
builder.Services.AddSingleton(_ => FhirSortie.Server.Mapping.ConceptMaps.Load(Path.Combine(AppContext.BaseDirectory, "profiles")));
builder.Services.AddSingleton(_ => FhirSortie.Server.Profiles.ShippedConformance.Load(Path.Combine(AppContext.BaseDirectory, "profiles"), Path.Combine(conformanceFolder, "searchparameters"),
    Path.Combine(conformanceFolder, "operations"), Path.Combine(conformanceFolder, "measures")));
builder.Services.AddSingleton(services => FhirSortie.Server.Mapping.Normalizer.FromConfiguration(
    services.GetRequiredService<FhirSortie.Server.Mapping.ConceptMaps>(), builder.Configuration));
builder.Services.AddSingleton(services => new FhirSortie.Server.Mapping.LiaisonLetterMapping(
    services.GetRequiredService<FhirSortie.Server.Mapping.ConceptMaps>(), services.GetRequiredService<FhirSortie.Server.Mapping.Normalizer>(),
    services.GetRequiredService<FhirSortie.Server.Profiles.ProfileRegistry>()));
// Consent and audit (Consent/, Audit/): labels, grants, Provenance and AuditEvent on every save; the decision point.
builder.Services.AddHttpContextAccessor();
builder.Services.AddFhirCompression(); // Rest/FhirCompression.cs
builder.Services.AddSingleton<FhirSortie.Server.Rest.CapabilityDocuments>(); // GET [base]/metadata, built once
builder.Services.AddClientThrottling(builder.Configuration); // Rest/ClientThrottling.cs (off unless configured)
builder.Services.AddSingleton(_ => FhirSortie.Server.Consents.SecurityLabeller.Load(Path.Combine(AppContext.BaseDirectory, "profiles", "labelling")));
builder.Services.Configure<FhirSortie.Server.Exit.ReleaseAlertOptions>(builder.Configuration.GetSection(FhirSortie.Server.Exit.ReleaseAlertOptions.Section));
builder.Services.AddSingleton<FhirSortie.Server.Exit.ReleaseAlerts>();
builder.Services.AddSingleton<FhirSortie.Server.Consents.WriteHook>();
builder.Services.AddSingleton<ResourceStore>();
builder.Services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: [DatabaseHealthCheck.ReadyTag]);
builder.Services.AddSingleton<FhirSortie.Server.Consents.ConsentDecisions>();
builder.Services.AddSingleton<FhirSortie.Server.Audit.AuditJournal>();
builder.Services.AddSingleton<FhirSortie.Server.Audit.AuditTrail>();
builder.Services.AddHostedService<FhirSortie.Server.Audit.AuditJournalMover>();
builder.Services.AddSingleton<SearchEngine>();
builder.Services.AddSingleton<SearchConnections>();
// Subscriptions (Notifications/): recorded and matched in every write's transaction, delivered from the outbox.
builder.Services.Configure<FhirSortie.Server.Notifications.NotificationOptions>(builder.Configuration.GetSection(FhirSortie.Server.Notifications.NotificationOptions.Section));
builder.Services.AddSingleton<FhirSortie.Server.Notifications.SubscriptionHook>();
builder.Services.AddSingleton<FhirSortie.Server.Security.IAccessRule, FhirSortie.Server.Notifications.SubscriptionRule>();
// No redirects: a notification goes to the registered endpoint and nowhere else.
builder.Services.AddHttpClient(FhirSortie.Server.Notifications.DeliveryWorker.HttpClientName, http => http.Timeout = Timeout.InfiniteTimeSpan)
    .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false });
builder.Services.AddSingleton<FhirSortie.Server.Notifications.DeliveryWorker>();
builder.Services.AddSingleton<FhirSortie.Server.Notifications.OutboxGauges>();
builder.Services.AddHostedService(services => services.GetRequiredService<FhirSortie.Server.Notifications.DeliveryWorker>());
builder.Services.AddSingleton<FhirSortie.Server.Exit.ReleaseAlertWorker>();
builder.Services.AddHostedService(services => services.GetRequiredService<FhirSortie.Server.Exit.ReleaseAlertWorker>());
builder.Services.AddBulkExport(builder.Configuration); // Export/: FHIR Bulk Data $export, jobs durable in the database
// Schemes are registered by Security (our OpenIddict server's tokens, or an external provider's); the FHIR routes
// authenticate with the default scheme so that tests can swap it for their own.
builder.AddFhirSortieAuthorization();
builder.Services.AddAuthorization();
FhirSortie.Server.Security.AccessControl.AddAccessControl(builder.Services);
builder.Services.AddSmartAppLaunch(builder.Configuration);
FhirSortie.Server.Portal.PortalSetup.AddPortal(builder.Services); // Portal/: the exit portal at /portal/, a SMART app on /fhir

var app = builder.Build();

// Operator command (`dotnet FhirSortie.Server.dll backup <folder>`): a consistent copy of the embedded SQLite data
// directory while the gateway runs (Storage/Sqlite/SqliteBackup.cs). Before the migration and the journal's start:
// it reads, and changes nothing of the running gateway's files.
if (command.Is(FhirSortie.Server.Storage.Sqlite.SqliteBackup.Command))
{
    Environment.ExitCode = await FhirSortie.Server.Storage.Sqlite.SqliteBackup.RunAsync(
        app.Services.GetRequiredService<StorageDialect>(), args, Console.Out, Console.Error, CancellationToken.None);
    return;
}
// One process per SQLite data directory (Storage/Sqlite/DataDirectoryLock.cs), held from before the migrations.
if (!DataDirectoryLock.Take(app.Services.GetRequiredService<StorageDialect>(), Console.Error))
{
    Environment.ExitCode = DataDirectoryLock.Refused;
    return;
}
await Migrator.MigrateAsync(app.Services.GetRequiredService<StorageDialect>(), app.Logger, CancellationToken.None);
// Audit rows an older build queued (audit_log) move into the audit store, which serves the AuditEvents (Audit/AuditStore.cs).
await FhirSortie.Server.Audit.AuditStore.ImportQueuedAsync(app.Services.GetRequiredService<StorageDialect>(), CancellationToken.None);
// SQLite: records a crash left in the audit journal are known (and moved) from the start (Audit/AuditJournal.cs).
app.Services.GetRequiredService<FhirSortie.Server.Audit.AuditJournal>().Start();
// Operator command (`dotnet FhirSortie.Server.dll archive-audit <folder> [--before YYYY-MM-DD]`): the audit records older
// than FhirSortie:Audit:RetentionDays go to a compressed NDJSON file, then out of the audit store (Audit/AuditRetention.cs).
if (command.Is(FhirSortie.Server.Audit.AuditRetention.Command))
{
    Environment.ExitCode = await FhirSortie.Server.Audit.AuditRetention.RunAsync(app.Services.GetRequiredService<StorageDialect>(),
        app.Services.GetRequiredService<FhirSortie.Server.Audit.AuditTrail>(), app.Configuration, TimeProvider.System, args, Console.Out, Console.Error, CancellationToken.None);
    return;
}
// Compile profiles/ now: a broken profile stops the start instead of failing the first write.
app.Services.GetRequiredService<FhirSortie.Server.Profiles.ProfileEnforcement>();
app.Services.GetRequiredService<FhirSortie.Server.Notifications.OutboxGauges>(); // its gauges exist from the start
if (!await app.InitializeAuthorizationAsync(CancellationToken.None))
{
    Environment.ExitCode = 2; // a KEK missing, malformed or wrong (Security/KeyEncryptionException.cs): said in one line
    return;
}
// Operator commands `rotate-signing-key` and `retire-signing-key <kid>` (Security/SigningKeyCommands.cs): change the
// keys in the database and exit.
if (SigningKeyCommands.Handles(command))
{
    Environment.ExitCode = await SigningKeyCommands.RunAsync(app, command, Console.Out, Console.Error, CancellationToken.None);
    return;
}

// The profiles, ValueSets, CodeSystems, ConceptMaps, SearchParameters and OperationDefinitions the gateway ships, served read-only.
var published = await app.Services.GetRequiredService<FhirSortie.Server.Profiles.ShippedConformance>().PublishAsync(
    app.Services.GetRequiredService<ResourceStore>(), app.Services.GetRequiredService<StorageDialect>(), CancellationToken.None);
if (published > 0) app.Logger.LogInformation("Published {Count} shipped conformance resources (new or changed)", published);
app.UseTrustedProxies(builder.Configuration); // Rest/TrustedProxies.cs: the client's address behind the load balancer
app.UseSerilogRequestLogging(options =>
{
    // Route templates, not paths: no ids or search values (which may be INS or names) reach the logs.
    options.MessageTemplate = "HTTP {RequestMethod} {RouteTemplate} responded {StatusCode} in {Elapsed:0.0} ms (request {RequestId})";
    options.EnrichDiagnosticContext = (diagnostics, http) =>
    {
        var template = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(no route)";
        diagnostics.Set("RouteTemplate", template);
        diagnostics.Set("ClientId", http.User.FindFirst("client_id")?.Value ?? "anonymous");
        // The X-Request-Id of the answer (Rest/RequestIds.cs).
        diagnostics.Set("RequestId", http.TraceIdentifier);
    };
});
app.UseResponseCompression();
app.UseRequestIds();
app.UseHealthDataHeaders();
app.UseMiddleware<FhirErrorMiddleware>();
app.UseCors(SmartAppLaunch.CorsPolicy);
FhirSortie.Server.Audit.AuthenticationAudit.UseAuthenticationAudit(app);
app.UseOAuthFormLimits(); // a form past the limits is a 400, not OpenIddict's 500
app.UseFailedClientAuthenticationLimit(); // after the audit: its 429s are recorded Logins
app.UseAuthentication(); // OpenIddict answers the OAuth endpoints inside the authentication middleware
app.UseAuthorization();
// Every FHIR interaction leaves an AuditEvent, committed before the response starts (Audit/).
app.UseMiddleware<FhirSortie.Server.Audit.AuditMiddleware>();
app.UseClientThrottling(); // after audit: a throttled request is a refused one, and leaves its AuditEvent
app.UseMiddleware<FhirSortie.Server.Consents.RedactionMiddleware>(); // after audit: justice/social answers are redacted on the way out
DatabaseHealthCheck.MapHealth(app); // /health (liveness) and /health/ready (the database), GET and HEAD
app.MapFhir();
app.MapSmartAppLaunch();
FhirSortie.Server.Portal.PortalSetup.MapPortal(app);

// Demo data (Demo/): `seed-demo` loads the fictitious exit packages over HTTP and exits; `--seed-demo` or
// FhirSortie:Demo:Seed=true loads them once the server listens. Demo mode only, never Production.
if (command.Is(FhirSortie.Server.Demo.DemoCommand.Command))
{
    Environment.ExitCode = await FhirSortie.Server.Demo.DemoCommand.RunAsync(app, CancellationToken.None);
    return;
}
if (FhirSortie.Server.Demo.DemoCommand.SeedAtStart(app))
{
    await FhirSortie.Server.Demo.DemoCommand.RunWithSeedAsync(app);
    return;
}
app.Run();

/// <summary>Entry point, public so that tests can host the gateway with WebApplicationFactory.</summary>
public partial class Program;
