using System.Net;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Profiles;

/// <summary>
/// Profile checks on every write (create, update, patch, transaction entries all go through
/// WriteSession.SaveAsync): a resource is validated against the profiles it claims in meta.profile and against
/// the profiles configured as mandatory for its type (FhirSortie:Profiles:Required:&lt;Type&gt; = url[,url]).
/// A resource that claims nothing, of a type with nothing mandatory, is checked against R4's base reference target
/// types only. Failure is a 422.
/// </summary>
public sealed class ProfileEnforcement(ProfileValidator validator, IReadOnlyDictionary<string, IReadOnlyList<string>> required)
{
    public const string RequiredSection = "FhirSortie:Profiles:Required";

    public ProfileValidator Validator => validator;

    public static ProfileEnforcement FromConfiguration(ProfileValidator validator, IConfiguration configuration)
    {
        var required = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var entry in configuration.GetSection(RequiredSection).GetChildren())
        {
            var urls = (entry.Value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (urls.Length == 0) continue;
            foreach (var url in urls)
            {
                var profile = validator.Registry.Find(url) ?? throw new InvalidOperationException($"{RequiredSection}:{entry.Key} names {url}, which is not in profiles/");
                if (profile.Type != entry.Key) throw new InvalidOperationException($"{RequiredSection}:{entry.Key} names {url}, a profile of {profile.Type}");
            }
            required[entry.Key] = urls;
        }
        return new ProfileEnforcement(validator, required);
    }

    /// <summary>What a resource must conform to: its claims plus what is mandatory for its type.</summary>
    public IReadOnlyList<string> ProfilesFor(Resource resource)
    {
        var claimed = resource.Meta?.Profile.OfType<string>() ?? [];
        var mandatory = required.GetValueOrDefault(resource.TypeName) ?? [];
        if (mandatory.Count == 0) return claimed.ToList();
        return claimed.Concat(mandatory).Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Throws a 422 with the issues when the resource does not conform. A resource that claims no profile (and has none
    /// mandatory) is still held to R4's base reference target types (<see cref="ProfileValidator.ValidateBaseReferences"/>),
    /// a walk of the few elements that hold restricted references: the issue names the element and the allowed types.
    /// </summary>
    public void Check(Resource resource)
    {
        var profiles = ProfilesFor(resource);
        var run = profiles.Count == 0 ? validator.ValidateBaseReferences(resource) : validator.Validate(resource, profiles);
        if (!run.HasErrors) return;
        var outcome = new OperationOutcome();
        outcome.Issue.AddRange(run.Issues);
        throw new FhirException(HttpStatusCode.UnprocessableEntity, outcome);
    }
}
