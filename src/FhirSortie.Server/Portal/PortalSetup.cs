using Microsoft.AspNetCore.Authentication;

namespace FhirSortie.Server.Portal;

/// <summary>Composition root hooks of the exit portal: <see cref="AddPortal"/> and <see cref="MapPortal"/> (the routing table).</summary>
public static class PortalSetup
{
    /// <summary>Call after AddSmartAppLaunch (Data Protection with the database key ring, the practitioner cookie).</summary>
    public static void AddPortal(this IServiceCollection services)
    {
        services.AddSingleton<Loopback>();
        new AuthenticationBuilder(services).AddPortalCookie();
        // Loopback only: no proxy, no redirects, no cookies (each request carries the user's token, nothing else).
        services.AddHttpClient(Loopback.HttpClientName, http => http.Timeout = TimeSpan.FromSeconds(30))
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false, UseProxy = false });
    }

    public static void MapPortal(this IEndpointRouteBuilder routes)
    {
        var portal = routes.MapGroup(PortalRoutes.Root).ExcludeFromDescription();
        portal.MapGet("/", (Delegate)HomeAsync);
        portal.MapGet("/portal.css", (HttpContext context) =>
        {
            PortalPage.SecureHeaders(context.Response);
            return Results.Text(PortalStyles.Css, "text/css; charset=utf-8");
        });
        portal.MapGet("/connexion", PortalSession.Start);
        portal.MapGet("/callback", PortalSession.CallbackAsync);
        portal.MapPost("/deconnexion", PortalSession.SignOutAsync);
        Inbox.Map(portal);
        Ordonnance.Map(portal);
        SortiesBoard.Map(portal);
        ExitPackagePage.Map(portal);
        SpipView.Map(portal);
        AccessReportView.Map(portal);
        ConsentView.Map(portal);
        IndicatorsView.Map(portal);
    }

    /// <summary>The front door: the user's own page when signed in, else what the portal is and "Se connecter".</summary>
    private static async Task<IResult> HomeAsync(HttpContext context)
    {
        var session = await context.AuthenticateAsync(PortalSession.Scheme);
        if (session.Succeeded && PortalUser.Of(session.Principal!) is { } user) return Results.Redirect(user.HomePath);
        var body = "<h1>Portail de sortie de détention</h1>"
            + (context.Request.Query.ContainsKey("deconnecte") ? "<p class=\"notice\" role=\"status\">Vous êtes déconnecté. Votre accès a été révoqué.</p>" : "")
            + "<p>Ce portail permet aux professionnels de la sortie de prison (unités sanitaires, CSAPA, ACT, structures de soins, SPIP, "
            + "délégué à la protection des données) de préparer et de suivre la continuité des soins, dans les limites du consentement de la personne.</p>"
            + "<p>Connectez-vous avec votre compte professionnel (mot de passe ou Pro Santé Connect).</p>"
            + PortalPage.SignInForm();
        return PortalPage.Render(context, null, null, "Accueil", body);
    }
}
