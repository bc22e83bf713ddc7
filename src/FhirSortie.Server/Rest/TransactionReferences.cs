using System.Net;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// Reference resolution inside a batch/transaction: references to another entry's fullUrl (urn:uuid:, urn:oid:, or
/// an absolute URL) become "Type/id" of the entry's final identity, and conditional references
/// ("Patient?identifier=sys|val") become the one resource the search finds.
/// </summary>
public static class TransactionReferences
{
    public static bool IsUrn(string? value) =>
        value is not null && (value.StartsWith("urn:uuid:", StringComparison.Ordinal) || value.StartsWith("urn:oid:", StringComparison.Ordinal));

    /// <summary>"Patient?identifier=a|b" → ("Patient", "identifier=a|b"); null when it is not a conditional reference.</summary>
    public static (string Type, string Query)? Conditional(string reference)
    {
        var question = reference.IndexOf('?');
        if (question <= 0) return null;
        var type = reference[..question];
        if (type.Contains('/') || type.Contains(':') || !ModelInfo.IsKnownResource(type)) return null;
        return (type, reference[(question + 1)..]);
    }

    /// <summary>
    /// Rewrites, in <paramref name="resource"/> and everything it holds (contained resources, extensions...),
    /// every Reference.reference, Attachment.url and narrative link that names a bundle entry, and resolves
    /// conditional references with <paramref name="resolveConditional"/>.
    /// An urn:uuid reference that names no entry is a 400: storing it would leave a dangling reference.
    /// </summary>
    public static async System.Threading.Tasks.Task RewriteAsync(Resource resource, IReadOnlyDictionary<string, string> identities,
        Func<string, string, Task<string>> resolveConditional, string where)
    {
        // Without the primitive values, which are most of the nodes: a primitive holds no Reference, Attachment or Narrative
        // unless it has extensions. Collected first: the rewrite changes the POCOs while it goes through the list.
        foreach (var node in ElementTree.DescendantsAndSelf(resource, MayHoldReferences))
        {
            switch (node)
            {
                case ResourceReference { Reference: { } target } reference:
                    if (identities.TryGetValue(target, out var local))
                    {
                        reference.Reference = local;
                    }
                    else if (target.StartsWith("urn:uuid:", StringComparison.Ordinal))
                    {
                        throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotFound,
                            $"The reference '{target}' names no entry of this Bundle (no entry has it as fullUrl).", where);
                    }
                    else if (Conditional(target) is { } conditional)
                    {
                        reference.Reference = await resolveConditional(conditional.Type, conditional.Query);
                    }
                    break;
                case Attachment { Url: { } url } attachment when identities.TryGetValue(url, out var attached):
                    attachment.Url = attached;
                    break;
                case Narrative { Div: { } div } narrative:
                    foreach (var (fullUrl, identity) in identities)
                    {
                        if (IsUrn(fullUrl) && div.Contains(fullUrl, StringComparison.Ordinal))
                            div = div.Replace($"\"{fullUrl}\"", $"\"{identity}\"", StringComparison.Ordinal);
                    }
                    narrative.Div = div;
                    break;
            }
        }
    }

    private static bool MayHoldReferences(Base element) => element is not PrimitiveType primitive || primitive.Extension.Count > 0;
}
