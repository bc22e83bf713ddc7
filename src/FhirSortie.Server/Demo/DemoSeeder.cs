using System.Net;
using System.Text;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Server.Demo;

/// <summary>What one seeding did: per package, how many entries were created (201) and how many already existed (200).</summary>
public sealed record DemoSeedReport(IReadOnlyList<(string Package, int Created, int Existing)> Packages, int Withdrawn);

/// <summary>
/// Posts the demo packages as transactions through the gateway's own FHIR API, as a client would: whatever the
/// client is (the usmp-demo client with a real token from the seed-demo command, a test client in-process), the
/// packages go through authentication, scopes, profiles, normalisation, labelling, consent grants, Provenance and
/// the audit trail like any exit package. Nothing is written to the database directly.
/// </summary>
public sealed class DemoSeeder(HttpClient fhir)
{
    private static readonly BaseFhirJsonSerializer Serializer = new(ModelInfo.ModelInspector);

    public async Task<DemoSeedReport> SeedAsync(DateTimeOffset now, CancellationToken ct)
    {
        var results = new List<(string, int, int)>();
        var withdrawn = 0;
        foreach (var package in DemoPackages.All(now))
        {
            var response = await SendAsync(HttpMethod.Post, "", package.Transaction, ct);
            var bundle = (Bundle)FhirFormat.Parse(Encoding.UTF8.GetBytes(response), WireFormat.Json);
            var created = bundle.Entry.Count(e => e.Response?.Status?.StartsWith("201", StringComparison.Ordinal) == true);
            results.Add((package.Name, created, bundle.Entry.Count - created));
            foreach (var consentKey in package.Withdrawals)
            {
                if (await WithdrawAsync(consentKey, ct)) withdrawn++;
            }
        }
        return new DemoSeedReport(results, withdrawn);
    }

    /// <summary>The person withdraws a consent: status inactive (ConsentGrants then grants nothing). Once only: a re-run leaves it alone.</summary>
    private async Task<bool> WithdrawAsync(string consentKey, CancellationToken ct)
    {
        var identifier = $"{DemoIdentifiers.Local}/consent|{consentKey}";
        var found = (Bundle)FhirFormat.Parse(Encoding.UTF8.GetBytes(await SendAsync(HttpMethod.Get, "Consent?identifier=" + Uri.EscapeDataString(identifier), null, ct)), WireFormat.Json);
        if (found.Entry.Select(e => e.Resource).OfType<Consent>().FirstOrDefault() is not { } consent) return false;
        if (consent.Status != Consent.ConsentState.Active) return false;
        consent.Status = Consent.ConsentState.Inactive;
        await SendAsync(HttpMethod.Put, "Consent/" + consent.Id, consent, ct);
        return true;
    }

    private async Task<string> SendAsync(HttpMethod method, string path, Resource? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Accept.ParseAdd(FhirFormat.JsonContentType);
        if (body is not null) request.Content = new StringContent(Serializer.SerializeToString(body), Encoding.UTF8, FhirFormat.JsonContentType);
        using var response = await fhir.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.Created))
            throw new InvalidOperationException($"{method} {(path.Length == 0 ? "[base]" : path.Split('?')[0])} answered {(int)response.StatusCode}: {text}");
        return text;
    }
}
