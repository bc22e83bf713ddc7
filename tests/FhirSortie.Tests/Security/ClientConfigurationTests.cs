using FhirSortie.Server.Security;
using Microsoft.Extensions.Configuration;

namespace FhirSortie.Tests.Security;

/// <summary>Client configuration is checked at start; the demo FINESS numbers carry valid Luhn keys.</summary>
public sealed class ClientConfigurationTests
{
    [Fact]
    public void Demo_finess_numbers_have_valid_luhn_keys()
    {
        foreach (var client in DemoClients.All) Assert.True(Finess.IsValid(client.OrganizationFiness), client.ClientId);
        Assert.Equal(["750000010", "750000028", "930000039", "750000044", "750000051", "750000069", "750000077", "750000093"], DemoClients.All.Select(c => c.OrganizationFiness));
    }

    [Theory]
    [InlineData("750000011")]
    [InlineData("75000001")]
    [InlineData("7500000A0")]
    public void Finess_with_a_bad_key_or_shape_is_refused(string finess) => Assert.False(Finess.IsValid(finess));

    private static ClientRegistry Load(params (string Key, string Value)[] settings) =>
        ClientRegistry.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build(), demoMode: false);

    [Theory]
    [InlineData("ActorKind", "Pirate", "ActorKind 'Pirate'")]
    [InlineData("OrganizationFiness", "750000011", "Luhn")]
    [InlineData("AllowedScopes", "", "AllowedScopes is empty")]
    [InlineData("Jwks", "{not json", "Jwks is not a JSON Web Key Set")]
    [InlineData("JwksUri", "ftp://x/jwks", "JwksUri")]
    public void Bad_client_stops_the_start_with_a_message_naming_client_and_field(string field, string value, string expected)
    {
        var settings = new Dictionary<string, string>
        {
            ["ClientId"] = "broken", ["Secret"] = "long-enough-secret", ["ActorKind"] = "Csapa", ["OrganizationFiness"] = "750000028", ["AllowedScopes"] = "system/*.rs",
        };
        settings[field] = value;
        var e = Assert.Throws<InvalidOperationException>(() => Load([.. settings.Select(p => ($"FhirSortie:Clients:0:{p.Key}", p.Value))]));
        Assert.Contains("'broken'", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Clients_come_from_configuration_and_the_clients_file()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, """
                [{ "ClientId": "from-file", "ActorKind": "Act", "OrganizationFiness": "750000044", "AllowedScopes": "system/*.rs",
                   "Jwks": { "keys": [ { "kty": "EC", "crv": "P-384", "kid": "k1",
                     "x": "iOjF5bXk8JGMYAplO9g3ZLJOQeqDP1iXx6QKS1gOMW3xtTVfYNTyn2VQdQqIVlr_", "y": "Ud-jm3Z4ZcZcYrgW36S6xQh2jhx4-rDukRVRNbUhXs4lV4YGnyR9aOyVZt5ZeA5p" } ] } }]
                """);
            var registry = Load(("FhirSortie:Clients:0:ClientId", "from-config"), ("FhirSortie:Clients:0:Secret", "from-config-secret"),
                ("FhirSortie:Clients:0:ActorKind", "Usmp"), ("FhirSortie:Clients:0:AllowedScopes", "system/*.cruds"), ("FhirSortie:ClientsFile", file));
            Assert.Equal(ActorKind.Usmp, registry.Find("from-config")!.Kind);
            var fromFile = registry.Find("from-file")!;
            Assert.Equal(ActorKind.Act, fromFile.Kind);
            Assert.Single(fromFile.Jwks!.Keys);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Same_client_twice_is_refused()
    {
        var e = Assert.Throws<InvalidOperationException>(() => ClientRegistry.FromConfiguration(
            new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["FhirSortie:Clients:0:ClientId"] = "usmp-demo", ["FhirSortie:Clients:0:Secret"] = "whatever-secret",
                ["FhirSortie:Clients:0:ActorKind"] = "Usmp", ["FhirSortie:Clients:0:AllowedScopes"] = "system/*.rs",
            }).Build(), demoMode: true));
        Assert.Contains("usmp-demo", e.Message, StringComparison.Ordinal);
    }
}
