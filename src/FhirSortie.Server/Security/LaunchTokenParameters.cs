using OpenIddict.Abstractions;
using OpenIddict.Server;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace FhirSortie.Server.Security;

/// <summary>
/// SMART launch context in the token response: when an authorization code carrying a patient is exchanged, the
/// response says <c>patient</c> (and <c>need_patient_banner</c>), so that the app knows which patient it is about
/// without decoding the access token.
/// </summary>
public sealed class LaunchTokenParameters : IOpenIddictServerHandler<ProcessSignInContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
        OpenIddictServerHandlerDescriptor.CreateBuilder<ProcessSignInContext>()
            .UseSingletonHandler<LaunchTokenParameters>()
            // Before OpenIddict copies the additional parameters into the response.
            .SetOrder(OpenIddictServerHandlers.AttachCustomSignInParameters.Descriptor.Order - 1)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

    public ValueTask HandleAsync(ProcessSignInContext context)
    {
        if (context.EndpointType == OpenIddictServerEndpointType.Token
            && context.Request?.IsAuthorizationCodeGrantType() == true
            && context.Principal?.GetClaim(Caller.Claims.Patient) is { Length: > 0 } patient)
        {
            context.Parameters[Caller.Claims.Patient] = patient;
            // The practitioner launched the app on one patient: the app shows whose record it is.
            context.Parameters["need_patient_banner"] = true;
        }
        return ValueTask.CompletedTask;
    }
}
