namespace FhirSortie.Server.Security;

/// <summary>FINESS numbers: 9 characters whose last digit is a Luhn key over the first eight.</summary>
public static class Finess
{
    public const string System = "https://finess.esante.gouv.fr";

    public static bool IsValid(string? finess)
    {
        if (finess is not { Length: 9 } || !finess.All(char.IsAsciiDigit)) return false;
        var sum = 0;
        for (var i = 0; i < 9; i++)
        {
            // From the right, every second digit is doubled; the key itself (rightmost) is not.
            var digit = finess[8 - i] - '0';
            if (i % 2 == 1)
            {
                digit *= 2;
                if (digit > 9) digit -= 9;
            }
            sum += digit;
        }
        return sum % 10 == 0;
    }
}
