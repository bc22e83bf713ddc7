namespace FhirSortie.Server.Security;

/// <summary>
/// A key-encryption key that is malformed, missing or not the one the database's keys need: the fix is in this node's
/// configuration, so the start ends with the message alone (<see cref="AuthorizationServer.InitializeAuthorizationAsync"/>).
/// </summary>
public sealed class KeyEncryptionException(string message) : InvalidOperationException(message);
