using Microsoft.Extensions.Options;

namespace FhirSortie.Server.Security;

/// <summary>
/// Slows password guessing on the practitioners' login page: after <see cref="AuthOptions.MaxFailedPractitionerLogins"/>
/// wrong passwords for one user name from one address within <see cref="AuthOptions.FailedPractitionerLoginWindowSeconds"/>,
/// that name is refused from that address (429) until the window ends, before its password is checked; after ten times
/// as many failures from one address, whatever the names tried (password spraying), the address is. Keyed by address,
/// so that a guesser cannot lock a practitioner out of their own workstation. The refusals are audited (Login, outcome 4).
/// </summary>
public sealed class FailedPractitionerLogins(IOptions<AuthOptions> options, TimeProvider clock)
    : FailedAttempts(options.Value.MaxFailedPractitionerLogins, TimeSpan.FromSeconds(options.Value.FailedPractitionerLoginWindowSeconds), clock)
{
    /// <summary>How many more failures an address may have, all names together, than one name from it.</summary>
    public const int AddressFactor = 10;

    /// <summary>How long this sign-in must wait, or null when its password may be checked.</summary>
    public TimeSpan? RetryAfter(string address, string userName) =>
        RetryAfter((address, userName)) ?? RetryAfter(AddressKey(address), Limit * AddressFactor);

    public void Failed(string address, string userName)
    {
        Failed((address, userName));
        Failed(AddressKey(address));
    }

    // Apart from the (address, name) keys: no address starts with a space.
    private static (string, string) AddressKey(string address) => (" all names from " + address, "");
}
