using System.Xml.Linq;
using FhirSortie.Server.Storage;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace FhirSortie.Server.Security;

/// <summary>
/// Keeps the ASP.NET Core data protection key ring in the database. The practitioner's login cookie and the
/// antiforgery tokens of the login and patient picker forms are protected with these keys: with a key ring per
/// process, a form served by one gateway node could not be posted to another, and a restart would sign everybody out.
/// The interface is synchronous; it is called when the key ring is loaded or rotated, not per request.
/// </summary>
public sealed class DatabaseKeyRepository(StorageDialect dialect, TimeProvider clock) : IXmlRepository
{
    public IReadOnlyCollection<XElement> GetAllElements()
    {
        using var connection = dialect.CreateConnection();
        connection.Open();
        using var cmd = Sql.Command(connection, null, "SELECT xml FROM data_protection_keys ORDER BY created, name");
        using var reader = cmd.ExecuteReader();
        var elements = new List<XElement>();
        while (reader.Read()) elements.Add(XElement.Parse(reader.GetString(0)));
        return elements;
    }

    public void StoreElement(XElement element, string friendlyName)
    {
        using var connection = dialect.CreateConnection();
        connection.Open();
        if (dialect is Storage.Sqlite.SqliteDialect)
        {
            // Another node or request may hold the write lock for a moment: wait for it instead of failing.
            using var pragma = Sql.Command(connection, null, "PRAGMA busy_timeout=30000;");
            pragma.ExecuteNonQuery();
        }
        using var cmd = Sql.Command(connection, null, "INSERT INTO data_protection_keys (name, xml, created) VALUES (@name, @xml, @created)")
            .With("@name", friendlyName)
            .With("@xml", element.ToString(SaveOptions.DisableFormatting))
            .With("@created", clock.GetUtcNow().ToUnixTimeMilliseconds());
        cmd.ExecuteNonQuery();
    }
}
