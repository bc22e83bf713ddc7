using FhirSortie.Server.Profiles;

namespace FhirSortie.Tests.Profiles;

public sealed class IdentifierKeysTests
{
    [Theory]
    [InlineData("180027512345676")]
    [InlineData("285016938812370")]
    public void Nir_with_the_right_key_passes(string nir) => Assert.Null(IdentifierKeys.CheckNir(nir));

    [Theory]
    [InlineData("180027512345677")]
    [InlineData("280027512345676")]
    public void Nir_with_a_wrong_key_fails(string nir) => Assert.Contains("control key", IdentifierKeys.CheckNir(nir));

    [Fact]
    public void Corsican_nir_counts_2A_as_19()
    {
        // 1 80 02 2A 123 456 → key computed on 1800219123456.
        var key = 97 - (int)(1800219123456L % 97);
        Assert.Null(IdentifierKeys.CheckNir($"180022A123456{key:00}"));
        Assert.NotNull(IdentifierKeys.CheckNir($"180022A123456{(key + 1) % 100:00}"));
    }

    [Theory]
    [InlineData("18002751234567")]
    [InlineData("1800275123456X6")]
    public void Malformed_nir_fails(string nir) => Assert.NotNull(IdentifierKeys.CheckNir(nir));

    [Theory]
    [InlineData(IdentifierKeyKind.Finess, "750012346", true)]
    [InlineData(IdentifierKeyKind.Finess, "750012347", false)]
    [InlineData(IdentifierKeyKind.Finess, "75001234", false)]
    [InlineData(IdentifierKeyKind.Rpps, "10001234565", true)]
    [InlineData(IdentifierKeyKind.Rpps, "10001234564", false)]
    [InlineData(IdentifierKeyKind.IdNatPs, "810001234565", true)]
    [InlineData(IdentifierKeyKind.IdNatPs, "810001234564", false)]
    [InlineData(IdentifierKeyKind.IdNatSt, "1750012346", true)]
    [InlineData(IdentifierKeyKind.IdNatSt, "1750012345", false)]
    public void Luhn_keys_of_finess_and_rpps(IdentifierKeyKind kind, string value, bool valid) =>
        Assert.Equal(valid, IdentifierKeys.Check(kind, value) is null);

    [Fact]
    public void Idnatst_other_than_finess_is_not_key_checked() =>
        Assert.Null(IdentifierKeys.Check(IdentifierKeyKind.IdNatSt, "3123456789"));
}
