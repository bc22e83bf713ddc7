using System.Globalization;
using System.Net;
using System.Text;
using System.Xml.Linq;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;

namespace FhirSortie.Server.Mapping;

/// <summary>An instance identifier of CDA (II): root OID or UUID, optional extension.</summary>
public sealed record CdaId(string Root, string? Extension)
{
    public override string ToString() => Extension is null ? Root : $"{Root}^{Extension}";
}

public sealed record CdaPerson(IReadOnlyList<CdaId> Ids, HumanName? Name);

public sealed record CdaPatient(IReadOnlyList<CdaId> Ids, IReadOnlyList<HumanName> Names, AdministrativeGender? Gender, string? BirthDate);

public sealed record CdaOrganization(IReadOnlyList<CdaId> Ids, string? Name);

/// <summary>One medicine of the treatments section (IHE PCC Medications entry, substanceAdministration).</summary>
public sealed record CdaMedication(string Path, CdaId? Id, IReadOnlyList<Coding> Codes, string? Text, Quantity? Dose,
    string? Start, string? End, (decimal Value, string Unit)? Every, Coding? Route, Quantity? Supply);

/// <summary>An appointment of the follow-up section (encounter entry in mood APT, or ARQ/INT when only requested).</summary>
public sealed record CdaAppointment(string Path, CdaId? Id, bool Booked, string? Text, string? Start, string? End, string? Place);

public sealed record CdaSection(string Path, IReadOnlyList<string> TemplateIds, Coding? Code, string? Title, string? Narrative,
    IReadOnlyList<CdaMedication> Medications)
{
    public IReadOnlyList<CdaAppointment> Appointments { get; init; } = [];
}

/// <summary>
/// A CI-SIS CDA R2 document as far as the liaison-letter mapping needs it: header, and either the structured body's
/// sections (level 3) or the embedded non-XML body (level 1). Parsing collects every problem and reports them all
/// at once (422 with one issue per problem, each naming the CDA path), so a sender can fix a document in one round.
/// </summary>
public sealed class CdaDocument
{
    public static readonly XNamespace V3 = "urn:hl7-org:v3";
    private static readonly XNamespace Xsi = "http://www.w3.org/2001/XMLSchema-instance";

    /// <summary>CI-SIS LDL-SES document template (schematron CI-SIS_LDL-SES_2020.01.sch; TRE_A06 maps it to urn:asip:ci-sis:ldl-ses:2017).</summary>
    public const string LdlSesTemplate = "1.2.250.1.213.1.1.1.29";

    /// <summary>LOINC 11490-0, the document type of a lettre de liaison à la sortie (CI-SIS JDV_J07 XdsTypeCode).</summary>
    public const string LiaisonLetterLoinc = "11490-0";

    /// <summary>IHE PCC Medications entry (substanceAdministration) used in the treatments-at-exit section.</summary>
    public const string MedicationEntryTemplate = "1.3.6.1.4.1.19376.1.5.3.1.4.7";

    public required CdaId Id { get; init; }
    public CdaId? SetId { get; init; }
    public int? Version { get; init; }
    public required Coding Type { get; init; }
    public required string Title { get; init; }
    public required string Date { get; init; }
    public required string Confidentiality { get; init; }
    public string? Language { get; init; }
    public required CdaPatient Patient { get; init; }
    public required IReadOnlyList<CdaPerson> Authors { get; init; }
    public CdaPerson? LegalAuthenticator { get; init; }
    public string? LegalAuthenticationTime { get; init; }
    public required CdaOrganization Custodian { get; init; }
    public string? PeriodStart { get; init; }
    public string? PeriodEnd { get; init; }
    public IReadOnlyList<CdaSection> Sections { get; init; } = [];

    /// <summary>Level 1: the embedded document (PDF...) and its media type.</summary>
    public (string MediaType, byte[] Data)? NonXmlBody { get; init; }

    public bool IsStructured => NonXmlBody is null;

    public static CdaDocument Parse(XDocument xml)
    {
        var errors = new List<OperationOutcome.IssueComponent>();
        var root = xml.Root;
        if (root is null || root.Name != V3 + "ClinicalDocument")
        {
            throw FhirException.Error(HttpStatusCode.UnprocessableEntity, OperationOutcome.IssueType.Structure,
                $"The root element is {(root is null ? "missing" : $"'{root.Name.LocalName}' in namespace '{root.Name.NamespaceName}'")}; a CDA R2 document is a ClinicalDocument in namespace urn:hl7-org:v3.",
                "ClinicalDocument");
        }
        void Error(string path, string message) => errors.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error,
            OperationOutcome.IssueType.Required, message, path));

        var templates = root.Elements(V3 + "templateId").Select(t => (string?)t.Attribute("root")).OfType<string>().ToList();
        if (!templates.Contains(LdlSesTemplate))
            Error("ClinicalDocument/templateId", $"The document does not declare the CI-SIS LDL-SES template ({LdlSesTemplate}); only liaison letters are imported here.");

        var id = ReadId(root.Element(V3 + "id"));
        if (id is null) Error("ClinicalDocument/id", "The document id (id/@root) is missing.");

        var code = root.Element(V3 + "code");
        var type = Code(code);
        if (type is null || type.System != NationalSystems.Loinc || type.Code != LiaisonLetterLoinc)
            Error("ClinicalDocument/code", $"The document code must be LOINC {LiaisonLetterLoinc} (lettre de liaison à la sortie).");

        var date = DateTime(root.Element(V3 + "effectiveTime"), "ClinicalDocument/effectiveTime", Error, required: true);
        var confidentiality = (string?)root.Element(V3 + "confidentialityCode")?.Attribute("code");
        if (confidentiality is not ("N" or "R" or "V"))
            Error("ClinicalDocument/confidentialityCode", "confidentialityCode/@code must be N, R or V (HL7 v3 Confidentiality).");

        var patient = ReadPatient(root.Element(V3 + "recordTarget")?.Element(V3 + "patientRole"), Error);
        var authors = root.Elements(V3 + "author").Select((a, i) => Person(a.Element(V3 + "assignedAuthor"), "assignedPerson", $"ClinicalDocument/author[{i + 1}]/assignedAuthor", Error)).ToList();
        if (authors.Count == 0) Error("ClinicalDocument/author", "The document has no author.");
        var legal = root.Element(V3 + "legalAuthenticator");
        var legalAuthenticator = legal is null ? null : Person(legal.Element(V3 + "assignedEntity"), "assignedPerson", "ClinicalDocument/legalAuthenticator/assignedEntity", Error);
        var legalTime = legal is null ? null : DateTime(legal.Element(V3 + "time"), "ClinicalDocument/legalAuthenticator/time", Error, required: false);
        var custodian = Organization(root.Element(V3 + "custodian")?.Element(V3 + "assignedCustodian")?.Element(V3 + "representedCustodianOrganization"),
            "ClinicalDocument/custodian/assignedCustodian/representedCustodianOrganization", Error);

        // The stay: the encompassing encounter (for a USMP, the detention period) else the documented service event.
        var stay = root.Element(V3 + "componentOf")?.Element(V3 + "encompassingEncounter")?.Element(V3 + "effectiveTime")
                   ?? root.Element(V3 + "documentationOf")?.Element(V3 + "serviceEvent")?.Element(V3 + "effectiveTime");
        var start = DateTime(stay?.Element(V3 + "low") ?? stay, "ClinicalDocument/componentOf/encompassingEncounter/effectiveTime/low", Error, required: false);
        var end = DateTime(stay?.Element(V3 + "high"), "ClinicalDocument/componentOf/encompassingEncounter/effectiveTime/high", Error, required: false);

        var component = root.Element(V3 + "component");
        var structured = component?.Element(V3 + "structuredBody");
        var nonXml = component?.Element(V3 + "nonXMLBody");
        (string, byte[])? embedded = null;
        var sections = new List<CdaSection>();
        if (structured is not null)
        {
            var index = 0;
            foreach (var section in structured.Elements(V3 + "component").Select(c => c.Element(V3 + "section")).OfType<XElement>())
            {
                index++;
                sections.Add(Section(section, $"ClinicalDocument/component/structuredBody/component[{index}]/section", Error));
            }
            if (sections.Count == 0) Error("ClinicalDocument/component/structuredBody", "The structured body has no section.");
        }
        else if (nonXml is not null)
        {
            embedded = NonXml(nonXml.Element(V3 + "text"), Error);
        }
        else
        {
            Error("ClinicalDocument/component", "The document has neither a structuredBody (level 3) nor a nonXMLBody (level 1).");
        }

        if (errors.Count > 0)
        {
            var outcome = new OperationOutcome();
            outcome.Issue.AddRange(errors);
            throw new FhirException(HttpStatusCode.UnprocessableEntity, outcome);
        }
        var setId = ReadId(root.Element(V3 + "setId"));
        var version = int.TryParse((string?)root.Element(V3 + "versionNumber")?.Attribute("value"), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : (int?)null;
        return new CdaDocument
        {
            Id = id!, SetId = setId, Version = version, Type = type!, Date = date!, Confidentiality = confidentiality!,
            Title = ((string?)root.Element(V3 + "title"))?.Trim() is { Length: > 0 } title ? title : "Lettre de liaison de sortie",
            Language = (string?)root.Element(V3 + "languageCode")?.Attribute("code"),
            Patient = patient!, Authors = authors.OfType<CdaPerson>().ToList(), LegalAuthenticator = legalAuthenticator,
            LegalAuthenticationTime = legalTime, Custodian = custodian!, PeriodStart = start, PeriodEnd = end,
            Sections = sections, NonXmlBody = embedded,
        };
    }

    private static CdaId? ReadId(XElement? element)
    {
        var root = (string?)element?.Attribute("root");
        if (string.IsNullOrWhiteSpace(root)) return null;
        var extension = (string?)element!.Attribute("extension");
        return new CdaId(root.Trim(), string.IsNullOrWhiteSpace(extension) ? null : extension.Trim());
    }

    /// <summary>A CD/CE code with its code system as the FHIR URI (OIDs we do not know stay urn:oid:).</summary>
    private static Coding? Code(XElement? element)
    {
        var code = (string?)element?.Attribute("code");
        var system = (string?)element?.Attribute("codeSystem");
        if (string.IsNullOrWhiteSpace(code) || string.IsNullOrWhiteSpace(system)) return null;
        return new Coding(NationalSystems.CodeSystemFromOid(system) ?? "urn:oid:" + system.Trim(), code.Trim(), (string?)element!.Attribute("displayName"));
    }

    private static CdaPatient? ReadPatient(XElement? role, Action<string, string> error)
    {
        const string path = "ClinicalDocument/recordTarget/patientRole";
        if (role is null) { error(path, "The document has no recordTarget/patientRole."); return null; }
        var ids = role.Elements(V3 + "id").Select(ReadId).OfType<CdaId>().Where(i => i.Extension is not null).ToList();
        if (ids.Count == 0) error($"{path}/id", "The patient has no identifier (INS or a local id with root and extension).");
        var patient = role.Element(V3 + "patient");
        if (patient is null) { error($"{path}/patient", "patientRole/patient is missing."); return null; }
        var names = patient.Elements(V3 + "name").Select(PatientName).OfType<HumanName>().ToList();
        if (names.Count == 0) error($"{path}/patient/name", "The patient has no name.");
        var gender = (string?)patient.Element(V3 + "administrativeGenderCode")?.Attribute("code") switch
        {
            "M" => AdministrativeGender.Male,
            "F" => AdministrativeGender.Female,
            "U" => AdministrativeGender.Unknown,
            _ => (AdministrativeGender?)null,
        };
        if (gender is null) error($"{path}/patient/administrativeGenderCode", "administrativeGenderCode/@code must be M, F or U.");
        var birth = (string?)patient.Element(V3 + "birthTime")?.Attribute("value");
        var birthDate = birth is { Length: >= 8 } && System.DateTime.TryParseExact(birth[..8], "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var b)
            ? b.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) : null;
        if (birthDate is null) error($"{path}/patient/birthTime", "birthTime/@value must be a date (YYYYMMDD).");
        return new CdaPatient(ids, names, gender, birthDate);
    }

    /// <summary>
    /// CI-SIS names: family with qualifier BR is the birth name (nom de naissance), SP the used name (nom d'usage);
    /// the FHIR official name carries the birth name and every given name.
    /// </summary>
    private static HumanName? PatientName(XElement name)
    {
        var given = name.Elements(V3 + "given").Select(g => g.Value.Trim()).Where(g => g.Length > 0).ToList();
        var families = name.Elements(V3 + "family").ToList();
        var birth = families.FirstOrDefault(f => ((string?)f.Attribute("qualifier"))?.Contains("BR", StringComparison.Ordinal) == true) ?? families.FirstOrDefault();
        if (birth is null || birth.Value.Trim().Length == 0) return null;
        return new HumanName { Use = HumanName.NameUse.Official, Family = birth.Value.Trim(), Given = given };
    }

    private static CdaPerson? Person(XElement? assigned, string personElement, string path, Action<string, string> error)
    {
        if (assigned is null) { error(path, "The element is missing."); return null; }
        var ids = assigned.Elements(V3 + "id").Select(ReadId).OfType<CdaId>().Where(i => i.Extension is not null).ToList();
        if (ids.Count == 0) error($"{path}/id", "The professional has no identifier (RPPS as idNatPs, root 1.2.250.1.71.4.2.1).");
        var name = assigned.Element(V3 + personElement)?.Element(V3 + "name");
        HumanName? human = null;
        if (name is not null)
        {
            human = new HumanName
            {
                Family = name.Element(V3 + "family")?.Value.Trim(),
                Given = name.Elements(V3 + "given").Select(g => g.Value.Trim()).Where(g => g.Length > 0).ToList(),
                Prefix = name.Elements(V3 + "prefix").Select(g => g.Value.Trim()).Where(g => g.Length > 0).ToList(),
            };
        }
        return new CdaPerson(ids, human);
    }

    private static CdaOrganization? Organization(XElement? organization, string path, Action<string, string> error)
    {
        if (organization is null) { error(path, "The custodian organisation is missing."); return null; }
        var ids = organization.Elements(V3 + "id").Select(ReadId).OfType<CdaId>().Where(i => i.Extension is not null).ToList();
        if (ids.Count == 0) error($"{path}/id", "The custodian has no identifier (FINESS as idNatSt, root 1.2.250.1.71.4.2.2).");
        var name = organization.Element(V3 + "name")?.Value.Trim();
        if (string.IsNullOrEmpty(name)) error($"{path}/name", "The custodian has no name.");
        return new CdaOrganization(ids, name);
    }

    private static CdaSection Section(XElement section, string path, Action<string, string> error)
    {
        var templates = section.Elements(V3 + "templateId").Select(t => (string?)t.Attribute("root")).OfType<string>().ToList();
        var code = Code(section.Element(V3 + "code"));
        var title = section.Element(V3 + "title")?.Value.Trim();
        var text = section.Element(V3 + "text");
        var narrative = text is null ? null : CdaNarrative.ToXhtml(text);
        var medications = new List<CdaMedication>();
        var appointments = new List<CdaAppointment>();
        var entry = 0;
        foreach (var e in section.Elements(V3 + "entry"))
        {
            entry++;
            if (e.Element(V3 + "substanceAdministration") is { } administration)
                medications.Add(Medication(administration, text, $"{path}/entry[{entry}]/substanceAdministration", error));
            else if (e.Element(V3 + "encounter") is { } encounter && (string?)encounter.Attribute("moodCode") is "APT" or "ARQ" or "INT")
                appointments.Add(Appointment(encounter, text, $"{path}/entry[{entry}]/encounter", error));
        }
        return new CdaSection(path, templates, code, string.IsNullOrEmpty(title) ? null : title, narrative, medications) { Appointments = appointments };
    }

    private static CdaMedication Medication(XElement administration, XElement? sectionText, string path, Action<string, string> error)
    {
        var material = administration.Element(V3 + "consumable")?.Element(V3 + "manufacturedProduct")?.Element(V3 + "manufacturedMaterial");
        var codeElement = material?.Element(V3 + "code");
        var codes = new List<Coding>();
        if (Code(codeElement) is { } main) codes.Add(main);
        codes.AddRange(codeElement?.Elements(V3 + "translation").Select(Code).OfType<Coding>() ?? []);
        if (codes.Count == 0) error($"{path}/consumable/manufacturedProduct/manufacturedMaterial/code", "The medicine has no code (code/@code and @codeSystem).");

        string? text = null;
        var reference = ((string?)administration.Element(V3 + "text")?.Element(V3 + "reference")?.Attribute("value"))?.TrimStart('#');
        if (reference is not null && sectionText is not null)
            text = sectionText.Descendants().FirstOrDefault(d => (string?)d.Attribute("ID") == reference)?.Value;
        text ??= administration.Element(V3 + "text")?.Value;
        text = string.IsNullOrWhiteSpace(text) ? null : Collapse(text);

        string? start = null, end = null;
        (decimal, string)? every = null;
        foreach (var time in administration.Elements(V3 + "effectiveTime"))
        {
            var xsiType = ((string?)time.Attribute(Xsi + "type"))?.Split(':').Last();
            if (xsiType == "PIVL_TS" && time.Element(V3 + "period") is { } period
                && decimal.TryParse((string?)period.Attribute("value"), NumberStyles.Number, CultureInfo.InvariantCulture, out var n) && (string?)period.Attribute("unit") is { } unit)
            {
                every = (n, unit);
            }
            else if (xsiType is null or "IVL_TS")
            {
                start = DateTime(time.Element(V3 + "low"), $"{path}/effectiveTime/low", error, required: false) ?? start;
                end = DateTime(time.Element(V3 + "high"), $"{path}/effectiveTime/high", error, required: false) ?? end;
            }
        }
        var dose = Quantity(administration.Element(V3 + "doseQuantity") is { } d ? d.Element(V3 + "low") ?? d : null);
        var route = Code(administration.Element(V3 + "routeCode"));
        var supply = administration.Elements(V3 + "entryRelationship").Select(r => r.Element(V3 + "supply"))
            .FirstOrDefault(s => s is not null && (string?)s.Attribute("moodCode") == "RQO");
        return new CdaMedication(path, ReadId(administration.Element(V3 + "id")), codes, text, dose, start, end, every, route,
            Quantity(supply?.Element(V3 + "quantity")));
    }

    /// <summary>
    /// IHE PCC encounter entry of the care plan: effectiveTime (value, or low/high), the narrative it points to, and the
    /// place (a LOC participant's name, else the performer's organisation).
    /// </summary>
    private static CdaAppointment Appointment(XElement encounter, XElement? sectionText, string path, Action<string, string> error)
    {
        var time = encounter.Element(V3 + "effectiveTime");
        var start = DateTime(time?.Element(V3 + "low") ?? time, $"{path}/effectiveTime", error, required: false);
        var end = DateTime(time?.Element(V3 + "high"), $"{path}/effectiveTime/high", error, required: false);
        string? text = null;
        var reference = ((string?)encounter.Element(V3 + "text")?.Element(V3 + "reference")?.Attribute("value"))?.TrimStart('#');
        if (reference is not null && sectionText is not null)
            text = sectionText.Descendants().FirstOrDefault(d => (string?)d.Attribute("ID") == reference)?.Value;
        text ??= encounter.Element(V3 + "text")?.Value;
        var place = encounter.Elements(V3 + "participant").Where(p => (string?)p.Attribute("typeCode") == "LOC")
                        .Select(p => p.Element(V3 + "participantRole")?.Element(V3 + "playingEntity")?.Element(V3 + "name")?.Value).FirstOrDefault(n => !string.IsNullOrWhiteSpace(n))
                    ?? encounter.Element(V3 + "performer")?.Element(V3 + "assignedEntity")?.Element(V3 + "representedOrganization")?.Element(V3 + "name")?.Value;
        if (start is null && string.IsNullOrWhiteSpace(text))
            error(path, "The appointment has neither a date (effectiveTime) nor a text.");
        return new CdaAppointment(path, ReadId(encounter.Element(V3 + "id")), (string?)encounter.Attribute("moodCode") == "APT",
            string.IsNullOrWhiteSpace(text) ? null : Collapse(text), start, end, string.IsNullOrWhiteSpace(place) ? null : Collapse(place));
    }

    private static Quantity? Quantity(XElement? element)
    {
        if (!decimal.TryParse((string?)element?.Attribute("value"), NumberStyles.Number, CultureInfo.InvariantCulture, out var value)) return null;
        var unit = (string?)element!.Attribute("unit");
        return string.IsNullOrWhiteSpace(unit) || unit == "1"
            ? new Quantity { Value = value }
            : new Quantity { Value = value, Unit = unit, System = NationalSystems.Ucum, Code = unit };
    }

    private static (string, byte[])? NonXml(XElement? text, Action<string, string> error)
    {
        const string path = "ClinicalDocument/component/nonXMLBody/text";
        if (text is null) { error(path, "nonXMLBody has no text."); return null; }
        var mediaType = (string?)text.Attribute("mediaType");
        if (mediaType is not ("application/pdf" or "text/plain" or "image/jpeg" or "image/tiff" or "text/rtf"))
        {
            error($"{path}/@mediaType", "nonXMLBody/text/@mediaType must be one of the CI-SIS level 1 formats (application/pdf, text/plain, image/jpeg, image/tiff, text/rtf).");
            return null;
        }
        if ((string?)text.Attribute("representation") != "B64") { error($"{path}/@representation", "The embedded document must be base64 (representation=\"B64\")."); return null; }
        try
        {
            var data = Convert.FromBase64String(text.Value.Trim());
            if (data.Length == 0) { error(path, "The embedded document is empty."); return null; }
            if (mediaType == "application/pdf" && !data.AsSpan().StartsWith("%PDF-"u8)) { error(path, "The embedded document is declared application/pdf but is not a PDF."); return null; }
            return (mediaType, data);
        }
        catch (FormatException)
        {
            error(path, "The embedded document is not valid base64.");
            return null;
        }
    }

    /// <summary>
    /// A CDA TS (YYYYMMDD[HHMM[SS[.fff]]][+-ZZZZ]) as a FHIR date or dateTime. A time needs its time zone, as CI-SIS
    /// requires: guessing one would move the instant.
    /// </summary>
    public static string? DateTime(XElement? element, string path, Action<string, string> error, bool required)
    {
        var value = (string?)element?.Attribute("value");
        if (string.IsNullOrWhiteSpace(value))
        {
            if (required) error(path, "The date (@value) is missing.");
            return null;
        }
        value = value.Trim();
        var zoneAt = value.Length > 4 ? value.IndexOfAny(['+', '-'], 4) : -1;
        var local = zoneAt < 0 ? value : value[..zoneAt];
        var zone = zoneAt < 0 ? null : value[zoneAt..];
        var dot = local.IndexOf('.');
        if (dot >= 0) local = local[..dot];
        if (!local.All(char.IsAsciiDigit) || local.Length is not (4 or 6 or 8 or 10 or 12 or 14) || zone is not null && (zone.Length != 5 || !zone[1..].All(char.IsAsciiDigit)))
        {
            error(path, "The date is not a CDA TS (YYYYMMDD[HHMM[SS]][+ZZZZ]).");
            return null;
        }
        var sb = new StringBuilder(local[..4]);
        if (local.Length >= 6) sb.Append('-').Append(local[4..6]);
        if (local.Length >= 8) sb.Append('-').Append(local[6..8]);
        if (local.Length >= 10)
        {
            if (zone is null)
            {
                error(path, "The date has a time but no time zone (+HHMM).");
                return null;
            }
            sb.Append('T').Append(local[8..10]).Append(':').Append(local.Length >= 12 ? local[10..12] : "00").Append(':').Append(local.Length >= 14 ? local[12..14] : "00");
            sb.Append(zone[..3]).Append(':').Append(zone[3..]);
        }
        var fhir = sb.ToString();
        if (!Hl7.Fhir.ElementModel.Types.DateTime.TryParse(fhir, out _))
        {
            error(path, "The date is not a valid calendar date.");
            return null;
        }
        return fhir;
    }

    private static string Collapse(string text) => string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
}
