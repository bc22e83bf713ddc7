namespace FhirSortie.Server.Portal;

/// <summary>
/// The portal's CSV downloads, as French spreadsheets open them: UTF-8 with a byte order mark (without it Excel reads a
/// CSV as Windows-1252 and breaks every accent), ';' between cells (Excel in France uses ',' as the decimal mark, so
/// its list separator is ';'), RFC 4180 quoting, and no formula injection (a cell starting with = + - @ is defused).
/// </summary>
public static class PortalCsv
{
    public const string Bom = "\uFEFF";
    public const string ContentType = "text/csv; charset=utf-8";

    public static string Cell(string value)
    {
        if (value.Length > 0 && value[0] is '=' or '+' or '-' or '@') value = "'" + value;
        return value.IndexOfAny([';', '"', '\r', '\n']) >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
    }

    public static string Line(IEnumerable<string> cells) => string.Join(';', cells.Select(Cell)) + "\r\n";

    /// <summary>The portal's headers, and a download under <paramref name="fileName"/>.</summary>
    public static void Attachment(HttpResponse response, string fileName)
    {
        PortalPage.SecureHeaders(response);
        response.Headers.ContentDisposition = $"attachment; filename=\"{fileName}\"";
    }
}
