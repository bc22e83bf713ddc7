using FhirSortie.Server.Security;

namespace FhirSortie.Tests.Security;

/// <summary>The hash that `hash-password` prints is one the login page accepts for that password, and only that one.</summary>
public sealed class HashPasswordCommandTests
{
    [Fact]
    public async Task The_printed_hash_verifies_the_password_as_the_login_page_does()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await HashPasswordCommand.RunAsync(new StringReader("un mot de passe assez long\nnext line ignored\n"), output, error);
        Assert.True(exit == 0, error.ToString());
        var hash = output.ToString().Trim();

        var practitioners = new Practitioners([new PractitionerUser { UserName = "dr-lyon", PasswordHash = hash, FhirUser = "Practitioner/dr-lyon" }], demoMode: false);
        Assert.NotNull(practitioners.Verify("dr-lyon", "un mot de passe assez long"));
        Assert.Null(practitioners.Verify("dr-lyon", "un mot de passe assez long\n"));
        Assert.Null(practitioners.Verify("dr-lyon", "un autre mot de passe"));
    }

    [Fact]
    public async Task A_short_or_missing_password_prints_no_hash()
    {
        foreach (var input in new[] { "", "court\n" })
        {
            using var output = new StringWriter();
            using var error = new StringWriter();
            Assert.Equal(2, await HashPasswordCommand.RunAsync(new StringReader(input), output, error));
            Assert.Equal("", output.ToString());
        }
    }
}
