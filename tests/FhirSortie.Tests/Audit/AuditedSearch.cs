using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Tests.Audit;

/// <summary>AuditEvent searches as the demo auditor (a real client_credentials token), for gateways with real token handling.</summary>
public static class AuditedSearch
{
    public const string Dicom = "http://dicom.nema.org/resources/ontology/DCM";
    public const string ClientIds = "https://fhirsortie.fr/fhir/sid/client-id";

    /// <summary>The AuditEvents of <c>AuditEvent?<paramref name="query"/></c> (one page of up to 100).</summary>
    public static async Task<List<AuditEvent>> AuditEventsAsync(this Gateway gateway, string query) =>
        (await gateway.AsAuditorAsync<Bundle>($"AuditEvent?{query}&_count=100")).Entry.Select(e => (AuditEvent)e.Resource!).ToList();

    /// <summary>GET <c>/fhir/<paramref name="path"/></c> as the demo auditor; 200 expected.</summary>
    public static async Task<T> AsAuditorAsync<T>(this Gateway gateway, string path) where T : Resource
    {
        using var http = gateway.CreateClient();
        using var token = await http.PostAsync("/auth/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = "audit-demo",
            ["client_secret"] = "audit-demo-secret",
            ["scope"] = "system/AuditEvent.rs",
        }));
        Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        var accessToken = (await token.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/fhir/" + path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        using var response = await http.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.ReadAs<T>();
    }

    /// <summary>The record as JSON, to look for what must not be in it.</summary>
    public static string JsonOf(AuditEvent audit) => new BaseFhirJsonSerializer(ModelInfo.ModelInspector).SerializeToString(audit);

    /// <summary>"subtype outcome outcomeDesc" of a record, for comparing a sequence of them.</summary>
    public static string Summary(AuditEvent audit) =>
        $"{audit.Subtype.Single().Code} {Hl7.Fhir.Utility.EnumUtility.GetLiteral(audit.Outcome)} {audit.OutcomeDesc}";
}
