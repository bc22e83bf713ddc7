using Serilog.Core;
using Serilog.Events;

namespace FhirSortie.Server.Telemetry;

/// <summary>
/// Takes RequestPath off every log event. ASP.NET Core opens a log scope per request holding it, Serilog turns scopes
/// into properties of every event written during the request (ours, Serilog's request log, the framework's), and
/// structured sinks (a JSON file, Seq) write all properties, not only the message's: a FHIR path holds resource ids.
/// The request log says which interaction ran with its route template instead (Program.cs).
/// </summary>
public sealed class RequestPathRemoval : ILogEventEnricher
{
    public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory) => logEvent.RemovePropertyIfPresent("RequestPath");
}
