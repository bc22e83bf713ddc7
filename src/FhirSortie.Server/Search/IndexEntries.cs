namespace FhirSortie.Server.Search;

/// <summary>The search index rows of one resource version, one list per kind of index table.</summary>
public sealed class IndexEntries
{
    public List<StringEntry> Strings { get; } = [];
    public List<TokenEntry> Tokens { get; } = [];
    public List<ReferenceEntry> References { get; } = [];
    public List<DateEntry> Dates { get; } = [];
    public List<NumberEntry> Numbers { get; } = [];
    public List<QuantityEntry> Quantities { get; } = [];
    public List<UriEntry> Uris { get; } = [];
    public List<CompositeEntry> Composites { get; } = [];
    /// <summary>Compartments the resource belongs to ("Patient", id).</summary>
    public List<CompartmentEntry> Compartments { get; } = [];
}

/// <param name="Value">Normalised: lower case, accents removed (for the default starts-with and :contains).</param>
/// <param name="Exact">As written (for :exact).</param>
public sealed record StringEntry(string Param, string Value, string Exact);

/// <param name="Text">Normalised display text (for :text).</param>
public sealed record TokenEntry(string Param, string? System, string? Code, string? Text);

/// <param name="Url">Absolute or canonical URL when the reference is not to a resource of this server.</param>
public sealed record ReferenceEntry(string Param, string? TargetType, string? TargetId, string? Url, string? Version);

/// <summary>An instant range in Unix milliseconds, both ends inclusive.</summary>
public sealed record DateEntry(string Param, long Low, long High);

public sealed record NumberEntry(string Param, double Low, double High);

public sealed record QuantityEntry(string Param, string? System, string? Code, double Low, double High);

public sealed record UriEntry(string Param, string Value);

public sealed record CompartmentEntry(string CompartmentType, string CompartmentId);

/// <summary>One tuple of a composite parameter (e.g. Observation code-value-quantity): a token and a second value, matched together.</summary>
/// <param name="Code2">Second component: a token code, a quantity unit code, or a normalised string.</param>
/// <param name="Low2">Second component's range (quantity, number, or date in Unix milliseconds); 0 for tokens and strings.</param>
public sealed record CompositeEntry(string Param, string? System1, string? Code1, string? System2, string? Code2, double Low2, double High2);
