namespace FhirSortie.Server.Rest;

/// <summary>search-system: GET [base]?_type=...&amp;params and POST [base]/_search; also serves the paging links (_getpages).</summary>
public static class SearchSystem
{
    public static async System.Threading.Tasks.Task Handle(HttpContext context)
    {
        var query = await Search.QueryAsync(context);
        await Search.RespondAsync(context, Search.RequestFor(context, null, query));
    }
}
