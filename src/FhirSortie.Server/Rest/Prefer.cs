namespace FhirSortie.Server.Rest;

public enum PreferReturn { Representation, Minimal, OperationOutcome }

/// <summary>The Prefer header: return=minimal|representation|OperationOutcome and handling=strict|lenient.</summary>
public sealed record Prefer(PreferReturn Return, bool StrictHandling)
{
    public static Prefer From(HttpRequest request)
    {
        var ret = PreferReturn.Representation;
        var strict = false;
        foreach (var header in request.Headers["Prefer"])
        {
            foreach (var part in (header ?? "").Split([',', ';'], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
                if (kv.Length != 2) continue;
                var value = kv[1].Trim('"');
                switch (kv[0].ToLowerInvariant())
                {
                    case "return":
                        ret = value.ToLowerInvariant() switch
                        {
                            "minimal" => PreferReturn.Minimal,
                            "operationoutcome" => PreferReturn.OperationOutcome,
                            _ => PreferReturn.Representation,
                        };
                        break;
                    case "handling":
                        strict = value.Equals("strict", StringComparison.OrdinalIgnoreCase);
                        break;
                }
            }
        }
        return new Prefer(ret, strict);
    }
}
