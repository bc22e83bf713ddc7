using System.Text;
using System.Xml.Linq;
using FhirSortie.Server.Storage;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;

namespace FhirSortie.Server.Security;

/// <summary>
/// The ASP.NET Core data protection key ring (table data_protection_keys, <see cref="DatabaseKeyRepository"/>) encrypted
/// with the same key-encryption key as the signing keys (<see cref="KeyEncryption"/>). Those keys protect the
/// practitioners' session cookies: in clear, a copy of the database alone could forge a sign-in. Each key's secret
/// (the element data protection marks requiresEncryption) is stored as
/// <c>&lt;encryptedSecret decryptorType="KekXmlDecryptor"&gt;&lt;kekEncryptedKey&gt;aesgcm:{kek id}:...</c>; keys written in clear
/// before a KEK was set, or with a previous KEK, are encrypted at start (<see cref="EncryptRowsAsync"/>), as auth_keys rows are.
/// </summary>
public static class DataProtectionKeyEncryption
{
    /// <summary>The purpose in the AES-GCM associated data: a data protection secret does not decrypt as an auth_keys row.</summary>
    public const string Purpose = "data_protection_keys";

    /// <summary>The encryptor gets the secret alone, not the key's id: one fixed name in the associated data.</summary>
    internal const string Kid = "masterKey";

    internal static readonly XName EncryptedElement = "kekEncryptedKey";

    private const string Namespace = "http://schemas.asp.net/2015/03/dataProtection";
    private static readonly XName EncryptedSecret = XName.Get("encryptedSecret", Namespace);
    private static readonly XName RequiresEncryption = XName.Get("requiresEncryption", Namespace);

    internal static string Row(string name) => $"Data protection key {name} in data_protection_keys";

    /// <summary>
    /// Encrypts, with the current KEK, the secrets stored in clear or with a previous KEK; without a KEK, refuses
    /// encrypted rows (this node could not read the practitioners' sessions). The UPDATE names the value it replaces,
    /// so nodes starting together cannot overwrite each other. Throws <see cref="KeyEncryptionException"/>.
    /// </summary>
    public static async Task EncryptRowsAsync(StorageDialect dialect, KeyEncryption encryption, ILogger logger, CancellationToken ct)
    {
        var rows = new List<(string Name, string Xml)>();
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        await using (var select = Sql.Command(connection, null, "SELECT name, xml FROM data_protection_keys"))
        await using (var reader = await select.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct)) rows.Add((reader.GetString(0), reader.GetString(1)));
        }
        var encryptor = new KekXmlEncryptor(encryption);
        var changed = 0;
        foreach (var (name, xml) in rows)
        {
            var key = XElement.Parse(xml);
            var rewritten = false;
            foreach (var sealedSecret in key.Descendants(EncryptedElement).ToList())
            {
                // Readable with this node's KEKs, or a one-line refusal naming the KEK the row needs.
                var secret = encryption.Unprotect(Purpose, Kid, sealedSecret.Value, Row(name));
                if (encryption.IsCurrent(sealedSecret.Value)) continue;
                sealedSecret.ReplaceWith(encryptor.Encrypt(XElement.Parse(Encoding.UTF8.GetString(secret))).EncryptedElement);
                rewritten = true;
            }
            if (encryption.On)
            {
                foreach (var clear in key.Descendants().Where(e => (bool?)e.Attribute(RequiresEncryption) == true).ToList())
                {
                    clear.ReplaceWith(new XElement(EncryptedSecret,
                        new XAttribute("decryptorType", typeof(KekXmlDecryptor).AssemblyQualifiedName!),
                        encryptor.Encrypt(clear).EncryptedElement));
                    rewritten = true;
                }
            }
            if (!rewritten) continue;
            await using var update = Sql.Command(connection, null, "UPDATE data_protection_keys SET xml = @encrypted WHERE name = @name AND xml = @stale")
                .With("@encrypted", key.ToString(SaveOptions.DisableFormatting)).With("@name", name).With("@stale", xml);
            changed += await update.ExecuteNonQueryAsync(ct);
        }
        if (changed > 0) logger.LogInformation("Encrypted {Count} keys of data_protection_keys with KEK {KekId}", changed, encryption.KekId);
    }
}

/// <summary>Encrypts a data protection key's secret with the KEK as data protection writes a new key (KeyManagementOptions.XmlEncryptor).</summary>
public sealed class KekXmlEncryptor(KeyEncryption encryption) : IXmlEncryptor
{
    public EncryptedXmlInfo Encrypt(XElement plaintextElement)
    {
        if (!encryption.On) throw new KeyEncryptionException($"{KeyEncryption.Setting} is not set: data protection keys cannot be encrypted.");
        var secret = Encoding.UTF8.GetBytes(plaintextElement.ToString(SaveOptions.DisableFormatting));
        var sealedSecret = encryption.Protect(DataProtectionKeyEncryption.Purpose, DataProtectionKeyEncryption.Kid, secret);
        return new EncryptedXmlInfo(new XElement(DataProtectionKeyEncryption.EncryptedElement, sealedSecret), typeof(KekXmlDecryptor));
    }
}

/// <summary>
/// Decrypts a secret written by <see cref="KekXmlEncryptor"/>. Data protection creates it by type name with the
/// application's services; a process without the KEK (a copy of the database elsewhere) cannot read the key.
/// </summary>
public sealed class KekXmlDecryptor(IServiceProvider services) : IXmlDecryptor
{
    public XElement Decrypt(XElement encryptedElement)
    {
        var encryption = services.GetService<KeyEncryption>() ?? KeyEncryption.None;
        var secret = encryption.Unprotect(DataProtectionKeyEncryption.Purpose, DataProtectionKeyEncryption.Kid, encryptedElement.Value,
            "A data protection key in data_protection_keys");
        return XElement.Parse(Encoding.UTF8.GetString(secret));
    }
}
