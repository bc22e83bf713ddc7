using System.Security.Cryptography;
using FhirSortie.Server.Security;
using FhirSortie.Server.Storage;
using FhirSortie.Server.Storage.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FhirSortie.Tests.Security;

/// <summary>The authorization server's private keys encrypted at rest with the configured key-encryption key.</summary>
public sealed class KeyEncryptionTests : IAsyncLifetime
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "fhirsortie-tests", Guid.NewGuid().ToString("N"));
    private SqliteDialect _dialect = null!;

    private static readonly string Kek = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    public async Task InitializeAsync()
    {
        _dialect = new SqliteDialect(_folder);
        await Migrator.MigrateAsync(_dialect, NullLogger.Instance, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _dialect.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private SigningKeyStore Node(string? kek, string? previous = null) =>
        new(_dialect, TimeProvider.System, NullLogger<SigningKeyStore>.Instance, KeyEncryption.FromSetting(kek, previous));

    private List<(string Purpose, string Kid, string Material)> Rows()
    {
        using var connection = new SqliteConnection($"Data Source={_dialect.DatabasePath}");
        connection.Open();
        using var cmd = new SqliteCommand("SELECT purpose, kid, material FROM auth_keys ORDER BY purpose, generation", connection);
        using var reader = cmd.ExecuteReader();
        var rows = new List<(string, string, string)>();
        while (reader.Read()) rows.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        return rows;
    }

    private void SetMaterial(string kid, string material)
    {
        using var connection = new SqliteConnection($"Data Source={_dialect.DatabasePath}");
        connection.Open();
        using var cmd = new SqliteCommand("UPDATE auth_keys SET material = $m WHERE kid = $k", connection);
        cmd.Parameters.AddWithValue("$m", material);
        cmd.Parameters.AddWithValue("$k", kid);
        Assert.Equal(1, cmd.ExecuteNonQuery());
    }

    private static byte[] PublicModulus(SigningKeyStore store) => store.Current.Signing[0].Rsa.ExportParameters(false).Modulus!;

    [Fact]
    public async Task With_a_kek_keys_are_stored_encrypted_and_every_node_with_the_kek_signs_with_them()
    {
        var nodeA = Node(Kek);
        await nodeA.InitializeAsync(CancellationToken.None);
        await nodeA.RotateAsync(SigningKeyStore.Sign, CancellationToken.None);

        var rows = Rows();
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.StartsWith("aesgcm:", r.Material, StringComparison.Ordinal));
        // No row holds the key in clear: a PKCS#8 RSA key starts with "MII" in base64, and the AES key is not there either.
        Assert.All(rows, r => Assert.DoesNotContain("MII", r.Material[..20], StringComparison.Ordinal));
        Assert.DoesNotContain(rows, r => r.Material.Contains(Convert.ToBase64String(nodeA.Current.Encryption[0].Key), StringComparison.Ordinal));

        var nodeB = Node(Kek);
        await nodeB.InitializeAsync(CancellationToken.None);
        Assert.Equal(nodeA.Current.Signing.Select(k => k.KeyId), nodeB.Current.Signing.Select(k => k.KeyId));
        Assert.Equal(PublicModulus(nodeA), PublicModulus(nodeB));
        Assert.Equal(nodeA.Current.Encryption[0].Key, nodeB.Current.Encryption[0].Key);
    }

    [Fact]
    public async Task Keys_written_in_clear_are_encrypted_in_place_when_a_kek_is_configured()
    {
        var before = Node(null);
        await before.InitializeAsync(CancellationToken.None);
        Assert.All(Rows(), r => Assert.False(KeyEncryption.IsProtected(r.Material)));

        var after = Node(Kek);
        await after.InitializeAsync(CancellationToken.None);

        Assert.All(Rows(), r => Assert.True(KeyEncryption.IsProtected(r.Material)));
        Assert.Equal(before.Current.Signing[0].KeyId, after.Current.Signing[0].KeyId);
        Assert.Equal(PublicModulus(before), PublicModulus(after)); // the same key: tokens in flight stay valid
        Assert.Equal(before.Current.Encryption[0].Key, after.Current.Encryption[0].Key);
    }

    [Fact]
    public async Task Encrypted_keys_stop_the_start_without_the_kek_with_a_wrong_kek_or_when_moved_to_another_row()
    {
        await Node(Kek).InitializeAsync(CancellationToken.None);

        var missing = await Assert.ThrowsAsync<KeyEncryptionException>(() => Node(null).InitializeAsync(CancellationToken.None));
        Assert.Contains(KeyEncryption.Setting, missing.Message, StringComparison.Ordinal);
        var wrong = await Assert.ThrowsAsync<KeyEncryptionException>(() =>
            Node(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))).InitializeAsync(CancellationToken.None));
        Assert.Contains("encrypted with KEK", wrong.Message, StringComparison.Ordinal);

        // The sign key's ciphertext copied onto the encrypt row: the associated data (purpose, kid) no longer matches.
        var rows = Rows();
        var sign = rows.Single(r => r.Purpose == SigningKeyStore.Sign);
        var encrypt = rows.Single(r => r.Purpose == SigningKeyStore.Encrypt);
        SetMaterial(encrypt.Kid, sign.Material);
        var moved = await Assert.ThrowsAsync<KeyEncryptionException>(() => Node(Kek).InitializeAsync(CancellationToken.None));
        Assert.Contains("altered or moved", moved.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Changing_the_kek_reencrypts_the_rows_read_with_the_previous_one()
    {
        var first = Node(Kek);
        await first.InitializeAsync(CancellationToken.None);
        var oldKekId = KeyEncryption.FromSetting(Kek).KekId!;
        var newKek = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

        var changed = Node(newKek, previous: Kek);
        await changed.InitializeAsync(CancellationToken.None);

        var newKekId = KeyEncryption.FromSetting(newKek).KekId!;
        Assert.All(Rows(), r => Assert.StartsWith($"aesgcm:{newKekId}:", r.Material, StringComparison.Ordinal));
        Assert.Equal(PublicModulus(first), PublicModulus(changed));
        // Once every node has started with the new KEK, the old one can go; a node still on the old one cannot start.
        await Node(newKek).InitializeAsync(CancellationToken.None);
        var stale = await Assert.ThrowsAsync<KeyEncryptionException>(() => Node(Kek).InitializeAsync(CancellationToken.None));
        Assert.Contains(newKekId, stale.Message, StringComparison.Ordinal);
        Assert.NotEqual(oldKekId, newKekId);
    }

    /// <summary>A data protection provider on this database's key ring (data_protection_keys), as a gateway node has one.</summary>
    private IDataProtector Protector(string? kek, string? previous = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddDataProtection().SetApplicationName("FhirSortie");
        var encryption = KeyEncryption.FromSetting(kek, previous);
        services.AddSingleton(encryption);
        services.Configure<KeyManagementOptions>(options =>
        {
            options.XmlRepository = new DatabaseKeyRepository(_dialect, TimeProvider.System);
            if (encryption.On) options.XmlEncryptor = new KekXmlEncryptor(encryption);
        });
        return services.BuildServiceProvider().GetRequiredService<IDataProtectionProvider>().CreateProtector("test");
    }

    private List<string> DataProtectionRows()
    {
        using var connection = new SqliteConnection($"Data Source={_dialect.DatabasePath}");
        connection.Open();
        using var cmd = new SqliteCommand("SELECT xml FROM data_protection_keys", connection);
        using var reader = cmd.ExecuteReader();
        var rows = new List<string>();
        while (reader.Read()) rows.Add(reader.GetString(0));
        return rows;
    }

    private Task EncryptDataProtectionKeysAsync(string? kek, string? previous = null) =>
        DataProtectionKeyEncryption.EncryptRowsAsync(_dialect, KeyEncryption.FromSetting(kek, previous), NullLogger.Instance, CancellationToken.None);

    [Fact]
    public async Task Data_protection_keys_written_in_clear_are_encrypted_at_start_and_then_need_the_kek()
    {
        var protectedBefore = Protector(kek: null).Protect("session");
        Assert.Contains(DataProtectionRows(), r => r.Contains("requiresEncryption", StringComparison.Ordinal));

        await EncryptDataProtectionKeysAsync(Kek);
        var kekId = KeyEncryption.FromSetting(Kek).KekId!;
        Assert.All(DataProtectionRows(), r =>
        {
            Assert.DoesNotContain("requiresEncryption", r, StringComparison.Ordinal);
            Assert.Contains($"aesgcm:{kekId}:", r, StringComparison.Ordinal);
        });
        // The same key, now encrypted: what it protected before still reads with the KEK, and no longer without.
        Assert.Equal("session", Protector(Kek).Unprotect(protectedBefore));
        Assert.ThrowsAny<CryptographicException>(() => Protector(kek: null).Unprotect(protectedBefore));
        var missing = await Assert.ThrowsAsync<KeyEncryptionException>(() => EncryptDataProtectionKeysAsync(kek: null));
        Assert.Contains(KeyEncryption.Setting + " is not set", missing.Message, StringComparison.Ordinal);

        // A new KEK with the old one listed: re-encrypted; a node with a KEK that matches neither cannot start.
        var newKek = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        await EncryptDataProtectionKeysAsync(newKek, previous: Kek);
        var newKekId = KeyEncryption.FromSetting(newKek).KekId!;
        Assert.All(DataProtectionRows(), r => Assert.Contains($"aesgcm:{newKekId}:", r, StringComparison.Ordinal));
        Assert.Equal("session", Protector(newKek).Unprotect(protectedBefore));
        var wrong = await Assert.ThrowsAsync<KeyEncryptionException>(() => EncryptDataProtectionKeysAsync(Kek));
        Assert.Contains($"encrypted with KEK {newKekId}", wrong.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Data_protection_keys_created_with_a_kek_are_never_in_clear()
    {
        var payload = Protector(Kek).Protect("session");
        var row = Assert.Single(DataProtectionRows());
        Assert.DoesNotContain("requiresEncryption", row, StringComparison.Ordinal);
        Assert.Contains("kekEncryptedKey", row, StringComparison.Ordinal);
        Assert.Equal("session", Protector(Kek).Unprotect(payload));
    }

    [Fact]
    public async Task Without_a_kek_encrypted_auth_keys_stop_the_start_before_any_unencrypted_warning()
    {
        await Node(Kek).InitializeAsync(CancellationToken.None);
        var logged = new List<string>();
        var node = new SigningKeyStore(_dialect, TimeProvider.System, new ListLogger(logged), KeyEncryption.None);
        await Assert.ThrowsAsync<KeyEncryptionException>(() => node.InitializeAsync(CancellationToken.None));
        Assert.Empty(logged);
    }

    private sealed class ListLogger(List<string> lines) : ILogger<SigningKeyStore>
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Add(formatter(state, exception));
    }

    [Fact]
    public void Previous_keks_without_a_current_one_stop_the_start() =>
        Assert.Throws<KeyEncryptionException>(() => KeyEncryption.FromSetting(null, Kek));

    [Theory]
    [InlineData("not base64!")]
    [InlineData("c2hvcnQ=")]
    public void A_malformed_kek_stops_the_start(string value) =>
        Assert.Throws<KeyEncryptionException>(() => KeyEncryption.FromSetting(value));
}
