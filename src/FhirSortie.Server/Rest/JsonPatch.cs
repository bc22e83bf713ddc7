using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// RFC 6902 JSON Patch (add, remove, replace, move, copy, test) applied to a JSON document.
/// Errors: a malformed patch document is a 400; an operation that cannot apply (missing path, bad index) a 422;
/// a failed "test" a 409 (RFC 5789: the resource is not in the state the client expected).
/// </summary>
public sealed class JsonPatch
{
    private readonly List<Operation> _operations;

    private JsonPatch(List<Operation> operations) => _operations = operations;

    private sealed record Operation(int Index, string Op, string[] Path, string[]? From, JsonNode? Value, bool HasValue);

    public int Count => _operations.Count;

    public static JsonPatch Parse(ReadOnlySpan<byte> document)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(document);
        }
        catch (JsonException e)
        {
            throw FhirException.BadRequest($"The JSON Patch document is not valid JSON: {e.Message}");
        }
        return Parse(root);
    }

    public static JsonPatch Parse(JsonNode? root)
    {
        try
        {
            return Operations(root);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // JsonNode reads members lazily: a member named twice (ArgumentException) or a lone UTF-16 surrogate in a
            // string (InvalidOperationException) only fails here, not in JsonNode.Parse.
            throw FhirException.BadRequest($"The JSON Patch document cannot be read: {e.Message}");
        }
    }

    private static JsonPatch Operations(JsonNode? root)
    {
        if (root is not JsonArray array) throw FhirException.BadRequest("A JSON Patch document is a JSON array of operations.");
        var operations = new List<Operation>();
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject op) throw Malformed(i, "is not a JSON object");
            var name = Text(op, "op", i) ?? throw Malformed(i, "has no \"op\"");
            var path = Pointer(Text(op, "path", i) ?? throw Malformed(i, "has no \"path\""), i);
            var hasValue = op.ContainsKey("value");
            string[]? from = null;
            switch (name)
            {
                case "add" or "replace" or "test":
                    if (!hasValue) throw Malformed(i, $"({name}) has no \"value\"");
                    break;
                case "move" or "copy":
                    from = Pointer(Text(op, "from", i) ?? throw Malformed(i, $"({name}) has no \"from\""), i);
                    break;
                case "remove":
                    break;
                default:
                    throw Malformed(i, $"has an unknown op '{name}' (add, remove, replace, move, copy, test)");
            }
            operations.Add(new Operation(i, name, path, from, hasValue ? op["value"]?.DeepClone() : null, hasValue));
        }
        return new JsonPatch(operations);
    }

    /// <summary>Applies every operation in order to a copy of <paramref name="document"/>; all or nothing.</summary>
    public JsonNode? Apply(JsonNode? document)
    {
        var root = new JsonObject { ["$"] = document?.DeepClone() }; // a holder, so the whole document can be replaced
        long copied = 0;
        foreach (var op in _operations)
        {
            var path = Rooted(op.Path);
            switch (op.Op)
            {
                case "add":
                    Add(root, path, op.Value?.DeepClone(), op);
                    break;
                case "remove":
                    Remove(root, path, op);
                    break;
                case "replace":
                    Remove(root, path, op);
                    Add(root, path, op.Value?.DeepClone(), op);
                    break;
                case "move":
                    var from = Rooted(op.From!);
                    if (path.Length > from.Length && path.Take(from.Length).SequenceEqual(from))
                        throw Unprocessable(op, "cannot move a value into one of its own children");
                    var moved = Get(root, from, op);
                    Remove(root, from, op);
                    Add(root, path, moved, op);
                    break;
                case "copy":
                    var copy = Get(root, Rooted(op.From!), op)?.DeepClone();
                    // Each copy of the whole document into itself doubles it: 40 operations would ask for 2^40 times its size.
                    copied += copy?.ToJsonString().Length ?? 0;
                    if (copied > MaxCopiedCharacters) throw Unprocessable(op, $"copies more than {MaxCopiedCharacters} characters in all");
                    Add(root, path, copy, op);
                    break;
                case "test":
                    var actual = Get(root, path, op);
                    if (!JsonNode.DeepEquals(actual, op.Value))
                    {
                        throw FhirException.Error(HttpStatusCode.Conflict, OperationOutcome.IssueType.Conflict,
                            $"JSON Patch operation {op.Index} (test) failed: the value at '{Show(op.Path)}' is not the expected one.", $"/{op.Index}");
                    }
                    break;
            }
        }
        return root["$"];
    }

    /// <summary>What the copy operations of one patch may copy in all: far above any resource of this gateway.</summary>
    private const int MaxCopiedCharacters = 8 * 1024 * 1024;

    private static string[] Rooted(string[] path) => ["$", .. path];

    private static JsonNode? Get(JsonObject root, string[] path, Operation op)
    {
        JsonNode? node = root;
        foreach (var token in path)
        {
            node = node switch
            {
                JsonObject o when o.TryGetPropertyValue(token, out var child) => child,
                JsonArray a when ArrayIndex(token, a.Count - 1) is { } i => a[i],
                _ => throw Unprocessable(op, $"the path '{Show(path[1..])}' does not exist"),
            };
        }
        return node;
    }

    private static void Add(JsonObject root, string[] path, JsonNode? value, Operation op)
    {
        var parent = Get(root, path[..^1], op);
        var last = path[^1];
        switch (parent)
        {
            case JsonObject o:
                o[last] = value;
                break;
            case JsonArray a:
                if (last == "-") a.Add(value);
                else if (ArrayIndex(last, a.Count) is { } i) a.Insert(i, value);
                else throw Unprocessable(op, $"'{last}' is not an index of the array at '{Show(op.Path[..^1])}'");
                break;
            default:
                throw Unprocessable(op, $"the parent of '{Show(op.Path)}' is not an object or array");
        }
    }

    private static void Remove(JsonObject root, string[] path, Operation op)
    {
        var parent = Get(root, path[..^1], op);
        var last = path[^1];
        switch (parent)
        {
            case JsonObject o when o.ContainsKey(last):
                o.Remove(last);
                break;
            case JsonArray a when ArrayIndex(last, a.Count - 1) is { } i:
                a.RemoveAt(i);
                break;
            default:
                throw Unprocessable(op, $"the path '{Show(op.Path)}' does not exist");
        }
    }

    /// <summary>An array index per RFC 6901: digits without leading zeros, at most <paramref name="max"/>.</summary>
    private static int? ArrayIndex(string token, int max)
    {
        if (token.Length == 0 || (token.Length > 1 && token[0] == '0') || !token.All(char.IsAsciiDigit)) return null;
        return int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i <= max ? i : null;
    }

    private static string[] Pointer(string pointer, int index)
    {
        if (pointer.Length == 0) return [];
        if (pointer[0] != '/') throw Malformed(index, $"has a path '{pointer}' that is not a JSON Pointer (it must start with '/')");
        return pointer[1..].Split('/').Select(t => t.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToArray();
    }

    private static string? Text(JsonObject op, string name, int index) =>
        op[name] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            _ => throw Malformed(index, $"has a \"{name}\" that is not a string"),
        };

    private static string Show(string[] path) => path.Length == 0 ? "" : "/" + string.Join('/', path.Select(t => t.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal)));

    private static FhirException Malformed(int index, string problem) =>
        FhirException.BadRequest($"JSON Patch operation {index} {problem}.", $"/{index}");

    private static FhirException Unprocessable(Operation op, string problem) =>
        FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.Processing,
            $"JSON Patch operation {op.Index} ({op.Op}) cannot apply: {problem}.", $"/{op.Index}");
}
