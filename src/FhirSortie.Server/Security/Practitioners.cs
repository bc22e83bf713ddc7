using Microsoft.AspNetCore.Identity;

namespace FhirSortie.Server.Security;

/// <summary>One practitioner login (configuration section FhirSortie:Users, a list).</summary>
public sealed class PractitionerUser
{
    public string UserName { get; set; } = "";

    /// <summary>ASP.NET Core Identity password hash (PBKDF2, see <see cref="PasswordHasher{TUser}"/>); never the password.</summary>
    public string PasswordHash { get; set; } = "";

    /// <summary>The user's FHIR identity, e.g. "Practitioner/dr-demo"; carried in the access token as fhirUser.</summary>
    public string? FhirUser { get; set; }

    public string? DisplayName { get; set; }

    /// <summary>
    /// The practitioner's subject at the OpenID Connect provider (FhirSortie:Auth:PractitionerProvider), e.g. the
    /// Pro Santé Connect SubjectNameID; a user with one may sign in there, and needs no password.
    /// </summary>
    public string? ExternalSubject { get; set; }

    /// <summary>
    /// The practitioner's PractitionerRole, for clients that act for their user (the exit portal): the kind of actor
    /// (<see cref="Security.ActorKind"/> name) and the organisation's FINESS; the portal refuses a user without them.
    /// </summary>
    public string? ActorKind { get; set; }
    public string? OrganizationFiness { get; set; }

    /// <summary>Space-separated ceiling of the resource scopes such a client gets for this user (empty: the client's).</summary>
    public string? AllowedScopes { get; set; }
}

/// <summary>
/// The practitioners who may sign in on the login page of a SMART App Launch. They come from configuration; in demo
/// mode the demo practitioner (<see cref="DemoUserName"/> / <see cref="DemoPassword"/>) is added.
/// </summary>
public sealed class Practitioners
{
    public const string Section = "FhirSortie:Users";
    public const string DemoUserName = "dr-demo";
    public const string DemoPassword = "dr-demo-password";

    private static readonly PasswordHasher<PractitionerUser> Hasher = new();
    private readonly Dictionary<string, PractitionerUser> _users;
    private readonly Dictionary<string, PractitionerUser> _bySubject = new(StringComparer.Ordinal);

    // A hash to verify against when the user name is unknown, so that the answer takes as long as for a known one.
    private readonly string _decoyHash = Hasher.HashPassword(new PractitionerUser(), Guid.NewGuid().ToString());

    public Practitioners(IEnumerable<PractitionerUser> users, bool demoMode)
    {
        _users = new Dictionary<string, PractitionerUser>(StringComparer.Ordinal);
        foreach (var user in users)
        {
            if (string.IsNullOrWhiteSpace(user.UserName) || (string.IsNullOrWhiteSpace(user.PasswordHash) && string.IsNullOrWhiteSpace(user.ExternalSubject)))
                throw new InvalidOperationException($"{Section}: every user needs a UserName, and a PasswordHash or an ExternalSubject.");
            if (!_users.TryAdd(user.UserName, user))
                throw new InvalidOperationException($"{Section}: user '{user.UserName}' is listed twice.");
            if (user.ExternalSubject is { Length: > 0 } subject && !_bySubject.TryAdd(subject, user))
                throw new InvalidOperationException($"{Section}: two users have the ExternalSubject '{subject}'.");
        }
        if (demoMode && !_users.ContainsKey(DemoUserName))
        {
            var demo = new PractitionerUser { UserName = DemoUserName, FhirUser = "Practitioner/dr-demo", DisplayName = "Dr Demo (demo)" };
            demo.PasswordHash = Hasher.HashPassword(demo, DemoPassword);
            _users.Add(DemoUserName, demo);
        }
        if (demoMode)
        {
            foreach (var demo in Portal.PortalDemo.Users.Where(u => !_users.ContainsKey(u.UserName)))
            {
                demo.PasswordHash = Hasher.HashPassword(demo, demo.UserName + "-password");
                _users.Add(demo.UserName, demo);
            }
        }
    }

    public static Practitioners FromConfiguration(IConfiguration configuration, bool demoMode) =>
        new(configuration.GetSection(Section).Get<List<PractitionerUser>>() ?? [], demoMode);

    /// <summary>The user when the password is right, otherwise null (unknown user or wrong password alike).</summary>
    public PractitionerUser? Verify(string userName, string password)
    {
        // A user who signs in only at the provider has no password to match.
        if (!_users.TryGetValue(userName, out var user) || string.IsNullOrEmpty(user.PasswordHash))
        {
            Hasher.VerifyHashedPassword(new PractitionerUser(), _decoyHash, password);
            return null;
        }
        return Hasher.VerifyHashedPassword(user, user.PasswordHash, password) == PasswordVerificationResult.Failed ? null : user;
    }

    public PractitionerUser? Find(string userName) => _users.GetValueOrDefault(userName);

    /// <summary>The user the OpenID Connect provider's subject belongs to, or null (not a practitioner of this gateway).</summary>
    public PractitionerUser? FindExternal(string subject) => _bySubject.GetValueOrDefault(subject);

    /// <summary>A hash for the configuration, e.g. from a small admin command.</summary>
    public static string HashPassword(string password) => Hasher.HashPassword(new PractitionerUser(), password);
}
