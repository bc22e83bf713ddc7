using System.Globalization;

namespace FhirSortie.Server.Demo;

/// <summary>
/// Fictitious national identifiers with valid keys, computed rather than typed so a typo cannot make the demo data
/// fail the gateway's own key checks: INS on the DEMO namespace (never a real person's NIR), RPPS and FINESS with
/// their Luhn keys.
/// </summary>
public static class DemoIdentifiers
{
    /// <summary>INS-NIR of the demo namespace (issue 4: test …1.4.10, demo …1.4.11).</summary>
    public const string InsDemo = "urn:oid:1.2.250.1.213.1.4.11";
    public const string Rpps = "https://rpps.esante.gouv.fr";
    public const string Finess = Security.Finess.System;
    /// <summary>Our local identifier namespace for demo business identifiers (conditional creates match on them).</summary>
    public const string Local = "https://fhirsortie.example.fr/demo";

    /// <summary>A 15-digit NIR: the 13 digits, then the key 97 − (the 13 digits mod 97), two digits.</summary>
    public static string Nir(string thirteenDigits)
    {
        if (thirteenDigits.Length != 13 || !thirteenDigits.All(char.IsAsciiDigit)) throw new ArgumentException("13 digits expected.", nameof(thirteenDigits));
        var key = 97 - (long.Parse(thirteenDigits, CultureInfo.InvariantCulture) % 97);
        return thirteenDigits + key.ToString("00", CultureInfo.InvariantCulture);
    }

    /// <summary>The digits followed by their Luhn key (FINESS: 8 + 1, RPPS: 10 + 1): the one digit the gateway's own check accepts.</summary>
    public static string WithLuhnKey(string digits) =>
        digits + Enumerable.Range(0, 10).Select(key => key.ToString(CultureInfo.InvariantCulture)).First(key => Profiles.IdentifierKeys.Luhn(digits + key));
}
