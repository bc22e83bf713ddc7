using System.Net;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// $validate: POST [base]/[type]/$validate and POST [base]/[type]/[id]/$validate, with the resource as the body
/// (profile and mode in the query) or a Parameters body (resource, profile, mode = create | update | delete).
/// Always 200 with an OperationOutcome when the request itself is well formed: the resource's problems,
/// including a body that does not parse as FHIR, are the answer, not a failure of the request.
/// </summary>
public static class Validate
{
    public static async Task Handle(HttpContext context)
    {
        var type = FhirRequest.Type(context);
        var id = context.Request.RouteValues.TryGetValue("id", out var raw) && raw is string s ? FhirRequest.RequireId(s) : null;
        Security.AccessPoint.Of(context).Require(Security.Interaction.Validate, type);
        var options = context.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<FhirSortieOptions>>().Value;
        var queryMode = context.Request.Query["mode"].FirstOrDefault();
        if (queryMode is not (null or "create" or "update" or "delete")) throw UnknownMode(queryMode);
        var body = await FhirFormat.ReadBodyAsync(context.Request, options.MaxRequestBodyBytes, context.RequestAborted);
        var format = FhirFormat.RequestFormat(context.Request);
        Resource parsed;
        try
        {
            parsed = FhirFormat.Parse(body, format);
        }
        catch (FhirException e) when (e.Status == HttpStatusCode.BadRequest)
        {
            await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, e.Outcome));
            return;
        }

        var (resource, profile, mode) = Arguments(context.Request, type, parsed);
        var enforcement = context.RequestServices.GetRequiredService<ProfileEnforcement>();
        var outcome = await ExecuteAsync(enforcement, FhirRequest.Store(context), type, id, resource, profile, mode, context.RequestAborted);
        await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, outcome));
    }

    public static async Task<OperationOutcome> ExecuteAsync(ProfileEnforcement enforcement, Storage.ResourceStore store, string type, string? id,
        Resource? resource, string? profile, string mode, CancellationToken ct)
    {
        var outcome = new OperationOutcome();
        if (mode == "delete")
        {
            if (id is null) throw FhirException.BadRequest("mode=delete needs an instance: POST [base]/[type]/[id]/$validate.", "mode");
            Rest.Read.Found(await store.ReadAsync(type, id, ct), type, id);
            return Outcomes.Information($"No rule of this server prevents deleting {type}/{id}.");
        }
        if (resource is null) throw FhirException.BadRequest("No resource to validate: send it as the body or as the 'resource' parameter.");
        if (resource.TypeName != type)
        {
            outcome.Issue.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Invalid,
                $"The resource is a {resource.TypeName}, not a {type}.", resource.TypeName));
            return outcome;
        }
        if (mode == "update")
        {
            if (resource.Id is null)
                outcome.Issue.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Required, "An update needs the resource id.", $"{type}.id"));
            else if (id is not null && resource.Id != id)
                outcome.Issue.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Invalid, $"The resource id '{resource.Id}' does not match the URL id '{id}'.", $"{type}.id"));
        }
        var profiles = enforcement.ProfilesFor(resource).ToList();
        if (profile is not null) profiles.Add(profile);
        var run = enforcement.Validator.Validate(resource, profiles);
        outcome.Issue.AddRange(run.Issues);
        if (outcome.Issue.Count == 0)
        {
            var against = profiles.Count == 0 ? "the R4 base rules" : string.Join(", ", profiles.Distinct());
            outcome.Issue.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Information, OperationOutcome.IssueType.Informational, $"No issues detected (validated against {against})."));
        }
        return outcome;
    }

    private static (Resource? Resource, string? Profile, string Mode) Arguments(HttpRequest request, string type, Resource body)
    {
        string? profile = request.Query["profile"].FirstOrDefault();
        string? mode = request.Query["mode"].FirstOrDefault();
        var resource = body;
        if (body is Parameters parameters && (type != "Parameters" || parameters.Parameter.Any(p => p.Name == "resource")))
        {
            resource = parameters.Parameter.FirstOrDefault(p => p.Name == "resource")?.Resource;
            profile = parameters.Parameter.FirstOrDefault(p => p.Name == "profile")?.Value?.ToString() ?? profile;
            mode = parameters.Parameter.FirstOrDefault(p => p.Name == "mode")?.Value?.ToString() ?? mode;
        }
        mode ??= "create";
        if (mode is not ("create" or "update" or "delete")) throw UnknownMode(mode);
        return (resource, profile, mode);
    }

    private static FhirException UnknownMode(string mode) =>
        FhirException.BadRequest($"mode '{mode}' is not supported; use create, update or delete.", "mode");
}
