using FhirSortie.Server.Storage;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;

namespace FhirSortie.Server.Security;

/// <summary>
/// SMART App Launch, the interactive side of the authorization server: practitioner login, patient picker, EHR launch
/// contexts and the authorization endpoint's handler. Composition root hooks: <see cref="AddSmartAppLaunch"/> and
/// <see cref="MapSmartAppLaunch"/>.
/// </summary>
public static class SmartAppLaunch
{
    /// <summary>Call after AddFhirSortieAuthorization (it registers the client registry and the demo mode).</summary>
    public static void AddSmartAppLaunch(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<LaunchContexts>();
        services.AddSingleton(provider => Practitioners.FromConfiguration(configuration, provider.GetRequiredService<DemoMode>().On));
        services.AddAntiforgery(options =>
        {
            options.Cookie.Name = "fhirsortie_antiforgery";
            options.Cookie.Path = "/auth";
            options.Cookie.SecurePolicy = Microsoft.AspNetCore.Http.CookieSecurePolicy.SameAsRequest;
        });
        // One key ring for every node, in the database (see DatabaseKeyRepository), encrypted with the KEK when one is set
        // (DataProtectionKeyEncryption): the session cookies are then no weaker than the tokens.
        services.AddDataProtection().SetApplicationName("FhirSortie");
        services.AddOptions<KeyManagementOptions>()
            .Configure<StorageDialect, TimeProvider, KeyEncryption>((options, dialect, clock, encryption) =>
            {
                options.XmlRepository = new DatabaseKeyRepository(dialect, clock);
                if (encryption.On) options.XmlEncryptor = new KekXmlEncryptor(encryption);
            });
        var authentication = services.AddAuthentication();
        authentication.AddPractitionerCookie();
        if (PractitionerLogin.Settings(configuration) is { } provider) authentication.AddPractitionerProvider(provider);
        // Browser apps (SMART's JavaScript client) call the token endpoint, the discovery document and /fhir from
        // their own origin: allow exactly the origins of the registered redirect URIs.
        services.AddCors();
        services.AddOptions<Microsoft.AspNetCore.Cors.Infrastructure.CorsOptions>().Configure<ClientRegistry>((options, clients) =>
        {
            var origins = clients.All.SelectMany(c => c.RedirectUris).Select(u => u.GetLeftPart(UriPartial.Authority)).Distinct().ToArray();
            options.AddPolicy(CorsPolicy, policy => policy.WithOrigins(origins).AllowAnyHeader().AllowAnyMethod()
                .WithExposedHeaders("Location", "Content-Location", "ETag", "Last-Modified", "WWW-Authenticate", "Retry-After",
                    Rest.RequestIds.RequestHeader, Rest.RequestIds.CorrelationHeader));
        });
    }

    /// <summary>CORS policy name; Program.cs applies it before authentication (preflights carry no token).</summary>
    public const string CorsPolicy = "smart-apps";

    public static void MapSmartAppLaunch(this IEndpointRouteBuilder routes)
    {
        routes.MapLoginPages();
        routes.MapPractitionerProvider();
        routes.MapPatientPicker();
        routes.MapLaunchEndpoint();
        routes.MapAuthorizeEndpoint();
    }
}
