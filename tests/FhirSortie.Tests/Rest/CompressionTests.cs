using System.IO.Compression;
using System.Net;
using FhirSortie.Tests.Search;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using static FhirSortie.Tests.Search.Domain;

namespace FhirSortie.Tests.Rest;

/// <summary>FHIR answers are compressed when the client asks for it, and only then.</summary>
public sealed class CompressionTests(SqliteGateway gateway) : IClassFixture<SqliteGateway>
{
    [Theory]
    [InlineData("gzip")]
    [InlineData("br")]
    public async Task A_search_is_compressed_when_asked_and_reads_back_the_same(string encoding)
    {
        var fhir = gateway.Fhir();
        var run = NewRun();
        var patient = await fhir.CreateAsync(Patient(run, "280021400003004", "Compresse"));
        for (var i = 0; i < 5; i++) await fhir.CreateAsync(Buprenorphine(run, patient.Id!));
        var url = $"MedicationRequest?patient={patient.Id}&_count=10";
        using var plain = await fhir.GetAsync(url);
        var plainBytes = await plain.Content.ReadAsByteArrayAsync();
        Assert.Empty(plain.Content.Headers.ContentEncoding);

        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.AcceptEncoding.ParseAdd(encoding);
        using var compressed = await fhir.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, compressed.StatusCode);
        Assert.Equal(encoding, Assert.Single(compressed.Content.Headers.ContentEncoding));
        var raw = await compressed.Content.ReadAsByteArrayAsync();
        Assert.True(raw.Length < plainBytes.Length / 2, $"{raw.Length} compressed bytes for {plainBytes.Length}");
        using var decoded = new MemoryStream();
        await using (Stream decoder = encoding == "gzip" ? new GZipStream(new MemoryStream(raw), CompressionMode.Decompress) : new BrotliStream(new MemoryStream(raw), CompressionMode.Decompress))
            await decoder.CopyToAsync(decoded);
        var bundle = new FhirJsonDeserializer().Deserialize<Bundle>(System.Text.Encoding.UTF8.GetString(decoded.ToArray()));
        Assert.Equal(5, bundle.Total);
        Assert.Equal("no-store", compressed.Headers.CacheControl?.ToString());
    }

    [Fact]
    public async Task Token_answers_are_never_compressed()
    {
        using var http = gateway.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/auth/token")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials", ["client_id"] = "usmp-demo", ["client_secret"] = "usmp-demo-secret", ["scope"] = "system/*.rs",
            }),
        };
        request.Headers.AcceptEncoding.ParseAdd("gzip");
        using var response = await http.SendAsync(request);
        // OpenIddict's JSON answer (application/json, which the middleware's defaults would have compressed).
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Empty(response.Content.Headers.ContentEncoding);
    }
}
