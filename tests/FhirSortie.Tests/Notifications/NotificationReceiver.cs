using System.Collections.Concurrent;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FhirSortie.Tests.Notifications;

/// <summary>A subscriber's rest-hook endpoint: a small Kestrel server on 127.0.0.1 (free port) that keeps what it receives.</summary>
public sealed class NotificationReceiver : IAsyncDisposable
{
    private static readonly FhirJsonDeserializer Strict = new(new DeserializerSettings());
    private readonly WebApplication _app;

    public sealed record Received(string Path, string? Authorization, string ContentType, string Body)
    {
        public Bundle Bundle => (Bundle)Strict.DeserializeResource(Body);

        public Parameters Status => (Parameters)Bundle.Entry[0].Resource!;

        public string? Type => Status.GetSingleValue<Code>("type")?.Value;

        /// <summary>The focus reference of the (single) notification event, without base and version.</summary>
        public string? Focus
        {
            get
            {
                var focus = Status.Parameter.FirstOrDefault(p => p.Name == "notification-event")?.Part.FirstOrDefault(p => p.Name == "focus")?.Value as ResourceReference;
                if (focus?.Reference is not { } reference) return null;
                var parts = reference.Split('/');
                var history = Array.IndexOf(parts, "_history");
                return history >= 2 ? $"{parts[history - 2]}/{parts[history - 1]}" : $"{parts[^2]}/{parts[^1]}";
            }
        }
    }

    public ConcurrentQueue<Received> All { get; } = new();

    /// <summary>While true, every POST is answered 503.</summary>
    public bool Failing { get; set; }

    public int Port { get; }

    private NotificationReceiver(WebApplication app, int port) => (_app, Port) = (app, port);

    /// <summary>The URL of a hook under the path registered for the test clients.</summary>
    public string Url(string name) => $"http://127.0.0.1:{Port}/notify/{name}";

    public IReadOnlyList<Received> At(string name) => All.Where(r => r.Path == $"/notify/{name}").ToList();

    public static async Task<NotificationReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, EnvironmentName = "Receiver" });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        NotificationReceiver? receiver = null;
        app.MapPost("/{**path}", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            receiver!.All.Enqueue(new Received(context.Request.Path, context.Request.Headers.Authorization.ToString() is { Length: > 0 } a ? a : null,
                context.Request.ContentType ?? "", body));
            return receiver.Failing ? Results.StatusCode(503) : Results.Ok();
        });
        await app.StartAsync();
        var port = new Uri(app.Urls.First()).Port;
        receiver = new NotificationReceiver(app, port);
        return receiver;
    }

    /// <summary>Waits until <paramref name="condition"/> holds (the gateway's own worker delivers in the background).</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, int seconds = 20)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < until)
        {
            if (await condition()) return true;
            await System.Threading.Tasks.Task.Delay(50);
        }
        return await condition();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
