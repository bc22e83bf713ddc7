namespace FhirSortie.Server.Consents;

/// <summary>
/// The purpose a request is made for, from its headers: <c>X-Purpose-Of-Use</c> (a v3 ActReason code, TREAT when
/// absent) and, for break-the-glass, <c>X-Purpose-Of-Use: ETREAT</c> with <c>X-Break-Glass-Reason</c> (free text,
/// kept in the audit trail and the break_glass table, never in logs).
/// </summary>
public sealed record PurposeOfUse(string Code, string? BreakGlassReason)
{
    public const string Header = "X-Purpose-Of-Use";
    public const string ReasonHeader = "X-Break-Glass-Reason";
    /// <summary>Response header flagging an answer given under break-the-glass (value: the grant's expiry, ISO 8601).</summary>
    public const string BreakGlassResponseHeader = "X-Break-Glass";

    /// <summary>The purposes a client may state (v3 ActReason): treatment, emergency treatment, healthcare operations, coverage, payment, public health.</summary>
    public static readonly IReadOnlySet<string> Known = new HashSet<string>(StringComparer.Ordinal) { "TREAT", "ETREAT", "HOPERAT", "COVERAGE", "HPAYMT", "PUBHLTH" };

    public static readonly PurposeOfUse Treatment = new(AccessRules.Treatment, null);

    public bool IsBreakGlass => Code == AccessRules.EmergencyTreatment;

    /// <summary>The request's purpose, or null when the header names an unknown purpose (answer 400).</summary>
    public static PurposeOfUse? From(HttpRequest request)
    {
        var code = request.Headers[Header].ToString().Trim();
        if (code.Length == 0) return Treatment;
        if (!Known.Contains(code)) return null;
        var reason = request.Headers[ReasonHeader].ToString().Trim();
        return new PurposeOfUse(code, reason.Length == 0 ? null : reason);
    }
}
