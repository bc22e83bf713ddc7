namespace FhirSortie.Server.Profiles;

public enum IdentifierKeyKind { Nir, Finess, Rpps, IdNatPs, IdNatSt }

/// <summary>
/// Control keys of the French national identifiers. A profile asks for a check by putting the extension
/// <see cref="CheckExtension"/> (valueCode nir | finess | rpps | idnatps | idnatst) on a constraint of an
/// Identifier element; the constraint's FHIRPath checks the format, this class checks the key, which FHIRPath
/// cannot do (a 13-digit modulo and Luhn). Messages never repeat the identifier itself.
/// </summary>
public static class IdentifierKeys
{
    public const string CheckExtension = "https://fhirsortie.fr/fhir/StructureDefinition/identifier-key-check";

    public static IdentifierKeyKind? Parse(string? code) => code switch
    {
        "nir" => IdentifierKeyKind.Nir,
        "finess" => IdentifierKeyKind.Finess,
        "rpps" => IdentifierKeyKind.Rpps,
        "idnatps" => IdentifierKeyKind.IdNatPs,
        "idnatst" => IdentifierKeyKind.IdNatSt,
        _ => null,
    };

    /// <summary>Null when the key is right (or the value is of a kind whose key we do not check), else the problem.</summary>
    public static string? Check(IdentifierKeyKind kind, string value) => kind switch
    {
        IdentifierKeyKind.Nir => CheckNir(value),
        IdentifierKeyKind.Finess => CheckLuhn(value, 9, "FINESS"),
        IdentifierKeyKind.Rpps => CheckLuhn(value, 11, "RPPS"),
        // idNatPs = "8" + RPPS for RPPS-registered professionals; other prefixes (ADELI...) carry no Luhn key.
        IdentifierKeyKind.IdNatPs => value.StartsWith('8') ? CheckLuhn(value[1..], 11, "RPPS (in idNatPs)") : null,
        // idNatSt = "1" + FINESS for establishments; other prefixes (SIRET, RPPS rang...) are not checked here.
        IdentifierKeyKind.IdNatSt => value.StartsWith('1') ? CheckLuhn(value[1..], 9, "FINESS (in idNatSt)") : null,
        _ => null,
    };

    /// <summary>NIR (INS-NIR): 13 digits then a 2-digit key = 97 − (number mod 97); Corsica 2A/2B count as 19/18.</summary>
    public static string? CheckNir(string value)
    {
        if (value.Length != 15) return "an INS-NIR has 15 characters (13 then a 2-digit key)";
        var body = value[..13].ToUpperInvariant();
        if (body[5..7] == "2A") body = body[..5] + "19" + body[7..];
        else if (body[5..7] == "2B") body = body[..5] + "18" + body[7..];
        if (!body.All(char.IsAsciiDigit) || !value[13..].All(char.IsAsciiDigit)) return "an INS-NIR is made of digits (2A/2B allowed for Corsica)";
        var number = long.Parse(body, System.Globalization.CultureInfo.InvariantCulture);
        var expected = 97 - (int)(number % 97);
        var key = int.Parse(value[13..], System.Globalization.CultureInfo.InvariantCulture);
        return key == expected ? null : "the INS-NIR control key (last 2 digits) does not match its first 13 characters";
    }

    public static string? CheckLuhn(string value, int length, string what)
    {
        if (value.Length != length || !value.All(char.IsAsciiDigit)) return $"a {what} number has {length} digits";
        return Luhn(value) ? null : $"the {what} Luhn control key (last digit) is wrong";
    }

    public static bool Luhn(string digits)
    {
        var sum = 0;
        for (var i = 0; i < digits.Length; i++)
        {
            var d = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 1)
            {
                d *= 2;
                if (d > 9) d -= 9;
            }
            sum += d;
        }
        return sum % 10 == 0;
    }
}
