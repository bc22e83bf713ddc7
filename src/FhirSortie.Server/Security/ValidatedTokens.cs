using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;

namespace FhirSortie.Server.Security;

/// <summary>
/// Our own access tokens already validated by this node, so that a client sending the same token again skips the
/// RS256 check, the JWT parsing and the claims building (about a third of a read's gateway CPU, see
/// bench/results/2026-11-23-read-path.md). Per node and safe to lose: a miss only means a full validation.
/// <list type="bullet">
/// <item>Keyed by the SHA-256 of the whole token: a tampered or different token is another key, so it is validated in
/// full (and refused). The token itself is not kept in memory.</item>
/// <item>An entry lives until the token's own expiry (plus the validator's clock skew, so it never outlives what the
/// validator would accept), and is bound to the issuer and audience it was validated for.</item>
/// <item>Signing keys: a hit is honoured only while the token's kid is still a non-retired key of
/// <see cref="SigningKeyStore"/> on this node. A retirement on this node is effective at once; one on another node
/// when this node reloads its keys, at most <see cref="SigningKeyStore.RefreshInterval"/> later.</item>
/// <item>Bounded: at <see cref="MaxEntries"/>, expired entries are swept; if it is still full, nothing more is added.</item>
/// </list>
/// </summary>
public sealed class ValidatedTokens(TimeProvider clock)
{
    public const int MaxEntries = 10_000;

    private readonly ConcurrentDictionary<TokenHash, Entry> _entries = new();
    private int _sweeping;

    /// <summary>
    /// What a validation established. Every hit gets its own copy of <see cref="Identity"/> (a request may add claims to
    /// its own) and the same immutable <see cref="Caller"/>, so its parsed scopes (ScopeSet.Of) are reused too.
    /// </summary>
    private sealed record Entry(ClaimsIdentity Identity, Caller Caller, string Kid, string Issuer, string Audience, long ExpiresMs);

    /// <summary>An already validated token: a fresh identity and the caller it makes.</summary>
    public sealed record Hit(ClaimsIdentity Identity, Caller Caller);

    public int Count => _entries.Count;

    /// <summary>The identity of an already validated token, or null (unknown, expired, other issuer/audience, or its key is no longer valid).</summary>
    public Hit? Find(string token, string issuer, string audience, SigningKeyStore.KeySet keys)
    {
        var hash = TokenHash.Of(token);
        if (!_entries.TryGetValue(hash, out var entry)) return null;
        if (clock.GetUtcNow().ToUnixTimeMilliseconds() >= entry.ExpiresMs)
        {
            _entries.TryRemove(new KeyValuePair<TokenHash, Entry>(hash, entry));
            return null;
        }
        if (!string.Equals(entry.Issuer, issuer, StringComparison.Ordinal) || !string.Equals(entry.Audience, audience, StringComparison.Ordinal)) return null;
        if (!HasKey(keys, entry.Kid))
        {
            _entries.TryRemove(new KeyValuePair<TokenHash, Entry>(hash, entry));
            return null;
        }
        return new Hit(entry.Identity.Clone(), entry.Caller);
    }

    /// <summary>Remembers a token the validator accepted, signed by <paramref name="kid"/> and expiring at <paramref name="expires"/>.</summary>
    public void Add(string token, string issuer, string audience, string kid, DateTimeOffset expires, ClaimsIdentity identity, Caller caller)
    {
        var expiresMs = (expires + FhirBearerHandler.ClockSkew).ToUnixTimeMilliseconds();
        if (clock.GetUtcNow().ToUnixTimeMilliseconds() >= expiresMs) return;
        if (_entries.Count >= MaxEntries && !Sweep()) return;
        _entries[TokenHash.Of(token)] = new Entry(identity.Clone(), caller, kid, issuer, audience, expiresMs);
    }

    /// <summary>Removes expired entries (one thread at a time); true when there is room afterwards.</summary>
    private bool Sweep()
    {
        if (Interlocked.Exchange(ref _sweeping, 1) == 1) return false;
        try
        {
            var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
            foreach (var pair in _entries)
            {
                if (now >= pair.Value.ExpiresMs) _entries.TryRemove(pair);
            }
            return _entries.Count < MaxEntries;
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
        }
    }

    private static bool HasKey(SigningKeyStore.KeySet keys, string kid)
    {
        foreach (var key in keys.Signing)
        {
            if (string.Equals(key.KeyId, kid, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    private readonly record struct TokenHash(ulong A, ulong B, ulong C, ulong D)
    {
        public static TokenHash Of(string token)
        {
            var length = Encoding.UTF8.GetMaxByteCount(token.Length);
            byte[]? rented = null;
            var buffer = length <= 4096 ? stackalloc byte[length] : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(length));
            try
            {
                var written = Encoding.UTF8.GetBytes(token, buffer);
                Span<byte> hash = stackalloc byte[32];
                SHA256.HashData(buffer[..written], hash);
                var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(hash);
                return new TokenHash(words[0], words[1], words[2], words[3]);
            }
            finally
            {
                if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
}
