using System.Data.Common;
using System.Text;
using FhirSortie.Server.Storage;

namespace FhirSortie.Server.Search;

/// <summary>SQL text with its parameters, built piece by piece; parameter names are generated so pieces never clash.</summary>
public sealed class SqlQuery
{
    private readonly List<(string Name, object? Value)> _parameters = [];
    public StringBuilder Text { get; } = new();

    /// <summary>
    /// More parameters than this make a search the databases refuse (SQLite 32,766, Npgsql 65,535) or take very long:
    /// chains through every type (<c>subject._has:…</c>) multiply their sub-queries at each link.
    /// </summary>
    public const int MaxParameters = 20_000;

    public string Param(object? value)
    {
        if (_parameters.Count >= MaxParameters)
        {
            throw Rest.FhirException.Error(System.Net.HttpStatusCode.BadRequest, Hl7.Fhir.Model.OperationOutcome.IssueType.TooCostly,
                $"This search needs more than {MaxParameters} values in its query: use fewer chain links, _has steps or comma-separated values.");
        }
        var name = "@q" + _parameters.Count;
        _parameters.Add((name, value));
        return name;
    }

    /// <summary>
    /// A parameter under a fixed name, for SQL text kept from one query to the next (SearchEngine's consent predicates):
    /// added once per query; the same name always carries the same value within one query.
    /// </summary>
    public string Named(string name, object? value)
    {
        foreach (var (existing, bound) in _parameters)
        {
            if (existing != name) continue;
            if (!Equals(bound, value)) throw new InvalidOperationException($"Parameter {name} is bound to two values in one query.");
            return name;
        }
        _parameters.Add((name, value));
        return name;
    }

    private int _aliases;

    /// <summary>A fresh table alias for a sub-query (chains and _has nest, so names must not repeat).</summary>
    public string NewAlias() => "x" + _aliases++;

    public SqlQuery Append(string sql)
    {
        Text.Append(sql);
        return this;
    }

    public DbCommand ToCommand(DbConnection connection, DbTransaction? tx) => BindTo(Sql.Command(connection, tx, Text.ToString()));

    /// <summary>Adds this query's parameter values to a command of the same text (a new one, or one kept compiled).</summary>
    public DbCommand BindTo(DbCommand cmd)
    {
        foreach (var (name, value) in _parameters) cmd.With(name, value);
        return cmd;
    }
}
