namespace FhirSortie.Server.Search;

/// <summary>Result parameters that shape the answer rather than select resources.</summary>
public static class SearchControl
{
    private static readonly HashSet<string> Names =
    [
        "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained", "_containedType",
        "_format", "_pretty", "_getpages", "_getpagesoffset", "_offset",
    ];

    public static bool IsControl(string name)
    {
        var colon = name.IndexOf(':');
        return Names.Contains(colon < 0 ? name : name[..colon]);
    }
}
