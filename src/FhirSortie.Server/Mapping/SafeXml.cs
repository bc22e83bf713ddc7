using System.Net;
using System.Xml;
using System.Xml.Linq;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// XML from outside, parsed so that it cannot reach anything: no DTD at all (a DOCTYPE is refused, so no entity
/// expansion "billion laughs" and no external entity fetching a local file or URL), no resolver, a size cap.
/// </summary>
public static class SafeXml
{
    public static XDocument Load(byte[] body, long maxCharacters)
    {
        var settings = new XmlReaderSettings
        {
            DtdProcessing = DtdProcessing.Prohibit,
            XmlResolver = null,
            MaxCharactersInDocument = maxCharacters,
            MaxCharactersFromEntities = 1024,
            IgnoreProcessingInstructions = true,
            IgnoreComments = true,
            Async = false,
        };
        try
        {
            RefuseDeep(body, settings);
            using var stream = new MemoryStream(body, writable: false);
            using var reader = XmlReader.Create(stream, settings);
            return XDocument.Load(reader, LoadOptions.None);
        }
        catch (XmlException e) when (e.Message.Contains("DTD", StringComparison.OrdinalIgnoreCase))
        {
            throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.Security,
                $"The document has a DOCTYPE (line {e.LineNumber}); DTDs and entities are refused.");
        }
        catch (XmlException e)
        {
            // The parser's message names the line and position, never the content.
            throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.Structure,
                $"The document is not well-formed XML: {e.Message}");
        }
    }

    /// <summary>Elements nested deeper than this are refused: far beyond a CDA or a FHIR resource, far below a stack overflow.</summary>
    public const int MaxDepth = 128;

    /// <summary>
    /// 400 when the document nests elements deeper than <see cref="MaxDepth"/>. The readers that follow (the SDK's XML
    /// deserializer, the CDA narrative's conversion) recurse once per level: 200,000 nested elements, a few megabytes,
    /// would overflow the stack and end the process, which no catch can stop. One streaming pass, no tree built.
    /// </summary>
    public static void RefuseDeep(byte[] body, XmlReaderSettings settings)
    {
        using var stream = new MemoryStream(body, writable: false);
        using var reader = XmlReader.Create(stream, settings);
        while (reader.Read())
        {
            if (reader.Depth > MaxDepth)
            {
                throw FhirException.Error(HttpStatusCode.BadRequest, OperationOutcome.IssueType.TooCostly,
                    $"The document nests elements deeper than {MaxDepth} levels (line {((IXmlLineInfo)reader).LineNumber}).");
            }
        }
    }
}
