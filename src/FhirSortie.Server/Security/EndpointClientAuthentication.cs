using OpenIddict.Server;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace FhirSortie.Server.Security;

/// <summary>
/// Client authentication at the revocation and introspection endpoints (degraded mode leaves it to us), as at the token
/// endpoint (<see cref="OpenIddictHandlers.TokenClientAuthentication.Authenticate"/>), and before the token is looked at:
/// OpenIddict answers an invalid token with an empty 200 (revocation) or active: false (introspection), so a client
/// refused only afterwards would learn which tokens are valid. A client assertion is validated together with the token,
/// so that case is checked just after it. The authenticated client id is read back with <see cref="ClientIdOf"/>.
/// </summary>
public static class EndpointClientAuthentication
{
    private const string Property = "fhirsortie:endpoint_client";

    /// <summary>The client these handlers authenticated (set before any Handle* event of the endpoint runs).</summary>
    public static string ClientIdOf(BaseContext context) => (string)context.Transaction.Properties[Property]!;

    /// <summary>The client authenticated at this request's OAuth endpoint (token, revocation, introspection), if one was.</summary>
    public static string? AuthenticatedClient(OpenIddictServerTransaction transaction) =>
        transaction.Properties.TryGetValue(Property, out var value) ? value as string : null;

    /// <summary>Called by the client authentication of every OAuth endpoint once the client is authenticated.</summary>
    internal static void Remember(BaseContext context, Client client) => context.Transaction.Properties[Property] = client.ClientId;

    /// <param name="tokenValidationOrder">The order of the endpoint's ValidateAuthentication handler (client assertion and token).</param>
    public static OpenIddictServerHandlerDescriptor[] Descriptors<TContext>(int tokenValidationOrder, bool publicAllowed, string publicRefused)
        where TContext : BaseValidatingClientContext =>
    [
        OpenIddictServerHandlerDescriptor.CreateBuilder<TContext>()
            .UseSingletonHandler(services => new WithoutAssertion<TContext>(services.GetRequiredService<ClientRegistry>(), publicAllowed, publicRefused))
            .SetOrder(tokenValidationOrder - 500)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build(),
        OpenIddictServerHandlerDescriptor.CreateBuilder<TContext>()
            .UseSingletonHandler(services => new WithAssertion<TContext>(services.GetRequiredService<ClientRegistry>(), publicAllowed, publicRefused))
            .SetOrder(tokenValidationOrder + 500)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build(),
    ];

    // Two types, not one type with a flag: OpenIddict resolves a handler by its type, so two descriptors of one type
    // would share the instance registered last.
    private sealed class WithoutAssertion<TContext>(ClientRegistry registry, bool publicAllowed, string publicRefused)
        : Handler<TContext>(registry, assertions: false, publicAllowed, publicRefused) where TContext : BaseValidatingClientContext;

    private sealed class WithAssertion<TContext>(ClientRegistry registry, bool publicAllowed, string publicRefused)
        : Handler<TContext>(registry, assertions: true, publicAllowed, publicRefused) where TContext : BaseValidatingClientContext;

    /// <summary>Authenticates the requests with a client assertion (<paramref name="assertions"/>) or those without one.</summary>
    private abstract class Handler<TContext>(ClientRegistry registry, bool assertions, bool publicAllowed, string publicRefused) : IOpenIddictServerHandler<TContext>
        where TContext : BaseValidatingClientContext
    {
        public ValueTask HandleAsync(TContext context)
        {
            if (string.IsNullOrEmpty(context.Transaction.Request?.ClientAssertion) == assertions) return default;
            OpenIddictHandlers.TokenClientAuthentication.Authenticate(context, registry, publicAllowed, publicRefused);
            return default;
        }
    }
}
