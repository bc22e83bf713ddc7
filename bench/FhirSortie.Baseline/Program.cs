// Bare Kestrel serving a fixed Patient: the yardstick against which bench/run.sh reports the gateway's rates
// (issue 23: reads >= 25% of it, single-match search >= 15%, on the same machine in the same run).
//   dotnet FhirSortie.Baseline.dll URL PATIENT_JSON_FILE
// The file is a Patient the gateway served in the same run, so the body has the size of a real read. No
// authentication, no storage, no logging: whatever the gateway spends beyond this is its own.
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseUrls(args[0]);
var app = builder.Build();
var patient = File.ReadAllBytes(args[1]);
app.MapGet("/health", () => "ok");
app.MapGet("/fhir/Patient/{id}", (string id) => Results.Bytes(patient, "application/fhir+json; charset=utf-8"));
app.Run();
