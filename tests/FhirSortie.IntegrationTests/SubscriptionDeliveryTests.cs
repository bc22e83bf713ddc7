using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;
using Hl7.Fhir.Serialization;

namespace FhirSortie.IntegrationTests;

/// <summary>
/// Subscriptions end to end on the real server process with real tokens: a CSAPA registered with a notification
/// endpoint on 127.0.0.1 subscribes to the Tasks it owns; the server's background worker handshakes (status active)
/// and, when the USMP posts a hand-off Task for that CSAPA with the patient's consent, posts an id-only notification.
/// </summary>
public abstract class SubscriptionDeliveryTests(string dialect)
{
    private const string CsapaId = "it-csapa";
    private const string CsapaSecret = "it-csapa-secret-not-for-production";
    private const string CsapaFiness = "750000028";
    private const string CsapaScopes = "system/*.rs system/Subscription.cruds";
    private static readonly FhirJsonDeserializer Parser = new(new DeserializerSettings());

    [Fact]
    public async Task A_hand_off_task_reaches_the_csapa_endpoint_id_only()
    {
        using var receiver = new Receiver();
        using var storage = Storage.Create(dialect);
        await using var server = await ServerProcess.StartAsync(storage, new Dictionary<string, string>
        {
            ["FhirSortie__Clients__1__ClientId"] = CsapaId,
            ["FhirSortie__Clients__1__Secret"] = CsapaSecret,
            ["FhirSortie__Clients__1__ActorKind"] = "Csapa",
            ["FhirSortie__Clients__1__OrganizationFiness"] = CsapaFiness,
            ["FhirSortie__Clients__1__AllowedScopes"] = CsapaScopes,
            ["FhirSortie__Clients__1__NotificationEndpoints__0"] = $"http://127.0.0.1:{receiver.Port}/hooks",
            ["FhirSortie__Notifications__PollMilliseconds"] = "100",
        });
        var usmp = new FhirClient(server.BaseUrl, new FhirClientSettings { PreferredFormat = ResourceFormat.Json }, server.Authenticated());
        var token = await CsapaTokenAsync(server.BaseUrl);
        var csapa = new FhirClient(server.BaseUrl, new FhirClientSettings { PreferredFormat = ResourceFormat.Json }, new BearerHandler(token));
        var organization = Guid.NewGuid().ToString("N");

        var subscription = await csapa.CreateAsync(new Subscription
        {
            Status = Subscription.SubscriptionStatus.Requested,
            Reason = "hand-offs to the CSAPA",
            Criteria = $"Task?owner=Organization/{organization}",
            Channel = new Subscription.ChannelComponent
            {
                Type = Subscription.SubscriptionChannelType.RestHook,
                Endpoint = $"http://127.0.0.1:{receiver.Port}/hooks/tasks",
                Header = ["Authorization: Bearer receiver-secret"],
            },
        });
        Assert.Equal(Subscription.SubscriptionStatus.Requested, subscription!.Status);
        Assert.True(await EventuallyAsync(async () => (await csapa.ReadAsync<Subscription>($"Subscription/{subscription.Id}"))!.Status == Subscription.SubscriptionStatus.Active),
            "the subscription never became active: " + string.Join(" | ", receiver.Bodies.Select(b => b.Length)));
        Assert.Contains(receiver.Bodies, b => b.Contains("\"handshake\"", StringComparison.Ordinal));
        Assert.All(receiver.Authorizations, a => Assert.Equal("Bearer receiver-secret", a));

        var patient = await usmp.CreateAsync(new Patient { Name = [new HumanName { Family = "Integration", Given = ["Sortie"] }] });
        await usmp.CreateAsync(new Consent
        {
            Status = Consent.ConsentState.Active,
            Scope = new CodeableConcept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            Category = [new CodeableConcept("http://loinc.org", "59284-0")],
            Patient = new ResourceReference("Patient/" + patient!.Id),
            DateTime = DateTimeOffset.UtcNow.AddDays(-1).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
            Policy = [new Consent.PolicyComponent { Uri = "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031927568" }],
            Provision = new Consent.provisionComponent
            {
                Type = Consent.ConsentProvisionType.Deny,
                Provision =
                [
                    new Consent.provisionComponent
                    {
                        Type = Consent.ConsentProvisionType.Permit,
                        Actor = [new Consent.provisionActorComponent
                        {
                            Role = new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
                            Reference = new ResourceReference { Identifier = new Identifier("https://finess.esante.gouv.fr", CsapaFiness) },
                        }],
                        Class = [new Coding("http://hl7.org/fhir/resource-types", "Task")],
                    },
                ],
            },
        });
        var task = await usmp.CreateAsync(new Hl7.Fhir.Model.Task
        {
            Status = Hl7.Fhir.Model.Task.TaskStatus.Requested,
            Intent = Hl7.Fhir.Model.Task.TaskIntent.Order,
            For = new ResourceReference("Patient/" + patient.Id),
            Owner = new ResourceReference("Organization/" + organization),
            Description = "texte clinique de la passation",
        });

        Assert.True(await EventuallyAsync(() => System.Threading.Tasks.Task.FromResult(receiver.Bodies.Any(b => b.Contains("event-notification", StringComparison.Ordinal)))),
            "no notification arrived");
        var body = receiver.Bodies.Single(b => b.Contains("event-notification", StringComparison.Ordinal));
        var bundle = (Bundle)Parser.DeserializeResource(body);
        Assert.Equal(Bundle.BundleType.History, bundle.Type);
        Assert.Contains($"Task/{task!.Id}/_history/1", body, StringComparison.Ordinal);
        Assert.Null(bundle.Entry[1].Resource);
        Assert.DoesNotContain("texte clinique", body, StringComparison.Ordinal);
        Assert.DoesNotContain("Integration", body, StringComparison.Ordinal);
    }

    private static async Task<string> CsapaTokenAsync(Uri fhirBase)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(fhirBase, "/auth/token"))
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["scope"] = CsapaScopes }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{CsapaId}:{CsapaSecret}")));
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        using var document = JsonDocument.Parse(text);
        return document.RootElement.GetProperty("access_token").GetString()!;
    }

    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < until)
        {
            if (await condition()) return true;
            await System.Threading.Tasks.Task.Delay(100);
        }
        return await condition();
    }

    private sealed class BearerHandler(string token) : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>The CSAPA's endpoint: an HttpListener on a free 127.0.0.1 port answering 200 to every POST.</summary>
    private sealed class Receiver : IDisposable
    {
        private readonly HttpListener _listener = new();
        public ConcurrentQueue<string> Bodies { get; } = new();
        public ConcurrentQueue<string> Authorizations { get; } = new();
        public int Port { get; }

        public Receiver()
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            Port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            _listener.Prefixes.Add($"http://127.0.0.1:{Port}/hooks/");
            _listener.Start();
            _ = LoopAsync();
        }

        private async System.Threading.Tasks.Task LoopAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await _listener.GetContextAsync(); }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
                using (var reader = new StreamReader(context.Request.InputStream)) Bodies.Enqueue(await reader.ReadToEndAsync());
                Authorizations.Enqueue(context.Request.Headers["Authorization"] ?? "");
                context.Response.StatusCode = 200;
                context.Response.Close();
            }
        }

        public void Dispose() => _listener.Close();
    }
}

public sealed class SqliteSubscriptionDeliveryTests() : SubscriptionDeliveryTests("Sqlite");

public sealed class PostgresSubscriptionDeliveryTests() : SubscriptionDeliveryTests("Postgres");
