using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;

namespace FhirSortie.Bench;

/// <summary>
/// Loads N patients, each with 2–3 OST prescriptions (buprenorphine or methadone), with concurrent creates,
/// and writes the files the wrk scripts pick from: patient ids and INS (URL-encoded token search values).
/// </summary>
public sealed class Loader(HttpClient http, string baseUrl)
{
    private static readonly MediaTypeHeaderValue FhirJson = new("application/fhir+json");

    public async Task<IReadOnlyList<(string Id, string Ins)>> LoadAsync(int patients, int concurrency, CancellationToken ct)
    {
        var loaded = new ConcurrentBag<(string, string)>();
        var now = DateTimeOffset.UtcNow;
        await Parallel.ForEachAsync(Enumerable.Range(0, patients), new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = ct }, async (i, token) =>
        {
            // "18501" + 8 digits: never collides with the transactions' "28502…" nor the creates' "38503…".
            var ins = Identifiers.Ins(long.Parse($"18501{i:D8}", System.Globalization.CultureInfo.InvariantCulture));
            var id = await CreateAsync("Patient", ExitPackage.Serialize(Clinical.Patient(ins, $"P{i:D8}", i)), token);
            var drug = i % 3 == 0 ? Clinical.Methadone : Clinical.Buprenorphine;
            var prescriptions = 2 + i % 2;
            for (var n = 0; n < prescriptions; n++)
            {
                var mr = Clinical.Prescription(drug, $"Patient/{id}", now.AddDays(-28 * (prescriptions - n)), null, null, null);
                await CreateAsync("MedicationRequest", ExitPackage.Serialize(mr), token);
            }
            loaded.Add((id, ins));
        });
        return [.. loaded];
    }

    private async Task<string> CreateAsync(string type, string json, CancellationToken ct)
    {
        using var content = new StringContent(json, Encoding.UTF8);
        content.Headers.ContentType = FhirJson;
        using var response = await http.PostAsync($"{baseUrl}/{type}", content, ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"POST {type} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
        // Location: [base]/[type]/[id]/_history/[vid]
        var location = response.Headers.Location?.ToString() ?? throw new InvalidOperationException($"POST {type}: no Location header.");
        var parts = location.Split('/');
        return parts[^3];
    }
}
