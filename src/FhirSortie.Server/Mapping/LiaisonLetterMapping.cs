using System.Net;
using System.Security.Cryptography;
using FhirSortie.Server.Rest;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;

namespace FhirSortie.Server.Mapping;

/// <summary>
/// A CI-SIS LDL-SES document as one FHIR transaction: Patient (FR Core, INS), Practitioners (RPPS), custodian
/// Organization (FINESS), the original as Binary, and
/// - level 3 (structuredBody): a LiaisonLetter Composition whose sections come from the CDA sections the
///   ConceptMap ldl-ses-sections maps, and one ExitPrescription per medicine of the treatments section;
/// - level 1 (nonXMLBody): the embedded document (PDF) as a second Binary; no Composition, since a LiaisonLetter
///   needs coded sections that a PDF does not give;
/// and a DocumentReference in the PDSm shape pointing at the Binaries.
/// Every entry is a conditional create on a business identifier derived from the document, so importing the same
/// document again creates nothing and returns the resources already there.
/// </summary>
public sealed class LiaisonLetterMapping(ConceptMaps maps, Normalizer normalizer, Profiles.ProfileRegistry? registry)
{
    public const string LiaisonLetterProfile = "https://fhirsortie.fr/fhir/StructureDefinition/LiaisonLetter";
    public const string ExitPrescriptionProfile = "https://fhirsortie.fr/fhir/StructureDefinition/ExitPrescription";
    public const string FrCorePatient = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient";
    public const string FrCorePatientIns = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins";
    public const string FrCorePractitioner = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner";
    public const string FrCoreOrganization = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-organization";
    public const string IdentityReliability = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability";
    public const string IdentityStatus = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status";

    /// <summary>Tags the Binaries of an import so that a re-import finds them (Binary has no identifier to search on).</summary>
    public const string ImportTag = "https://fhirsortie.fr/fhir/CodeSystem/cda-import";

    /// <summary>Entries without a CDA id get an identifier made of the document id and the entry's path.</summary>
    public const string EntryIdentifierSystem = "https://fhirsortie.fr/fhir/NamingSystem/cda-entry";

    public const string SectionMap = "https://fhirsortie.fr/fhir/ConceptMap/ldl-ses-sections";
    public const string SectionValueSet = "https://fhirsortie.fr/fhir/ValueSet/liaison-letter-sections";

    /// <summary>NOS TRE_A06-FormatCodeComplementaire: CI-SIS format codes (urn:asip:ci-sis:ldl-ses:2017).</summary>
    public const string FormatCodeComplementaire = "https://mos.esante.gouv.fr/NOS/TRE_A06-FormatCodeComplementaire/FHIR/TRE-A06-FormatCodeComplementaire";
    /// <summary>
    /// IHE format codes, with IHE's own FHIR system URL as profiles/ ships them (the NOS republishes the same codes as
    /// TRE_A11): urn:ihe:iti:xds-sd:pdf:2008 for a CDA wrapping a PDF, mimeTypeSufficient for the PDF itself.
    /// </summary>
    public const string IheFormatCode = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode";
    /// <summary>NOS TRE_A03-ClasseDocument (PDSm DocumentReference.category).</summary>
    public const string ClasseDocument = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument";

    /// <summary>
    /// The media type of a CDA document in XDS/DMP document metadata (mimeType text/xml); application/hl7-cda+xml is
    /// accepted on input.
    /// </summary>
    public const string CdaMediaType = "text/xml";

    /// <summary>What the import did not carry over, reported with the DocumentReference's entry.</summary>
    public sealed record Result(Bundle Transaction, int DocumentReferenceEntry, IReadOnlyList<OperationOutcome.IssueComponent> Notes);

    public Result Map(CdaDocument cda, byte[] original)
    {
        var notes = new List<OperationOutcome.IssueComponent>();
        var errors = new List<OperationOutcome.IssueComponent>();
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        string Add(Resource resource, Identifier? key, string? tag = null)
        {
            var fullUrl = "urn:uuid:" + Guid.NewGuid();
            var condition = key is not null ? $"identifier={Token(key.System, key.Value)}" : tag is not null ? $"_tag={Token(ImportTag, tag)}" : null;
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = fullUrl,
                Resource = resource,
                Request = new Bundle.RequestComponent { Method = Bundle.HTTPVerb.POST, Url = resource.TypeName, IfNoneExist = condition },
            });
            return fullUrl;
        }

        var documentId = DocumentIdentifier(cda.Id);
        var security = new Coding(NationalSystems.Confidentiality, cda.Confidentiality);

        var (patient, patientKey) = Patient(cda.Patient, notes);
        var patientUrl = Add(patient, patientKey);

        var practitioners = new Dictionary<string, string>(StringComparer.Ordinal);
        string? PractitionerUrl(CdaPerson? person)
        {
            if (person is null) return null;
            var practitioner = Practitioner(person);
            var key = practitioner.Identifier.FirstOrDefault(i => i.System == NationalSystems.IdNatPs) ?? practitioner.Identifier[0];
            var k = key.System + "|" + key.Value;
            if (!practitioners.TryGetValue(k, out var url)) practitioners[k] = url = Add(practitioner, key);
            return url;
        }
        var authorUrls = cda.Authors.Select(PractitionerUrl).OfType<string>().Distinct().ToList();
        var legalUrl = PractitionerUrl(cda.LegalAuthenticator);

        var organization = Organization(cda.Custodian);
        var organizationKey = organization.Identifier.FirstOrDefault(i => i.System == NationalSystems.IdNatSt) ?? organization.Identifier[0];
        var organizationUrl = Add(organization, organizationKey);

        var documentReference = new DocumentReference();
        var documentReferenceUrl = "urn:uuid:" + Guid.NewGuid();

        var originalBinary = new Binary
        {
            ContentType = CdaMediaType,
            Data = original,
            Meta = new Meta { Tag = [new Coding(ImportTag, cda.Id + "#original")], Security = [(Coding)security.DeepCopy()] },
            SecurityContext = new ResourceReference(documentReferenceUrl),
        };
        var originalUrl = Add(originalBinary, null, cda.Id + "#original");
        var contents = new List<DocumentReference.ContentComponent>
        {
            new()
            {
                Attachment = Attachment(CdaMediaType, original, originalUrl, cda),
                Format = cda.IsStructured
                    // CI-SIS format code of LDL-SES (TRE_A06; the same code the NOS ConceptMap gives for template 1.2.250.1.213.1.1.1.29).
                    ? new Coding(FormatCodeComplementaire, "urn:asip:ci-sis:ldl-ses:2017", "Lettre de liaison à la sortie d'un établissement de santé")
                    : cda.NonXmlBody!.Value.MediaType == "application/pdf"
                        ? new Coding(IheFormatCode, "urn:ihe:iti:xds-sd:pdf:2008", "Document à corps non structuré en PDF/A-1")
                        : null,
            },
        };

        string? compositionUrl = null;
        if (cda.NonXmlBody is { } body)
        {
            var rendition = new Binary
            {
                ContentType = body.MediaType,
                Data = body.Data,
                Meta = new Meta { Tag = [new Coding(ImportTag, cda.Id + "#body")], Security = [(Coding)security.DeepCopy()] },
                SecurityContext = new ResourceReference(documentReferenceUrl),
            };
            var renditionUrl = Add(rendition, null, cda.Id + "#body");
            contents.Add(new DocumentReference.ContentComponent
            {
                Attachment = Attachment(body.MediaType, body.Data, renditionUrl, cda),
                // PDSm requires a format on every content; for the rendition its MIME type says all.
                Format = new Coding(IheFormatCode, "urn:ihe:iti:xds:2017:mimeTypeSufficient", "mimeType Sufficient"),
            });
        }
        else
        {
            var composition = new Composition
            {
                Meta = new Meta { Profile = [LiaisonLetterProfile], Security = [(Coding)security.DeepCopy()] },
                Identifier = documentId,
                Status = CompositionStatus.Final,
                Type = new CodeableConcept(NationalSystems.Loinc, CdaDocument.LiaisonLetterLoinc, "Lettre de liaison à la sortie d'un établissement de soins"),
                Subject = new ResourceReference(patientUrl),
                DateElement = new FhirDateTime(cda.Date),
                Author = authorUrls.Select(u => new ResourceReference(u)).ToList(),
                Title = cda.Title,
                Confidentiality = EnumUtility.ParseLiteral<Composition.V3ConfidentialityClassification>(cda.Confidentiality),
                Custodian = new ResourceReference(organizationUrl),
            };
            if (legalUrl is not null)
            {
                composition.Attester.Add(new Composition.AttesterComponent
                {
                    Mode = Composition.CompositionAttestationMode.Legal,
                    TimeElement = cda.LegalAuthenticationTime is { } t ? new FhirDateTime(t) : null,
                    Party = new ResourceReference(legalUrl),
                });
            }
            foreach (var section in cda.Sections)
            {
                var mapped = SectionCode(section);
                if (mapped is null)
                {
                    notes.Add(Note($"Section '{section.Title ?? "(untitled)"}' ({section.Code?.System}|{section.Code?.Code}) has no LiaisonLetter section in ConceptMap {SectionMap}; it is kept in the original document only.", section.Path));
                    continue;
                }
                var target = new Composition.SectionComponent
                {
                    Title = section.Title ?? mapped.Display ?? mapped.Code,
                    Code = new CodeableConcept { Coding = [mapped] },
                };
                if (section.Narrative is { } div) target.Text = new Narrative { Status = Narrative.NarrativeStatus.Generated, Div = div };
                foreach (var medication in section.Medications)
                {
                    var request = Prescription(medication, cda, documentId, patientUrl, authorUrls.FirstOrDefault(), errors);
                    if (request is null) continue;
                    target.Entry.Add(new ResourceReference(Add(request, request.Identifier[0])));
                }
                foreach (var appointment in section.Appointments)
                {
                    var booked = Appointment(appointment, cda, patientUrl);
                    target.Entry.Add(new ResourceReference(Add(booked, booked.Identifier[0])));
                }
                if (target.Text is null && target.Entry.Count == 0)
                    target.EmptyReason = new CodeableConcept("http://terminology.hl7.org/CodeSystem/list-empty-reason", "unavailable");
                composition.Section.Add(target);
            }
            if (composition.Section.Count == 0)
            {
                errors.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Required,
                    $"No section of the document maps to a LiaisonLetter section (ConceptMap {SectionMap}).", "ClinicalDocument/component/structuredBody"));
            }
            compositionUrl = Add(composition, documentId);
        }
        if (errors.Count > 0)
        {
            var outcome = new OperationOutcome();
            outcome.Issue.AddRange(errors);
            throw new FhirException(HttpStatusCode.UnprocessableEntity, outcome);
        }

        // The PDSm comprehensive DocumentReference shape (ANS PDSm IG, profile pdsm-comprehensive-document-reference).
        // The profile is claimed once profiles/ ships it (another branch writes it), so that it checks this shape then.
        if (registry?.Profiles.FirstOrDefault(p => p.Type == "DocumentReference" && p.Url.Contains("pdsm", StringComparison.OrdinalIgnoreCase)) is { } pdsm)
            documentReference.Meta = new Meta { Profile = [pdsm.Url] };
        (documentReference.Meta ??= new Meta()).Security.Add((Coding)security.DeepCopy());
        documentReference.MasterIdentifier = documentId;
        // Every version of the document shares the setId: a corrected letter finds the one it replaces (LetterVersions).
        if (cda.SetId is { } setId) documentReference.Identifier.Add(LetterVersions.SetIdentifier(setId, cda.Version));
        documentReference.Status = DocumentReferenceStatus.Current;
        documentReference.DocStatus = CompositionStatus.Final;
        documentReference.Type = new CodeableConcept(NationalSystems.Loinc, CdaDocument.LiaisonLetterLoinc, "Lettre de liaison à la sortie d'un établissement de soins");
        // TRE_A03 class 10 "Compte-rendu": the class the PDSm example gives a discharge summary. Assumed, not taken
        // from the CI-SIS type-to-class table, which we did not have.
        documentReference.Category = [new CodeableConcept(ClasseDocument, "10", "Compte-rendu")];
        documentReference.Subject = new ResourceReference(patientUrl);
        documentReference.Date = DateTimeOffset.UtcNow; // PDSm: when the DocumentReference was created
        documentReference.Author = authorUrls.Select(u => new ResourceReference(u)).ToList();
        if (legalUrl is not null) documentReference.Authenticator = new ResourceReference(legalUrl);
        documentReference.Custodian = new ResourceReference(organizationUrl);
        documentReference.Description = cda.Title;
        documentReference.SecurityLabel = [new CodeableConcept { Coding = [(Coding)security.DeepCopy()] }];
        documentReference.Content = contents;
        documentReference.Context = new DocumentReference.ContextComponent
        {
            Period = new Period { Start = cda.PeriodStart ?? cda.Date, End = cda.PeriodEnd },
            SourcePatientInfo = new ResourceReference(patientUrl),
        };
        if (compositionUrl is not null) documentReference.Context.Related.Add(new ResourceReference(compositionUrl));
        bundle.Entry.Add(new Bundle.EntryComponent
        {
            FullUrl = documentReferenceUrl,
            Resource = documentReference,
            Request = new Bundle.RequestComponent
            {
                Method = Bundle.HTTPVerb.POST, Url = "DocumentReference",
                IfNoneExist = $"identifier={Token(documentId.System, documentId.Value)}",
            },
        });
        return new Result(bundle, bundle.Entry.Count - 1, notes);
    }

    private (Patient, Identifier) Patient(CdaPatient cda, List<OperationOutcome.IssueComponent> notes)
    {
        var patient = new Patient
        {
            Identifier = cda.Ids.Select(i => new Identifier(NationalSystems.FromCdaRoot(i.Root), i.Extension)).ToList(),
            Name = cda.Names.ToList(),
            Gender = cda.Gender,
            BirthDate = cda.BirthDate,
        };
        var ins = patient.Identifier.FirstOrDefault(i => i.System is { } s && NationalSystems.Ins.Contains(s));
        if (ins is not null)
        {
            ins.Use = Identifier.IdentifierUse.Official;
            // Référentiel INS / CI-SIS: a document carries the INS in its header only for a qualified identity, so the
            // identity it describes is QUAL.
            patient.Meta = new Meta { Profile = [FrCorePatientIns] };
            patient.Extension.Add(new Extension
            {
                Url = IdentityReliability,
                Extension = [new Extension("identityStatus", new Coding(IdentityStatus, "QUAL"))],
            });
        }
        else
        {
            patient.Meta = new Meta { Profile = [FrCorePatient] };
            notes.Add(Note("The patient has no INS in the document: it is matched on its local identifier only, with an unqualified identity.",
                "ClinicalDocument/recordTarget/patientRole/id"));
        }
        return (patient, ins ?? patient.Identifier[0]);
    }

    private Practitioner Practitioner(CdaPerson person)
    {
        var practitioner = new Practitioner
        {
            Meta = new Meta { Profile = [FrCorePractitioner] },
            Identifier = person.Ids.Select(i => new Identifier(NationalSystems.FromCdaRoot(i.Root), i.Extension)).ToList(),
        };
        if (person.Name is { } name && (name.Family is not null || name.Given.Any())) practitioner.Name.Add(name);
        normalizer.Normalize(practitioner); // idNatPs "8" + RPPS gives the RPPS identifier too
        return practitioner;
    }

    private Organization Organization(CdaOrganization cda)
    {
        var organization = new Organization
        {
            Meta = new Meta { Profile = [FrCoreOrganization] },
            Identifier = cda.Ids.Select(i => new Identifier(NationalSystems.FromCdaRoot(i.Root), i.Extension)).ToList(),
            Name = cda.Name,
        };
        normalizer.Normalize(organization); // idNatSt "1" + FINESS gives the FINESS identifier too
        return organization;
    }

    private MedicationRequest? Prescription(CdaMedication medication, CdaDocument cda, Identifier documentId, string patientUrl, string? requesterUrl,
        List<OperationOutcome.IssueComponent> errors)
    {
        var concept = new CodeableConcept { Coding = medication.Codes.Select(c => (Coding)c.DeepCopy()).ToList(), Text = medication.Text };
        var request = new MedicationRequest
        {
            Meta = new Meta { Profile = [ExitPrescriptionProfile] },
            Identifier = [medication.Id is { } id ? DocumentIdentifier(id) : new Identifier(EntryIdentifierSystem, $"{cda.Id}/{medication.Path}")],
            Status = MedicationRequest.MedicationrequestStatus.Active,
            Intent = MedicationRequest.MedicationRequestIntent.Order,
            Medication = concept,
            Subject = new ResourceReference(patientUrl),
            AuthoredOn = cda.Date,
            Requester = requesterUrl is null ? null : new ResourceReference(requesterUrl),
        };
        normalizer.Normalize(request); // local codes through the ConceptMaps, OID systems to URIs
        if (!concept.Coding.Any(c => c.System is { } s && NationalSystems.Medicines.Contains(s)))
        {
            errors.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.CodeInvalid,
                "The medicine is not coded in ATC or CIS, and no ConceptMap of profiles/ translates its code.",
                $"{medication.Path}/consumable/manufacturedProduct/manufacturedMaterial/code"));
            return null;
        }
        var dosage = new Dosage { Text = medication.Text };
        if (medication.Every is { } every)
        {
            var unit = EnumUtility.ParseLiteral<Timing.UnitsOfTime>(every.Unit);
            if (unit is null)
            {
                errors.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Value,
                    "The administration period unit is not a UCUM time unit (s, min, h, d, wk, mo, a).", $"{medication.Path}/effectiveTime/period/@unit"));
                return null;
            }
            dosage.Timing = new Timing { Repeat = new Timing.RepeatComponent { Frequency = 1, Period = every.Value, PeriodUnit = unit } };
        }
        if (medication.Route is { } route) dosage.Route = new CodeableConcept { Coding = [route] };
        if (medication.Dose is { } dose) dosage.DoseAndRate.Add(new Dosage.DoseAndRateComponent { Dose = dose });
        if (dosage.Text is null && dosage.Timing is null && dosage.DoseAndRate.Count == 0)
        {
            errors.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Required,
                "The medicine has no dosage: neither a narrative (text/reference), a period (PIVL_TS) nor a doseQuantity.", medication.Path));
            return null;
        }
        request.DosageInstruction.Add(dosage);
        request.DispenseRequest = new MedicationRequest.DispenseRequestComponent
        {
            ValidityPeriod = new Period { Start = medication.Start ?? cda.Date, End = medication.End },
            Quantity = medication.Supply,
        };
        return request;
    }

    /// <summary>
    /// A follow-up appointment: booked (APT) with its start and end when the document gives both instants; otherwise
    /// proposed, the date going to requestedPeriod (an Appointment has both start and end, or neither).
    /// </summary>
    private static Appointment Appointment(CdaAppointment cda, CdaDocument document, string patientUrl)
    {
        var exact = cda.Booked && cda.Start is { Length: > 10 } && cda.End is { Length: > 10 };
        var appointment = new Appointment
        {
            Identifier = [cda.Id is { } id ? DocumentIdentifier(id) : new Identifier(EntryIdentifierSystem, $"{document.Id}/{cda.Path}")],
            Status = exact ? Hl7.Fhir.Model.Appointment.AppointmentStatus.Booked : Hl7.Fhir.Model.Appointment.AppointmentStatus.Proposed,
            Description = cda.Place is null ? cda.Text : cda.Text is null ? cda.Place : $"{cda.Text} ({cda.Place})",
            Participant = [new Hl7.Fhir.Model.Appointment.ParticipantComponent
            {
                Actor = new ResourceReference(patientUrl),
                Status = ParticipationStatus.Accepted,
            }],
        };
        if (exact)
        {
            appointment.Start = DateTimeOffset.Parse(cda.Start!, System.Globalization.CultureInfo.InvariantCulture);
            appointment.End = DateTimeOffset.Parse(cda.End!, System.Globalization.CultureInfo.InvariantCulture);
        }
        else if (cda.Start is not null)
        {
            appointment.RequestedPeriod.Add(new Period { Start = cda.Start, End = cda.End });
        }
        return appointment;
    }

    private Coding? SectionCode(CdaSection section)
    {
        if (section.Code is not { System: { } system, Code: { } code }) return null;
        var map = maps.ByUrl(SectionMap);
        if (map is null) return null;
        var match = maps.Translate(system, code, target: SectionValueSet, within: [map]).FirstOrDefault(Normalizer.Usable);
        return match?.Concept;
    }

    /// <summary>The document's id as an identifier: urn:oid:root|extension, or the root alone as a URI (RFC 3986).</summary>
    public static Identifier DocumentIdentifier(CdaId id) => id.Extension is { } extension
        ? new Identifier("urn:oid:" + id.Root, extension)
        : new Identifier("urn:ietf:rfc:3986", Urn(id.Root));

    private static string Urn(string root) => Guid.TryParse(root, out _) ? "urn:uuid:" + root.ToLowerInvariant() : "urn:oid:" + root;

    private static Attachment Attachment(string contentType, byte[] data, string url, CdaDocument cda) => new()
    {
        ContentType = contentType,
        Language = cda.Language ?? "fr-FR",
        Url = url,
        SizeUnsignedInt = data.Length,
        Hash = SHA1.HashData(data), // PDSm: SHA-1 of the document, as XDS hash
        Title = cda.Title,
        CreationElement = new FhirDateTime(cda.Date),
    };

    /// <summary>
    /// A token search value system|value, escaped for FHIR search (\ , | $), then for a query string unless
    /// <paramref name="escapeForUrl"/> is false (a value given to the search engine as a parsed parameter).
    /// </summary>
    internal static string Token(string? system, string? value, bool escapeForUrl = true) => escapeForUrl
        ? Uri.EscapeDataString(Escape(system ?? "")) + "|" + Uri.EscapeDataString(Escape(value ?? ""))
        : Escape(system ?? "") + "|" + Escape(value ?? "");

    private static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace(",", "\\,", StringComparison.Ordinal)
             .Replace("|", "\\|", StringComparison.Ordinal).Replace("$", "\\$", StringComparison.Ordinal);

    /// <summary>An information issue of the import, at the CDA path <paramref name="expression"/>.</summary>
    internal static OperationOutcome.IssueComponent Note(string diagnostics, string expression) =>
        Outcomes.Issue(OperationOutcome.IssueSeverity.Information, OperationOutcome.IssueType.Informational, diagnostics, expression);
}
