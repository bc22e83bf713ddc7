using FhirSortie.Server.Rest;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Security;

/// <summary>
/// The authentication schemes, with no "request handler" scheme on /fhir. ASP.NET Core's authentication middleware
/// first offers every request to each request handler scheme; ours is OpenIddict's server, which dispatches its request
/// events on every request only to find that /fhir is none of its endpoints (token, authorize, JWKS): about 4% of a
/// read's gateway CPU (bench/results/2026-11-23-read-path.md). On /fhir the middleware then goes straight to the
/// default scheme (<see cref="FhirBearerHandler"/>, or the tests' scheme), as it does after that loop; every other path
/// (the OAuth endpoints, the SMART launch pages and their cookie) is unchanged.
/// </summary>
public sealed class FhirAuthenticationSchemes(IOptions<AuthenticationOptions> options, IHttpContextAccessor http) : AuthenticationSchemeProvider(options)
{
    private static readonly Task<IEnumerable<AuthenticationScheme>> None = Task.FromResult(Enumerable.Empty<AuthenticationScheme>());

    public override Task<IEnumerable<AuthenticationScheme>> GetRequestHandlerSchemesAsync() =>
        http.HttpContext?.Request.Path.StartsWithSegments(FhirBase.Path) == true ? None : base.GetRequestHandlerSchemesAsync();
}
