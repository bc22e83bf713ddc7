using System.Net;
using FhirSortie.Server.Rest;
using FhirSortie.Server.Search;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// POST [base]/DocumentReference/$import-cda with a CI-SIS CDA R2 lettre de liaison de sortie as the body
/// (Content-Type application/hl7-cda+xml, text/xml or application/xml). The document is parsed safely
/// (<see cref="SafeXml"/>), mapped (<see cref="LiaisonLetterMapping"/>) and written as ONE transaction by the same
/// code as POST [base] with a transaction Bundle, so profiles, normalisation, access filters and retries apply as
/// for any transaction. The answer is that transaction-response Bundle (200); the DocumentReference's entry carries
/// in response.outcome what was not carried over (unmapped sections...) and what a corrected letter replaced
/// (<see cref="LetterVersions"/>: a new version of the document supersedes the current one in the same transaction).
/// Errors: 415 for another content type, 413 above FhirSortie:Mapping:MaxCdaBytes, 400 for XML that is not
/// well-formed or has a DOCTYPE, 422 for a CDA that is not a usable LDL-SES (one issue per problem, with its CDA path).
/// </summary>
public static class ImportCda
{
    public const string Definition = "https://fhirsortie.fr/fhir/OperationDefinition/DocumentReference-import-cda";

    public const string MaxBytesSetting = "FhirSortie:Mapping:MaxCdaBytes";
    public const long DefaultMaxBytes = 10 * 1024 * 1024;

    private static readonly string[] MediaTypes = ["application/hl7-cda+xml", "text/xml", "application/xml"];

    /// <summary>Imports of corrections that race each other look again this many times in all before the 412 is answered.</summary>
    private const int MaxAttempts = 3;

    public static async Task Handle(HttpContext context)
    {
        var mediaType = context.Request.ContentType?.Split(';')[0].Trim().ToLowerInvariant();
        if (mediaType is null || !MediaTypes.Contains(mediaType))
        {
            throw FhirException.Error(HttpStatusCode.UnsupportedMediaType, OperationOutcome.IssueType.NotSupported,
                $"$import-cda takes the CDA document itself as the body, with Content-Type {string.Join(", ", MediaTypes)}.");
        }
        var options = FhirRequest.Options(context);
        var configured = context.RequestServices.GetRequiredService<IConfiguration>().GetValue<long?>(MaxBytesSetting) ?? DefaultMaxBytes;
        var max = Math.Min(configured, options.MaxRequestBodyBytes);
        byte[] body;
        try
        {
            body = await FhirFormat.ReadBodyAsync(context.Request, max, context.RequestAborted);
        }
        catch (FhirException e) when (e.Status == HttpStatusCode.RequestEntityTooLarge)
        {
            throw FhirException.Error(HttpStatusCode.RequestEntityTooLarge, OperationOutcome.IssueType.TooCostly,
                $"The CDA document is larger than the limit of {max} bytes ({MaxBytesSetting}).");
        }

        var cda = CdaDocument.Parse(SafeXml.Load(body, max));
        var services = new Transaction.Services(FhirRequest.Store(context), context.RequestServices.GetRequiredService<SearchEngine>(),
            options, FhirBase.Of(context), Prefer.From(context.Request).Return, context.RequestServices, AccessFilters.For(context),
            Security.AccessPoint.Of(context)); // every entry of the import is checked like a posted transaction's
        for (var attempt = 1; ; attempt++)
        {
            var mapping = context.RequestServices.GetRequiredService<LiaisonLetterMapping>().Map(cda, body);
            // A corrected letter (same setId, new id) replaces the version the caller sees as current, in the same transaction.
            var notes = mapping.Notes.ToList();
            var unchanged = await LetterVersions.ApplyAsync(FhirRequest.Store(context), context.RequestServices.GetRequiredService<SearchConnections>(),
                context.RequestServices.GetRequiredService<SearchEngine>(), AccessFilters.For(context), Security.Caller.Of(context)?.OrganizationFiness,
                cda, mapping, notes, context.RequestAborted);
            Bundle response;
            try
            {
                response = await Transaction.RunTransactionAsync(services with { Precondition = unchanged }, mapping.Transaction, context.RequestAborted);
            }
            catch (FhirException e) when (unchanged is not null && e.Status == HttpStatusCode.PreconditionFailed && attempt < MaxAttempts)
            {
                // Another import of this letter (two versions, or two corrections of one version, sent together) changed
                // its versions after they were read: nothing was written; read them again and replace the one now current.
                continue;
            }
            if (notes.Count > 0)
            {
                var entry = response.Entry[mapping.DocumentReferenceEntry].Response!;
                entry.Outcome ??= new OperationOutcome();
                ((OperationOutcome)entry.Outcome).Issue.AddRange(notes);
            }
            await FhirResponse.WriteAsync(context, FhirResult.Of(HttpStatusCode.OK, response));
            return;
        }
    }
}
