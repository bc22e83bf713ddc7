using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Server.Security;

/// <summary>
/// Envelope encryption of the authorization server's private keys in auth_keys, with a key-encryption key (KEK)
/// from configuration (<c>FhirSortie:Auth:KeyEncryptionKey</c>: 32 random bytes in base64, the same on every node, kept
/// in the deployment's secret store, not in the database). With it, a copy of the database (a backup, a replica, a
/// read-only account) is no longer enough to mint tokens. AES-256-GCM from the BCL; the row's purpose and kid are the
/// associated data, so a ciphertext moved to another row does not decrypt.
/// Stored form: <c>aesgcm:{kek id}:{base64(nonce | tag | ciphertext)}</c>; the KEK id (8 characters of its SHA-256)
/// tells an operator which KEK a row needs. Rows without the prefix are clear (written before a KEK was configured):
/// they are read, and encrypted in place at the next start with a KEK (<see cref="SigningKeyStore.InitializeAsync"/>).
/// Why not ASP.NET Data Protection: its key ring would itself need storage shared by every node and protected by
/// something outside the database, which is what the KEK already is.
/// </summary>
public sealed class KeyEncryption
{
    public const string Setting = "FhirSortie:Auth:KeyEncryptionKey";
    private const string Prefix = "aesgcm:";
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    private readonly byte[]? _kek;

    private KeyEncryption(byte[]? kek)
    {
        _kek = kek;
        KekId = kek is null ? null : Base64UrlEncoder.Encode(SHA256.HashData(kek))[..8];
    }

    public static KeyEncryption None { get; } = new(null);

    /// <summary>From the configured base64 value; none when it is empty. A value that is not 32 bytes of base64 stops the start.</summary>
    public static KeyEncryption FromSetting(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return None;
        byte[] kek;
        try
        {
            kek = Convert.FromBase64String(value.Trim());
        }
        catch (FormatException)
        {
            throw new InvalidOperationException($"{Setting} is not base64 (generate one with: openssl rand -base64 32).");
        }
        if (kek.Length != 32) throw new InvalidOperationException($"{Setting} must be 32 bytes (base64 of 44 characters: openssl rand -base64 32).");
        return new KeyEncryption(kek);
    }

    public bool On => _kek is not null;

    public string? KekId { get; }

    public static bool IsProtected(string stored) => stored.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>The text to store for <paramref name="material"/>: encrypted with the KEK, or base64 in clear without one.</summary>
    public string Protect(string purpose, string kid, byte[] material)
    {
        if (_kek is null) return Convert.ToBase64String(material);
        var sealedBytes = new byte[NonceBytes + TagBytes + material.Length];
        var nonce = sealedBytes.AsSpan(0, NonceBytes);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_kek, TagBytes);
        aes.Encrypt(nonce, material, sealedBytes.AsSpan(NonceBytes + TagBytes), sealedBytes.AsSpan(NonceBytes, TagBytes), AssociatedData(purpose, kid));
        return $"{Prefix}{KekId}:{Convert.ToBase64String(sealedBytes)}";
    }

    /// <summary>The key material of a row; throws with what the operator must fix when it cannot be read.</summary>
    public byte[] Unprotect(string purpose, string kid, string stored)
    {
        if (!IsProtected(stored)) return Convert.FromBase64String(stored);
        var rest = stored.AsSpan(Prefix.Length);
        var colon = rest.IndexOf(':');
        var rowKek = colon < 0 ? "" : rest[..colon].ToString();
        if (_kek is null)
            throw new InvalidOperationException($"Key {kid} in auth_keys is encrypted (KEK {rowKek}) and {Setting} is not set on this node.");
        if (rowKek != KekId)
            throw new InvalidOperationException($"Key {kid} in auth_keys is encrypted with KEK {rowKek}; this node's {Setting} is KEK {KekId}.");
        var sealedBytes = Convert.FromBase64String(rest[(colon + 1)..].ToString());
        if (sealedBytes.Length < NonceBytes + TagBytes) throw new InvalidOperationException($"Key {kid} in auth_keys is truncated.");
        var material = new byte[sealedBytes.Length - NonceBytes - TagBytes];
        using var aes = new AesGcm(_kek, TagBytes);
        try
        {
            aes.Decrypt(sealedBytes.AsSpan(0, NonceBytes), sealedBytes.AsSpan(NonceBytes + TagBytes), sealedBytes.AsSpan(NonceBytes, TagBytes), material,
                AssociatedData(purpose, kid));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new InvalidOperationException($"Key {kid} in auth_keys does not decrypt with KEK {KekId}: the row was altered or moved.");
        }
        return material;
    }

    private static byte[] AssociatedData(string purpose, string kid) => Encoding.UTF8.GetBytes($"auth_keys|{purpose}|{kid}");
}
