using System.Diagnostics;
using OpenTelemetry;

namespace FhirSortie.Server.Telemetry;

/// <summary>
/// Takes the URL tags off every span before it is exported: a FHIR path holds resource ids and a query holds search
/// values (INS, names, birth dates), which never leave the node in logs either. The ASP.NET Core instrumentation
/// already masks query values, but not paths; the route template (<c>http.route</c>, and the span's name) says which
/// interaction ran without them. Client spans (notification deliveries) keep <c>server.address</c>: which subscriber.
/// </summary>
public sealed class UrlRedaction : BaseProcessor<Activity>
{
    private static readonly string[] Tags = ["url.path", "url.query", "url.full", "http.url", "http.target"];

    public override void OnEnd(Activity data)
    {
        foreach (var tag in Tags)
        {
            if (data.GetTagItem(tag) is not null) data.SetTag(tag, null);
        }
    }
}
