using System.Collections;
using System.Net;
using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Introspection;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Rest;

/// <summary>
/// FHIRPath Patch (http://hl7.org/fhir/R4/fhirpatch.html): a Parameters resource whose "operation" parameters
/// add, insert, delete, replace or move elements. The SDK only builds such Parameters (PatchParameterExtensions);
/// this applies them: the SDK's FHIRPath engine selects the targets (POCO instances), and the model's class
/// mappings tell which property of which parent holds each target, so the POCOs are changed in place.
/// </summary>
public sealed class FhirPathPatch
{
    private sealed record Operation(int Index, string Type, string Path, string? Name, DataType? Value,
        List<Parameters.ParameterComponent> ValueParts, int? InsertAt, int? Source, int? Destination);

    private readonly List<Operation> _operations;

    private FhirPathPatch(List<Operation> operations) => _operations = operations;

    private const int MaxPathLength = 1000;

    public static FhirPathPatch Parse(Parameters parameters)
    {
        var operations = new List<Operation>();
        for (var i = 0; i < parameters.Parameter.Count; i++)
        {
            var p = parameters.Parameter[i];
            var where = $"Parameters.parameter[{i}]";
            if (p.Name != "operation") throw FhirException.BadRequest($"FHIRPath Patch parameter {i} is named '{p.Name}'; only 'operation' is allowed.", where);
            string? Text(string name) => p.Part.FirstOrDefault(x => x.Name == name)?.Value?.ToString();
            int? Number(string name) => p.Part.FirstOrDefault(x => x.Name == name)?.Value switch
            {
                null => null,
                Integer n => n.Value,
                _ => throw FhirException.BadRequest($"FHIRPath Patch operation {i}: '{name}' must be a valueInteger.", where),
            };
            var type = Text("type") ?? throw FhirException.BadRequest($"FHIRPath Patch operation {i} has no type.", where);
            var path = Text("path") ?? throw FhirException.BadRequest($"FHIRPath Patch operation {i} has no path.", where);
            // The SDK's FHIRPath parser recurses once per nested parenthesis: 100,000 of them would overflow the stack and
            // end the process. A patch path names an element; a few hundred characters are plenty.
            if (path.Length > MaxPathLength)
                throw FhirException.BadRequest($"FHIRPath Patch operation {i}: the path is longer than {MaxPathLength} characters.", where);
            var valuePart = p.Part.FirstOrDefault(x => x.Name == "value");
            var op = new Operation(i, type, path, Text("name"), valuePart?.Value, valuePart?.Part ?? [], Number("index"), Number("source"), Number("destination"));
            var hasValue = op.Value is not null || op.ValueParts.Count > 0;
            var problem = type switch
            {
                "add" when op.Name is null || !hasValue => "add needs a name and a value",
                "insert" when op.InsertAt is null || !hasValue => "insert needs an index and a value",
                "replace" when !hasValue => "replace needs a value",
                "move" when op.Source is null || op.Destination is null => "move needs a source and a destination",
                "add" or "insert" or "replace" or "move" or "delete" => null,
                _ => $"the type '{type}' is not one of add, insert, delete, replace, move",
            };
            if (problem is not null) throw FhirException.BadRequest($"FHIRPath Patch operation {i}: {problem}.", where);
            operations.Add(op);
        }
        return new FhirPathPatch(operations);
    }

    /// <summary>Applies the operations in order to <paramref name="resource"/> (changed in place) and checks the result strictly.</summary>
    public Resource Apply(Resource resource)
    {
        foreach (var op in _operations)
        {
            switch (op.Type)
            {
                case "add":
                {
                    var container = Single(resource, op, "add to");
                    var property = Property(container, op.Name!, op);
                    var value = ValueFor(property, op);
                    if (property.IsCollection) List(container, property).Add(value);
                    else property.NativeProperty!.SetValue(container, value);
                    break;
                }
                case "insert":
                {
                    var (container, property, items) = ListAt(resource, op);
                    if (op.InsertAt < 0 || op.InsertAt > items.Count) throw Unprocessable(op, $"index {op.InsertAt} is outside the list (0..{items.Count})");
                    items.Insert(op.InsertAt!.Value, ValueFor(property, op));
                    break;
                }
                case "delete":
                {
                    var targets = Select(resource, op);
                    if (targets.Count == 0) break; // deleting nothing is not an error (the spec says so)
                    if (targets.Count > 1) throw Unprocessable(op, $"the path selects {targets.Count} elements; delete takes one");
                    var (parent, property, index) = ParentOf(resource, targets[0], op);
                    if (index is { } i) List(parent, property).RemoveAt(i);
                    else property.NativeProperty!.SetValue(parent, null);
                    break;
                }
                case "replace":
                {
                    var target = Single(resource, op, "replace");
                    var (parent, property, index) = ParentOf(resource, target, op);
                    var value = ValueFor(property, op);
                    if (index is { } i) List(parent, property)[i] = value;
                    else property.NativeProperty!.SetValue(parent, value);
                    break;
                }
                case "move":
                {
                    var (_, _, items) = ListAt(resource, op);
                    if (op.Source < 0 || op.Source >= items.Count || op.Destination < 0 || op.Destination >= items.Count)
                        throw Unprocessable(op, $"source {op.Source} or destination {op.Destination} is outside the list (0..{items.Count - 1})");
                    var moved = items[op.Source!.Value];
                    items.RemoveAt(op.Source.Value);
                    items.Insert(op.Destination!.Value, moved);
                    break;
                }
            }
        }
        try
        {
            // Strict round trip: a patch must not leave what a create or update would refuse.
            return FhirFormat.Parse(FhirFormat.Serialize(resource, WireFormat.Json, pretty: false), WireFormat.Json);
        }
        catch (FhirException e)
        {
            throw new FhirException(HttpStatusCode.UnprocessableEntity, e.Outcome);
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentException or FormatException)
        {
            throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.Processing,
                $"The FHIRPath Patch leaves an invalid resource: {e.Message}");
        }
    }

    private static List<Base> Select(Resource resource, Operation op)
    {
        try
        {
            return resource.Select(op.Path, new FhirEvaluationContext()).OfType<Base>().ToList();
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException or InvalidCastException)
        {
            throw FhirException.BadRequest($"FHIRPath Patch operation {op.Index}: the path '{op.Path}' is not a valid FHIRPath expression: {e.Message}",
                $"Parameters.parameter[{op.Index}]");
        }
    }

    private static Base Single(Resource resource, Operation op, string verb)
    {
        var targets = Select(resource, op);
        return targets.Count == 1 ? targets[0] : throw Unprocessable(op, $"the path selects {targets.Count} elements; {verb} needs exactly one");
    }

    /// <summary>The list a path names (insert, move): from its first item's parent, or, for an empty list, from the path's last step.</summary>
    private static (Base Container, PropertyMapping Property, IList Items) ListAt(Resource resource, Operation op)
    {
        var targets = Select(resource, op);
        if (targets.Count > 0)
        {
            var (parent, property, index) = ParentOf(resource, targets[0], op);
            if (index is null) throw Unprocessable(op, "the path does not select a list");
            return (parent, property, List(parent, property));
        }
        var dot = op.Path.LastIndexOf('.');
        if (dot > 0 && op.Path[(dot + 1)..].All(char.IsAsciiLetterOrDigit))
        {
            var containers = Select(resource, op with { Path = op.Path[..dot] });
            if (containers.Count == 1)
            {
                var property = Property(containers[0], op.Path[(dot + 1)..], op);
                if (property.IsCollection) return (containers[0], property, List(containers[0], property));
            }
        }
        throw Unprocessable(op, "the path selects no list");
    }

    private static IList List(Base container, PropertyMapping property) =>
        property.NativeProperty!.GetValue(container) as IList ?? throw new InvalidOperationException($"{property.Name} is not a list.");

    private static PropertyMapping Property(Base container, string name, Operation op)
    {
        var mapping = ModelInfo.ModelInspector.FindOrImportClassMapping(container.GetType());
        return mapping?.FindMappedElementByName(name) is { } property && property.NativeProperty is not null
            ? property
            : throw Unprocessable(op, $"{container.TypeName} has no element '{name}'");
    }

    /// <summary>Finds which property (and list position) of which parent holds <paramref name="target"/>, by identity.</summary>
    private static (Base Parent, PropertyMapping Property, int? Index) ParentOf(Resource resource, Base target, Operation op)
    {
        var stack = new Stack<Base>();
        stack.Push(resource);
        while (stack.Count > 0)
        {
            var node = stack.Pop();
            var mapping = ModelInfo.ModelInspector.FindOrImportClassMapping(node.GetType());
            foreach (var (name, value) in node.EnumerateElements())
            {
                switch (value)
                {
                    case Base child:
                        if (ReferenceEquals(child, target)) return (node, MappedProperty(mapping, name, op), null);
                        stack.Push(child);
                        break;
                    case IList list:
                        for (var i = 0; i < list.Count; i++)
                        {
                            if (list[i] is not Base item) continue;
                            if (ReferenceEquals(item, target)) return (node, MappedProperty(mapping, name, op), i);
                            stack.Push(item);
                        }
                        break;
                }
            }
        }
        throw Unprocessable(op, "the path selects a value that is not an element of the resource (a computed value)");
    }

    private static PropertyMapping MappedProperty(ClassMapping? mapping, string name, Operation op) =>
        mapping?.FindMappedElementByName(name) is { NativeProperty: not null } property
            ? property
            : throw Unprocessable(op, $"the element '{name}' cannot be changed");

    /// <summary>The operation's value as the property's type: a primitive converted by its literal, or a complex value built from parts.</summary>
    private static Base ValueFor(PropertyMapping property, Operation op)
    {
        var target = property.IsCollection ? property.ImplementingType : property.NativeProperty!.PropertyType;
        if (op.Value is null) return Build(target, op.ValueParts, op);
        return Convert(op.Value, target, op);
    }

    private static Base Convert(DataType value, Type target, Operation op)
    {
        if (target.IsInstanceOfType(value)) return value;
        if (value is PrimitiveType primitive && typeof(PrimitiveType).IsAssignableFrom(target) && !target.IsAbstract)
        {
            var converted = (PrimitiveType)Activator.CreateInstance(target)!;
            try
            {
                converted.JsonValue = primitive.JsonValue;
                return converted;
            }
            catch (Exception e) when (e is InvalidCastException or ArgumentException or FormatException)
            {
                // fall through to the error below
            }
        }
        throw Unprocessable(op, $"a {value.TypeName} value does not fit an element of type {target.Name}");
    }

    private static Base Build(Type type, List<Parameters.ParameterComponent> parts, Operation op)
    {
        if (type.IsAbstract || Activator.CreateInstance(type) is not Base instance)
            throw Unprocessable(op, $"a value given as parts needs a concrete type, not {type.Name}");
        foreach (var part in parts)
        {
            var property = Property(instance, part.Name ?? "", op);
            var target = property.IsCollection ? property.ImplementingType : property.NativeProperty!.PropertyType;
            var value = part.Value is { } v ? Convert(v, target, op) : Build(target, part.Part, op);
            if (property.IsCollection) List(instance, property).Add(value);
            else property.NativeProperty!.SetValue(instance, value);
        }
        return instance;
    }

    private static FhirException Unprocessable(Operation op, string problem) =>
        FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.Processing,
            $"FHIRPath Patch operation {op.Index} ({op.Type} at '{op.Path}') cannot apply: {problem}.", $"Parameters.parameter[{op.Index}]");
}
