using System.Net;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;
using Microsoft.AspNetCore.Routing.Patterns;
using Endpoint = Microsoft.AspNetCore.Http.Endpoint;
using Interaction = Hl7.Fhir.Model.CapabilityStatement.TypeRestfulInteraction;
using SystemInteraction = Hl7.Fhir.Model.CapabilityStatement.SystemRestfulInteraction;

namespace FhirSortie.Server.Rest;

/// <summary>
/// capabilities: GET [base]/metadata. The statement is derived from the routing table itself (the endpoints mapped
/// under <see cref="FhirBase.Path"/>), so it cannot claim an interaction that has no route or miss one that has.
/// A route is recognised by its HTTP method and the shape of its pattern (see <see cref="Classify"/>); a new
/// interaction only needs its route in FhirRoutes.cs. What a pattern cannot tell is attached to the route as
/// endpoint metadata: <see cref="PatchFormats"/> on PATCH routes, <see cref="OperationDefinition"/> on $operation
/// routes whose definition is not the core one, <see cref="BundleInteractions"/> on POST [base].
/// </summary>
public static class Capabilities
{
    /// <summary>
    /// The statement is built once per configuration and base URL (<see cref="CapabilityDocuments"/>), with ETag and
    /// Last-Modified. <c>mode</c> (R4 capabilities): full and normative answer the whole statement (nothing of it is
    /// trial-use only); terminology is a 400, so is _summary=count (a search's count), since this server publishes no TerminologyCapabilities (its CodeSystems,
    /// ValueSets and ConceptMaps are readable resources, and $translate is in the statement).
    /// </summary>
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var mode = context.Request.Query["mode"].ToString();
        if (mode == "terminology")
        {
            throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
                "mode=terminology: this server publishes no TerminologyCapabilities. Its CodeSystems, ValueSets and ConceptMaps are served as resources (CodeSystem?url=...), and ConceptMap/$translate is listed in [base]/metadata.", "mode");
        }
        if (mode is not ("" or "full" or "normative"))
            throw FhirException.BadRequest($"mode '{mode}' is not one of full, normative, terminology.", "mode");
        // R4 search.html: _summary=count is the count of a search's matches; the statement is no search, so no count.
        if (FhirFormat.Summary(context.Request) == Hl7.Fhir.Rest.SummaryType.Count)
            throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.NotSupported,
                "_summary=count applies to searches; [base]/metadata answers one CapabilityStatement (use _summary=true, text or data).", "_summary");
        await context.RequestServices.GetRequiredService<CapabilityDocuments>().For(context).WriteAsync(context);
    }

    /// <summary>Media types a PATCH route accepts, e.g. application/json-patch+json (becomes patchFormat).</summary>
    public sealed record PatchFormats(params string[] MediaTypes);

    /// <summary>Canonical URL of the OperationDefinition an $operation route implements, when not the core one.</summary>
    public sealed record OperationDefinition(string Url);

    /// <summary>Which of batch/transaction POST [base] serves; without it both are claimed.</summary>
    public sealed record BundleInteractions(bool Batch, bool Transaction);

    public enum Level { System, AnyType, OneType }

    /// <summary>One FHIR interaction (or "$operation") served by one route; ResourceType is set for <see cref="Level.OneType"/>.</summary>
    public sealed record Served(Level Level, string? ResourceType, string Code, Endpoint Endpoint)
    {
        public bool Serves(string type) => Level == Level.AnyType || (Level == Level.OneType && ResourceType == type);
    }

    // Interaction codes of the CapabilityStatement (R4 restful-interaction), and our markers for conditional variants.
    public const string ConditionalCreate = "conditional-create";
    public const string ConditionalUpdate = "conditional-update";
    public const string ConditionalDelete = "conditional-delete";
    public const string ConditionalPatch = "conditional-patch";
    public const string OperationPrefix = "$";

    /// <summary>
    /// What one route serves, from its method and pattern relative to the FHIR base: "{type}" (or a literal
    /// resource type such as "Patient") then "{id}", "_history", "_search", "$operation".
    /// </summary>
    public static IEnumerable<Served> Classify(Endpoint endpoint)
    {
        if (endpoint is not RouteEndpoint route) yield break;
        var segments = Relative(route.RoutePattern);
        if (segments is null) yield break;
        var methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [];
        // HEAD mirrors GET on every route (FhirRoutes): it is no interaction of its own.
        foreach (var method in methods.Where(m => !HttpMethods.IsHead(m)))
        {
            foreach (var served in Classify(method, segments, endpoint)) yield return served;
        }
    }

    private static IEnumerable<Served> Classify(string method, string[] s, Endpoint endpoint)
    {
        // System level: [base], [base]/_search, [base]/_history, [base]/$op
        if (s.Length == 0)
        {
            if (method == "GET") yield return new(Level.System, null, "search-system", endpoint);
            if (method == "POST")
            {
                var bundle = endpoint.Metadata.GetMetadata<BundleInteractions>() ?? new BundleInteractions(true, true);
                if (bundle.Batch) yield return new(Level.System, null, "batch", endpoint);
                if (bundle.Transaction) yield return new(Level.System, null, "transaction", endpoint);
            }
            yield break;
        }
        if (s is ["_search"] && method == "POST") { yield return new(Level.System, null, "search-system", endpoint); yield break; }
        if (s is ["_history"] && method == "GET") { yield return new(Level.System, null, "history-system", endpoint); yield break; }
        if (s is [var systemOp] && systemOp.StartsWith(OperationPrefix, StringComparison.Ordinal))
        {
            yield return new(Level.System, null, systemOp, endpoint);
            yield break;
        }

        string? type;
        if (s[0] == Any) type = null;
        else if (ModelInfo.IsKnownResource(s[0]) && s[0] is not ("Resource" or "DomainResource")) type = s[0];
        else yield break;

        var rest = s[1..];
        var code = (method, rest) switch
        {
            ("GET", []) => "search-type",
            ("POST", ["_search"]) => "search-type",
            ("POST", []) => "create",
            ("PUT", []) => ConditionalUpdate,
            ("DELETE", []) => ConditionalDelete,
            ("PATCH", []) => ConditionalPatch,
            ("GET", ["_history"]) => "history-type",
            ("GET", [Any]) => "read",
            ("PUT", [Any]) => "update",
            ("PATCH", [Any]) => "patch",
            ("DELETE", [Any]) => "delete",
            ("GET", [Any, "_history"]) => "history-instance",
            ("GET", [Any, "_history", Any]) => "vread",
            (_, [var op]) when op.StartsWith(OperationPrefix, StringComparison.Ordinal) => op,
            (_, [Any, var op]) when op.StartsWith(OperationPrefix, StringComparison.Ordinal) => op,
            _ => null,
        };
        if (code is null) yield break;
        var level = type is null ? Level.AnyType : Level.OneType;
        yield return new(level, type, code, endpoint);
        // Create.cs always honours If-None-Exist.
        if (code == "create") yield return new(level, type, ConditionalCreate, endpoint);
    }

    private const string Any = "{}";

    /// <summary>Segments after the FHIR base, each route parameter written "{}"; null outside the base.</summary>
    private static string[]? Relative(RoutePattern pattern)
    {
        var segments = pattern.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
        {
            RoutePatternLiteralPart literal => literal.Content,
            RoutePatternParameterPart => Any, // {type}, {id}, {vid}: whatever the route names them
            RoutePatternSeparatorPart separator => separator.Content,
            _ => "",
        }))).ToArray();
        var basePath = FhirBase.Path.Trim('/').Split('/');
        if (segments.Length < basePath.Length || !segments.Take(basePath.Length).SequenceEqual(basePath, StringComparer.Ordinal)) return null;
        return segments[basePath.Length..];
    }

    public static CapabilityStatement Build(string baseUrl, SearchParameters parameters, IEnumerable<Endpoint> endpoints)
    {
        var served = endpoints.SelectMany(Classify).ToList();
        var statement = new CapabilityStatement
        {
            Url = baseUrl + "/metadata",
            Name = "FhirSortie",
            Title = "FhirSortie gateway",
            Status = PublicationStatus.Active,
            // The statement describes this running instance; its date is when it was generated.
            Date = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
            Kind = CapabilityStatementKind.Instance,
            FhirVersion = FHIRVersion.N4_0_1,
            Format = [FhirFormat.JsonContentType, FhirFormat.XmlContentType, "json", "xml"],
            PatchFormat = served.Where(s => s.Code is "patch" or ConditionalPatch)
                .SelectMany(s => s.Endpoint.Metadata.GetMetadata<PatchFormats>()?.MediaTypes ?? [])
                .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList(),
            Software = new CapabilityStatement.SoftwareComponent
            {
                Name = "FhirSortie",
                Version = typeof(Capabilities).Assembly.GetName().Version?.ToString(),
            },
            Implementation = new CapabilityStatement.ImplementationComponent { Description = "FhirSortie gateway", Url = baseUrl },
        };
        if (served.Any(s => s.Code == "$export")) statement.Instantiates = [Export.ExportKickoff.BulkDataCapabilities]; // Export/

        var rest = new CapabilityStatement.RestComponent { Mode = CapabilityStatement.RestfulCapabilityMode.Server };

        foreach (var type in ModelInfo.SupportedResources.Order(StringComparer.Ordinal))
        {
            var forType = served.Where(s => s.Serves(type)).ToList();
            var codes = forType.Select(s => s.Code).ToHashSet(StringComparer.Ordinal);
            if (type == Audit.AuditStore.Type) codes.RemoveWhere(c => !Audit.AuditEndpoints.Interactions.Contains(c)); // the audit store: no writes
            if (codes.Count == 0) continue;
            var component = new CapabilityStatement.ResourceComponent
            {
                Type = type,
                Profile = "http://hl7.org/fhir/StructureDefinition/" + type,
                Versioning = CapabilityStatement.ResourceVersionPolicy.VersionedUpdate,
                ReadHistory = codes.Contains("vread"),
                // Update.cs creates the resource when the id is new (client-assigned ids).
                UpdateCreate = codes.Contains("update"),
                ConditionalCreate = codes.Contains(ConditionalCreate),
                ConditionalUpdate = codes.Contains(ConditionalUpdate),
                // Delete.cs answers 412 when the criteria match several resources.
                ConditionalDelete = codes.Contains(ConditionalDelete)
                    ? CapabilityStatement.ConditionalDeleteStatus.Single
                    : CapabilityStatement.ConditionalDeleteStatus.NotSupported,
                // Read.IsNotModified: If-None-Match (a version or *) and If-Modified-Since, on every read (also AuditEvent).
                ConditionalRead = codes.Contains("read") ? CapabilityStatement.ConditionalReadStatus.FullSupport : null,
            };
            foreach (var code in codes.Order(StringComparer.Ordinal))
            {
                if (EnumUtility.ParseLiteral<Interaction>(code) is { } interaction)
                    component.Interaction.Add(new CapabilityStatement.ResourceInteractionComponent { Code = interaction });
            }
            if (codes.Contains("search-type"))
            {
                foreach (var p in parameters.For(type).Where(p => type != Audit.AuditStore.Type || Audit.AuditSearch.Served.ContainsKey(p.Code ?? ""))
                             .OrderBy(p => p.Code ?? p.Name, StringComparer.Ordinal))
                {
                    component.SearchParam.Add(new CapabilityStatement.SearchParamComponent
                    {
                        Name = p.Code ?? p.Name,
                        Definition = p.Url,
                        Type = p.Type,
                        Documentation = p.Description?.Value is { Length: > 0 } d ? new Markdown(d) : null,
                    });
                }
            }
            foreach (var op in forType.Where(s => s.Code.StartsWith(OperationPrefix, StringComparison.Ordinal))
                         .DistinctBy(s => s.Code).OrderBy(s => s.Code, StringComparer.Ordinal))
            {
                component.Operation.Add(Operation(op));
            }
            rest.Resource.Add(component);
        }

        foreach (var code in served.Where(s => s.Level == Level.System && !s.Code.StartsWith(OperationPrefix, StringComparison.Ordinal)).Select(s => s.Code).Distinct().Order(StringComparer.Ordinal))
        {
            if (EnumUtility.ParseLiteral<SystemInteraction>(code) is { } interaction)
                rest.Interaction.Add(new CapabilityStatement.SystemInteractionComponent { Code = interaction });
        }
        foreach (var op in served.Where(s => s.Level == Level.System && s.Code.StartsWith(OperationPrefix, StringComparison.Ordinal))
                     .DistinctBy(s => s.Code).OrderBy(s => s.Code, StringComparer.Ordinal))
        {
            rest.Operation.Add(Operation(op));
        }
        statement.Rest.Add(rest);
        return statement;
    }

    /// <summary>The core OperationDefinitions are named [Type]-[name] (Patient-everything) or Resource-[name] ($validate).</summary>
    private static CapabilityStatement.OperationComponent Operation(Served op)
    {
        var name = op.Code[OperationPrefix.Length..];
        var url = op.Endpoint.Metadata.GetMetadata<OperationDefinition>()?.Url
                  ?? $"http://hl7.org/fhir/OperationDefinition/{op.ResourceType ?? "Resource"}-{name}";
        return new CapabilityStatement.OperationComponent { Name = name, Definition = url };
    }
}
