using System.Security.Cryptography;
using FhirSortie.Server.Storage;
using Microsoft.IdentityModel.Tokens;

namespace FhirSortie.Server.Security;

/// <summary>
/// The authorization server's keys, kept in the database (table auth_keys) so that every gateway node signs and
/// validates with the same keys and a restart does not invalidate tokens. Purpose "sign": RSA keys that sign access
/// tokens (RS256); purpose "encrypt": AES keys that protect authorization codes and refresh tokens (those are opaque
/// to clients; access tokens stay plain JWS for resource servers). The highest non-retired generation is used for new
/// tokens; every non-retired key still validates, so rotation never breaks tokens in flight.
/// The private keys are encrypted with the configured key-encryption key (<see cref="KeyEncryption"/>); without one
/// they sit in the database in clear, and whoever reads the database can mint tokens.
/// </summary>
public sealed class SigningKeyStore(StorageDialect dialect, TimeProvider clock, ILogger<SigningKeyStore> logger, KeyEncryption? encryption = null)
{
    private readonly KeyEncryption _encryption = encryption ?? KeyEncryption.None;

    public const string Sign = "sign";
    public const string Encrypt = "encrypt";

    /// <summary>A snapshot of the usable keys, newest first.</summary>
    public sealed record KeySet(IReadOnlyList<RsaSecurityKey> Signing, IReadOnlyList<SymmetricSecurityKey> Encryption)
    {
        public SigningCredentials SigningCredentials => new(Signing[0], SecurityAlgorithms.RsaSha256);

        public EncryptingCredentials EncryptingCredentials =>
            new(Encryption[0], SecurityAlgorithms.Aes256KW, SecurityAlgorithms.Aes256CbcHmacSha512);
    }

    private KeySet? _current;
    private long _loadedAt;
    private readonly SemaphoreSlim _reload = new(1, 1);

    /// <summary>Minimum delay between two reloads triggered by an unknown kid (a token forged with random kids must not hammer the database).</summary>
    public static readonly TimeSpan ReloadInterval = TimeSpan.FromSeconds(1);

    public KeySet Current => _current ?? throw new InvalidOperationException("SigningKeyStore.InitializeAsync has not run (it runs at start, after the migrations).");

    /// <summary>Creates generation 1 of each key when the database has none (any node may do it; the first insert wins), then loads.</summary>
    public async Task InitializeAsync(CancellationToken ct)
    {
        await InsertGenerationAsync(Sign, 1, ct);
        await InsertGenerationAsync(Encrypt, 1, ct);
        if (_encryption.On) await EncryptRowsAsync(ct);
        // Without a KEK, an encrypted row stops the start (Unprotect says which KEK it needs) before any "unencrypted" warning.
        else if (await FirstEncryptedRowAsync(ct) is var (purpose, kid, material)) _encryption.Unprotect(purpose, kid, material);
        else logger.LogWarning("The authorization server's private keys are stored unencrypted: set {Setting} so that a copy of the database cannot mint tokens", KeyEncryption.Setting);
        await LoadAsync(ct);
    }

    private async Task<(string Purpose, string Kid, string Material)?> FirstEncryptedRowAsync(CancellationToken ct)
    {
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        await using var select = Sql.Command(connection, null, "SELECT purpose, kid, material FROM auth_keys");
        await using var reader = await select.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            if (KeyEncryption.IsProtected(reader.GetString(2))) return (reader.GetString(0), reader.GetString(1), reader.GetString(2));
        }
        return null;
    }

    /// <summary>
    /// Rows written before a KEK was configured, or with a previous KEK (retired ones too: their material is still a
    /// private key), are encrypted in place with the current KEK. The UPDATE names the value it replaces, so nodes
    /// starting together cannot overwrite each other.
    /// </summary>
    private async Task EncryptRowsAsync(CancellationToken ct)
    {
        var stale = new List<(string Purpose, string Kid, string Material)>();
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        await using (var select = Sql.Command(connection, null, "SELECT purpose, kid, material FROM auth_keys"))
        await using (var reader = await select.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                var row = (reader.GetString(0), reader.GetString(1), reader.GetString(2));
                if (!_encryption.IsCurrent(row.Item3)) stale.Add(row);
            }
        }
        foreach (var (purpose, kid, material) in stale)
        {
            var encrypted = _encryption.Protect(purpose, kid, _encryption.Unprotect(purpose, kid, material));
            await using var update = Sql.Command(connection, null, "UPDATE auth_keys SET material = @encrypted WHERE kid = @kid AND material = @stale")
                .With("@encrypted", encrypted).With("@kid", kid).With("@stale", material);
            await update.ExecuteNonQueryAsync(ct);
        }
        if (stale.Count > 0) logger.LogInformation("Encrypted {Count} keys of auth_keys with KEK {KekId}", stale.Count, _encryption.KekId);
    }

    /// <summary>Adds a new generation of <paramref name="purpose"/> keys; it signs or encrypts from the next reload on.</summary>
    public async Task<string> RotateAsync(string purpose, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            long next;
            await using (var connection = dialect.CreateConnection())
            {
                await connection.OpenAsync(ct);
                await using var cmd = Sql.Command(connection, null, "SELECT COALESCE(MAX(generation), 0) FROM auth_keys WHERE purpose = @purpose").With("@purpose", purpose);
                next = Convert.ToInt64(await cmd.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture) + 1;
            }
            var kid = await InsertGenerationAsync(purpose, next, ct);
            if (kid is not null)
            {
                await LoadAsync(ct);
                logger.LogInformation("Rotated the {Purpose} key: generation {Generation}, kid {Kid}", purpose, next, kid);
                return kid;
            }
            if (attempt > 5) throw new InvalidOperationException("Could not rotate keys: other nodes keep rotating at the same time.");
        }
    }

    /// <summary>Stops a key from validating (after its tokens have expired). The newest key of a purpose cannot be retired.</summary>
    public async Task RetireAsync(string kid, CancellationToken ct)
    {
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync(ct);
            await using var cmd = Sql.Command(connection, null, """
                UPDATE auth_keys SET retired = @now WHERE kid = @kid AND retired IS NULL
                AND generation < (SELECT MAX(k.generation) FROM auth_keys k WHERE k.purpose = auth_keys.purpose)
                """).With("@now", clock.GetUtcNow().ToUnixTimeMilliseconds()).With("@kid", kid);
            if (await cmd.ExecuteNonQueryAsync(ct) == 0)
                throw new InvalidOperationException($"Key '{kid}' is unknown, already retired, or the newest of its purpose.");
        }
        await LoadAsync(ct);
    }

    /// <summary>Reloads when <paramref name="kid"/> is not known yet (another node rotated), at most once per <see cref="ReloadInterval"/>.</summary>
    public async Task<KeySet> CurrentIncludingAsync(string? kid, CancellationToken ct)
    {
        var current = Current;
        if (kid is null || current.Signing.Any(k => k.KeyId == kid) || current.Encryption.Any(k => k.KeyId == kid)) return current;
        if (clock.GetTimestamp() - Interlocked.Read(ref _loadedAt) < ReloadInterval.TotalSeconds * clock.TimestampFrequency) return current;
        await _reload.WaitAsync(ct);
        try
        {
            if (clock.GetTimestamp() - Interlocked.Read(ref _loadedAt) >= ReloadInterval.TotalSeconds * clock.TimestampFrequency)
                await LoadAsync(ct);
        }
        finally
        {
            _reload.Release();
        }
        return Current;
    }

    /// <summary>
    /// How old the loaded keys may get before a request reloads them: bounds how long a key retired (or a generation
    /// added) on another node goes unnoticed here, where no unknown kid triggers a reload (<see cref="ValidatedTokens"/>).
    /// </summary>
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The current keys, reloaded first when older than <see cref="RefreshInterval"/>: by the one request that gets there
    /// first; requests arriving meanwhile go on with the keys already loaded.
    /// </summary>
    public async ValueTask<KeySet> RefreshedAsync(CancellationToken ct)
    {
        if (clock.GetTimestamp() - Interlocked.Read(ref _loadedAt) < RefreshInterval.TotalSeconds * clock.TimestampFrequency) return Current;
        if (!await _reload.WaitAsync(0, ct)) return Current;
        try
        {
            if (clock.GetTimestamp() - Interlocked.Read(ref _loadedAt) >= RefreshInterval.TotalSeconds * clock.TimestampFrequency)
                await LoadAsync(ct);
        }
        finally
        {
            _reload.Release();
        }
        return Current;
    }

    public async Task LoadAsync(CancellationToken ct)
    {
        var signing = new List<RsaSecurityKey>();
        var encryption = new List<SymmetricSecurityKey>();
        await using (var connection = dialect.CreateConnection())
        {
            await connection.OpenAsync(ct);
            await using var cmd = Sql.Command(connection, null, "SELECT purpose, kid, material FROM auth_keys WHERE retired IS NULL ORDER BY generation DESC");
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                var (purpose, kid, stored) = (reader.GetString(0), reader.GetString(1), reader.GetString(2));
                var material = _encryption.Unprotect(purpose, kid, stored);
                if (purpose == Sign)
                {
                    var rsa = RSA.Create();
                    rsa.ImportPkcs8PrivateKey(material, out _);
                    signing.Add(new RsaSecurityKey(rsa) { KeyId = kid });
                }
                else if (purpose == Encrypt)
                {
                    encryption.Add(new SymmetricSecurityKey(material) { KeyId = kid });
                }
            }
        }
        if (signing.Count == 0 || encryption.Count == 0)
            throw new InvalidOperationException("The auth_keys table holds no usable signing or encryption key.");
        _current = new KeySet(signing, encryption);
        Interlocked.Exchange(ref _loadedAt, clock.GetTimestamp());
    }

    /// <summary>Inserts a fresh key as generation <paramref name="generation"/>; null when that generation already exists.</summary>
    private async Task<string?> InsertGenerationAsync(string purpose, long generation, CancellationToken ct)
    {
        var kid = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(16));
        byte[] key;
        if (purpose == Sign)
        {
            using var rsa = RSA.Create(2048);
            key = rsa.ExportPkcs8PrivateKey();
        }
        else
        {
            key = RandomNumberGenerator.GetBytes(32);
        }
        var material = _encryption.Protect(purpose, kid, key);
        await using var connection = dialect.CreateConnection();
        await connection.OpenAsync(ct);
        await using var cmd = Sql.Command(connection, null, """
            INSERT INTO auth_keys (purpose, generation, kid, material, created) VALUES (@purpose, @generation, @kid, @material, @created)
            ON CONFLICT (purpose, generation) DO NOTHING
            """)
            .With("@purpose", purpose).With("@generation", generation).With("@kid", kid).With("@material", material)
            .With("@created", clock.GetUtcNow().ToUnixTimeMilliseconds());
        return await cmd.ExecuteNonQueryAsync(ct) == 1 ? kid : null;
    }
}
