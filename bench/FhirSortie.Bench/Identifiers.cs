namespace FhirSortie.Bench;

/// <summary>National identifiers with valid check keys, so that profile validation (when merged) accepts the bench data.</summary>
public static class Identifiers
{
    /// <summary>INS-NIR of the test namespace: only test identities may be invented.</summary>
    public const string InsSystem = "urn:oid:1.2.250.1.213.1.4.10";
    public const string FinessSystem = "https://finess.esante.gouv.fr";
    public const string RppsSystem = "https://rpps.esante.gouv.fr";
    public const string AtcSystem = "http://www.whocc.no/atc";

    /// <summary>15 digits: the 13 given digits and the key 97 − (n mod 97).</summary>
    public static string Ins(long first13) => $"{first13:D13}{InsKey(first13):D2}";

    public static long InsKey(long first13) => 97 - first13 % 97;

    /// <summary>Appends a Luhn check digit (FINESS, RPPS).</summary>
    public static string WithLuhn(string digits)
    {
        var sum = 0;
        for (var i = 0; i < digits.Length; i++)
        {
            var d = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 0) { d *= 2; if (d > 9) d -= 9; }
            sum += d;
        }
        return digits + (char)('0' + (10 - sum % 10) % 10);
    }
}
