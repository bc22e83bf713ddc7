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
/// they are read, and encrypted in place at the next start with a KEK (<see cref="SigningKeyStore.InitializeAsync"/>),
/// as are rows of a previous KEK (<see cref="PreviousSetting"/>).
/// Why not ASP.NET Data Protection: its key ring would itself need storage shared by every node and protected by
/// something outside the database, which is what the KEK already is; the KEK protects that key ring too
/// (<see cref="DataProtectionKeyEncryption"/>).
/// </summary>
public sealed class KeyEncryption
{
    public const string Setting = "FhirSortie:Auth:KeyEncryptionKey";

    /// <summary>
    /// KEKs replaced by <see cref="Setting"/> (base64 values separated by commas): rows they encrypted are still read,
    /// and re-encrypted with the current KEK at the next start. To change the KEK: set the new one, list the old one
    /// here, restart every node; once all have started, drop the old one.
    /// </summary>
    public const string PreviousSetting = "FhirSortie:Auth:PreviousKeyEncryptionKeys";

    private const string Prefix = "aesgcm:";
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    private readonly byte[]? _kek;
    private readonly Dictionary<string, byte[]> _readable = new(StringComparer.Ordinal); // by KEK id: the current and the previous ones

    private KeyEncryption(byte[]? kek, IEnumerable<byte[]> previous)
    {
        _kek = kek;
        KekId = kek is null ? null : IdOf(kek);
        foreach (var old in previous) _readable[IdOf(old)] = old;
        if (kek is not null) _readable[KekId!] = kek;
    }

    public static KeyEncryption None { get; } = new(null, []);

    /// <summary>From the configured base64 values; none when the current one is empty. A malformed value stops the start.</summary>
    public static KeyEncryption FromSetting(string? value, string? previous = null)
    {
        var olds = (previous ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(v => Parse(v, PreviousSetting)).ToList();
        if (string.IsNullOrWhiteSpace(value))
        {
            if (olds.Count > 0) throw new KeyEncryptionException($"{PreviousSetting} is set but {Setting} is not: set the KEK that replaces them.");
            return None;
        }
        return new KeyEncryption(Parse(value, Setting), olds);
    }

    private static byte[] Parse(string value, string setting)
    {
        byte[] kek;
        try
        {
            kek = Convert.FromBase64String(value.Trim());
        }
        catch (FormatException)
        {
            throw new KeyEncryptionException($"{setting} is not base64 (generate one with: openssl rand -base64 32).");
        }
        if (kek.Length != 32) throw new KeyEncryptionException($"{setting} must be 32 bytes (base64 of 44 characters: openssl rand -base64 32).");
        return kek;
    }

    private static string IdOf(byte[] kek) => Base64UrlEncoder.Encode(SHA256.HashData(kek))[..8];

    public bool On => _kek is not null;

    public string? KekId { get; }

    public static bool IsProtected(string stored) => stored.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>True when <paramref name="stored"/> is encrypted with the current KEK (nothing to rewrite at start).</summary>
    public bool IsCurrent(string stored) => KekId is not null && stored.StartsWith($"{Prefix}{KekId}:", StringComparison.Ordinal);

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

    /// <summary>
    /// The key material of a row; throws with what the operator must fix when it cannot be read. <paramref name="row"/>
    /// names the row in those messages (default: the auth_keys row of <paramref name="kid"/>).
    /// </summary>
    public byte[] Unprotect(string purpose, string kid, string stored, string? row = null)
    {
        row ??= $"Key {kid} in auth_keys";
        if (!IsProtected(stored)) return Convert.FromBase64String(stored);
        var rest = stored.AsSpan(Prefix.Length);
        var colon = rest.IndexOf(':');
        var rowKek = colon < 0 ? "" : rest[..colon].ToString();
        if (_kek is null)
            throw new KeyEncryptionException($"{row} is encrypted (KEK {rowKek}) and {Setting} is not set on this node.");
        if (!_readable.TryGetValue(rowKek, out var kek))
            throw new KeyEncryptionException($"{row} is encrypted with KEK {rowKek}; this node's {Setting} is KEK {KekId} and {PreviousSetting} does not hold {rowKek}.");
        var sealedBytes = Convert.FromBase64String(rest[(colon + 1)..].ToString());
        if (sealedBytes.Length < NonceBytes + TagBytes) throw new KeyEncryptionException($"{row} is truncated.");
        var material = new byte[sealedBytes.Length - NonceBytes - TagBytes];
        using var aes = new AesGcm(kek, TagBytes);
        try
        {
            aes.Decrypt(sealedBytes.AsSpan(0, NonceBytes), sealedBytes.AsSpan(NonceBytes + TagBytes), sealedBytes.AsSpan(NonceBytes, TagBytes), material,
                AssociatedData(purpose, kid));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new KeyEncryptionException($"{row} does not decrypt with KEK {rowKek}: the row was altered or moved.");
        }
        return material;
    }

    private static byte[] AssociatedData(string purpose, string kid) => Encoding.UTF8.GetBytes($"auth_keys|{purpose}|{kid}");
}
