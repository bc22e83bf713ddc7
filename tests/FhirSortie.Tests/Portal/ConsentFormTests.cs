using System.Net;
using FhirSortie.Server.Consents;
using FhirSortie.Server.Portal;
using Hl7.Fhir.Model;

namespace FhirSortie.Tests.Portal;

/// <summary>
/// The consent form's pure pieces: the SharingConsent it makes is read by the gateway's grant rules as the person said
/// (recipients, classes, masked labels, V only when named, period, purpose), read back in French for the sheet, and the
/// gateway's refusals land next to their field; the signed sheet's type comes from its first bytes.
/// </summary>
public sealed class ConsentFormTests
{
    private static readonly ConsentCategories.Choice Choice = new(
        [("Organization/bastide", "CSAPA Bastide (demo)")], ["identite", "traitements"], ["PSY", "HIV"], VeryRestricted: false,
        new DateOnly(2026, 12, 7), new DateOnly(2027, 6, 7));

    private static IReadOnlyList<GrantRow> Rows(Consent consent)
    {
        consent.Id = "c1";
        return ConsentGrants.FromConsent(consent, r => r.Reference == "Organization/bastide" ? "930000039" : null);
    }

    [Fact]
    public void The_form_consent_permits_the_chosen_classes_to_the_recipient_and_masks_the_chosen_labels()
    {
        var consent = ConsentCategories.Build(Choice, "p1", "Organization/tilleuls", DateTimeOffset.Parse("2026-12-07T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal([ConsentCategories.Profile], consent.Meta!.Profile);
        var rows = Rows(consent);
        var permits = rows.Where(r => r.Effect == GrantRow.Permit).ToList();
        Assert.All(permits, r => Assert.Equal(("930000039", (string?)null, "TREAT"), (r.ActorFiness!, r.Label, r.Purpose!)));
        Assert.Equal(["MedicationAdministration", "MedicationDispense", "MedicationRequest", "MedicationStatement", "Patient"], permits.Select(r => r.Class!).Order(StringComparer.Ordinal));
        var denies = rows.Where(r => r.Effect == GrantRow.Deny).ToList();
        Assert.Equal(["HIV", "PSY"], denies.Select(r => r.Label!).Distinct().Order(StringComparer.Ordinal));
        Assert.All(denies, r => Assert.Equal("930000039", r.ActorFiness));
        // The period holds the whole last day.
        var permit = permits[0];
        Assert.True(permit.ActiveAt(DateTimeOffset.Parse("2027-06-07T21:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds()));
        Assert.False(permit.ActiveAt(DateTimeOffset.Parse("2026-12-06T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds()));
        // Very restricted information is shared only when ticked (a permit naming V).
        Assert.DoesNotContain(rows, r => r.Label == SecurityLabels.VeryRestricted);
        var withV = Rows(ConsentCategories.Build(Choice with { VeryRestricted = true }, "p1", "Organization/tilleuls", DateTimeOffset.UnixEpoch));
        Assert.Contains(withV, r => r.Effect == GrantRow.Permit && r.Label == SecurityLabels.VeryRestricted && r.Class == "MedicationRequest");
    }

    [Fact]
    public void A_recorded_consent_reads_back_in_french()
    {
        var reading = ConsentCategories.Read(ConsentCategories.Build(Choice, "p1", "Organization/tilleuls", DateTimeOffset.UnixEpoch));
        Assert.Equal(["CSAPA Bastide (demo)"], reading.Recipients);
        Assert.Equal(["Identité et coordonnées", "Traitements de sortie"], reading.Categories.Select(c => c.Label));
        Assert.Equal(["Santé mentale", "VIH"], reading.Masked.Select(m => m.Label));
        Assert.Equal(["Addictions", "Violences sexuelles ou conjugales"], reading.Shared.Select(m => m.Label));
        Assert.Equal(("2026-12-07", "2027-06-07"), (reading.Start, reading.End));
    }

    [Fact]
    public void Gateway_refusals_go_next_to_their_field_in_french()
    {
        var outcome = new OperationOutcome
        {
            Issue =
            [
                new OperationOutcome.IssueComponent { Severity = OperationOutcome.IssueSeverity.Error, Code = OperationOutcome.IssueType.Invariant, Diagnostics = "The sharing period has a start date", Expression = ["Consent.provision.period"] },
                new OperationOutcome.IssueComponent { Severity = OperationOutcome.IssueSeverity.Error, Code = OperationOutcome.IssueType.Value, Diagnostics = "unknown reference", Expression = ["Consent.provision.actor[0].reference"] },
                new OperationOutcome.IssueComponent { Severity = OperationOutcome.IssueSeverity.Warning, Code = OperationOutcome.IssueType.Informational, Diagnostics = "ignored", Expression = ["Consent.provision.class"] },
            ],
        };
        var (fields, problem) = ConsentView.GatewayErrors(new ApiAnswer(HttpStatusCode.UnprocessableEntity, outcome, null));
        Assert.StartsWith("La passerelle refuse cette période", fields["periode"], StringComparison.Ordinal);
        Assert.EndsWith("Détail : The sharing period has a start date", fields["periode"], StringComparison.Ordinal);
        Assert.StartsWith("La passerelle refuse ces destinataires", fields["destinataires"], StringComparison.Ordinal);
        Assert.False(fields.ContainsKey("categories"));
        Assert.StartsWith("La passerelle a refusé ce consentement", problem, StringComparison.Ordinal);

        var (none, forbidden) = ConsentView.GatewayErrors(new ApiAnswer(HttpStatusCode.Forbidden, new OperationOutcome(), null));
        Assert.Empty(none);
        Assert.Contains("votre structure n'est pas habilitée", forbidden, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("%PDF-1.7\n", "application/pdf")]
    [InlineData("\u00FF\u00D8\u00FF\u00E0", "image/jpeg")]
    [InlineData("\u0089PNG\r\n\u001A\n", "image/png")]
    [InlineData("<html>", null)]
    public void The_signed_sheet_is_recognised_by_its_first_bytes(string start, string? type) =>
        Assert.Equal(type, ConsentSheet.ContentTypeOf(start.Select(c => (byte)c).ToArray()));

    [Theory]
    [InlineData("2026-12-07", 2026, 12, 7)]
    [InlineData("07/12/2026", 2026, 12, 7)]
    public void Dates_are_read_as_a_date_field_or_typed_in_french(string text, int year, int month, int day) =>
        Assert.Equal(new DateOnly(year, month, day), ConsentView.ParseDay(text));
}
