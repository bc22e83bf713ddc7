using System.Xml.Linq;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// CDA narrative block (section/text) to the XHTML subset FHIR narratives allow. Only structure is carried over
/// (paragraphs, lists, tables, line breaks, inline content); attributes (styleCode, ID, href...) are dropped so that
/// nothing active or linking reaches the FHIR narrative. Unknown elements keep their text.
/// </summary>
public static class CdaNarrative
{
    private static readonly XNamespace Xhtml = "http://www.w3.org/1999/xhtml";

    private static readonly Dictionary<string, string> Tags = new(StringComparer.Ordinal)
    {
        ["paragraph"] = "p", ["content"] = "span", ["br"] = "br", ["sub"] = "sub", ["sup"] = "sup",
        ["table"] = "table", ["thead"] = "thead", ["tbody"] = "tbody", ["tfoot"] = "tfoot", ["tr"] = "tr", ["th"] = "th", ["td"] = "td",
        ["caption"] = "b", ["item"] = "li", ["linkHtml"] = "span",
    };

    /// <summary>The narrative as a FHIR div, or null when it holds no text.</summary>
    public static string? ToXhtml(XElement text)
    {
        if (string.IsNullOrWhiteSpace(text.Value)) return null;
        var div = new XElement(Xhtml + "div", Convert(text.Nodes()));
        return div.ToString(SaveOptions.DisableFormatting);
    }

    private static IEnumerable<XNode> Convert(IEnumerable<XNode> nodes)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case XText text:
                    yield return new XText(text.Value);
                    break;
                case XElement element when element.Name.LocalName == "list":
                    var ordered = (string?)element.Attribute("listType") == "ordered";
                    yield return new XElement(Xhtml + (ordered ? "ol" : "ul"), Convert(element.Nodes()));
                    break;
                case XElement element when element.Name.LocalName is "footnote" or "footnoteRef" or "renderMultiMedia":
                    break;
                case XElement element when Tags.TryGetValue(element.Name.LocalName, out var tag):
                    yield return new XElement(Xhtml + tag, Convert(element.Nodes()));
                    break;
                case XElement element:
                    foreach (var inner in Convert(element.Nodes())) yield return inner;
                    break;
            }
        }
    }
}
