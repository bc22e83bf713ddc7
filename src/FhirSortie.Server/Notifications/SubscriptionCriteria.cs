using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.WebUtilities;

namespace FhirSortie.Server.Notifications;

/// <summary>
/// The criteria of an R4 Subscription: a search URL relative to the base ("Task?owner=Organization/123"). It is
/// matched by running it as a search restricted to the written resource, so it accepts what searches accept, minus
/// the result parameters (_sort, _count, _include...), which select nothing.
/// </summary>
public sealed record SubscriptionCriteria(string Type, IReadOnlyList<KeyValuePair<string, string>> Query)
{
    public static SubscriptionCriteria Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw FhirException.BadRequest("Subscription.criteria is required (a search such as Task?owner=Organization/123).", "Subscription.criteria");
        var question = text.IndexOf('?', StringComparison.Ordinal);
        var type = (question < 0 ? text : text[..question]).Trim();
        if (type.Contains('/', StringComparison.Ordinal)) throw FhirException.BadRequest($"Subscription.criteria must be relative to this server's base: '{type}' is not a resource type.", "Subscription.criteria");
        if (!ModelInfo.IsKnownResource(type) || type is "Resource" or "DomainResource")
            throw FhirException.BadRequest($"Subscription.criteria: '{type}' is not a resource type.", "Subscription.criteria");
        var query = new List<KeyValuePair<string, string>>();
        if (question >= 0)
        {
            foreach (var (name, values) in QueryHelpers.ParseQuery(text[question..]))
            {
                if (SearchControl.IsControl(name) || name == "_type")
                    throw FhirException.BadRequest($"Subscription.criteria: '{name}' shapes a search result and selects nothing; it is not allowed in criteria.", "Subscription.criteria");
                foreach (var value in values) query.Add(new(name, value ?? ""));
            }
        }
        return new SubscriptionCriteria(type, query);
    }

    /// <summary>Throws a 400 OperationOutcome when a parameter is unknown for the type or a value cannot be parsed.</summary>
    public void Validate(SearchEngine engine) => engine.AppendWhere(new SqlQuery(), "r", Type, Query, AccessFilter.None, strict: true);

    /// <summary>The criteria restricted to one resource: what matching runs.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> For(string id) => [.. Query, new("_id", id)];
}
