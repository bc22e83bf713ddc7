using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Hl7.Fhir.Model;
using FhirTask = Hl7.Fhir.Model.Task;

namespace FhirSortie.Server.Portal;

/// <summary>
/// What the exit-package form writes, and for whom: the person, my organisation (the USMP), the signed-in prescriber
/// (their Practitioner), the receiving organisation chosen in the directory, and the package as it stands (to complete it).
/// </summary>
public sealed record ExitPackageContext(string PatientId, string OrganizationId, string Finess, string PractitionerId, DateTimeOffset Now)
{
    public Encounter? Stay { get; init; }
    public string? StayVersion { get; init; }
    public string? ReceiverId { get; init; }
    public string? ReceiverName { get; init; }
    public ServiceRequest? Referral { get; init; }
    public bool HasLetter { get; init; }
    public bool HasAppointment { get; init; }
    public bool HasPrescription { get; init; }
    public bool HasNaloxone { get; init; }
}

/// <summary>
/// Builds, from the form, the transaction Bundle a USMP's software posts (conformance/scenarios/exit-package-transaction.json):
/// the DetentionStay, ExitPrescriptions with their bridging-supply extension, the naloxone MedicationDispense, the letter
/// (a PDSm DocumentReference, text or PDF), the ExitReferral with its ExitHandoffTask, the Location and the Appointment.
/// Everything the USMP may correct is a conditional update on a business identifier derived from the form's key, the
/// hand-off Task and the place a conditional create: submitting twice, or completing later, never duplicates.
/// <see cref="Build"/> also says which form field each entry comes from, to put the gateway's errors back next to it.
/// </summary>
public static class ExitPackageTransaction
{
    public const string StayProfile = "https://fhirsortie.fr/fhir/StructureDefinition/DetentionStay";
    public const string PrescriptionProfile = "https://fhirsortie.fr/fhir/StructureDefinition/ExitPrescription";
    public const string ReferralProfile = "https://fhirsortie.fr/fhir/StructureDefinition/ExitReferral";
    public const string LetterProfile = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/PDSmComprehensiveDocumentReference";
    public const string PackageStatus = "https://fhirsortie.fr/fhir/CodeSystem/exit-package-status";
    public const string ExitKinds = "https://fhirsortie.fr/fhir/CodeSystem/exit-kind";
    public const string EncounterTypes = "https://fhirsortie.fr/fhir/CodeSystem/exit-encounter-type";
    public const string ReferralTypes = "https://fhirsortie.fr/fhir/CodeSystem/exit-referral-type";
    public const string HandoffStatus = "https://fhirsortie.fr/fhir/CodeSystem/exit-handoff-status";
    public const string Atc = "http://www.whocc.no/atc";
    public const string Ucum = "http://unitsofmeasure.org";
    private static readonly TimeZoneInfo Paris = TimeZoneInfo.FindSystemTimeZoneById("Europe/Paris");

    /// <summary>The portal's business identifiers: one namespace per USMP (FINESS) and kind.</summary>
    public static string IdentifierSystem(string finess, string kind) => $"https://fhirsortie.fr/portail/{finess}/{kind}";

    /// <summary>The Bundle and, per entry, the form field (or line prefix) it was built from.</summary>
    public sealed record Built(Bundle Bundle, IReadOnlyList<string> Fields);

    public static Built Build(ExitPackageForm form, ExitPackageContext context)
    {
        var bundle = new Bundle { Type = Bundle.BundleType.Transaction };
        var fields = new List<string>();
        string Add(Resource resource, string field, Bundle.HTTPVerb method, string url, string? ifNoneExist = null)
        {
            var fullUrl = "urn:uuid:" + Guid.NewGuid();
            bundle.Entry.Add(new Bundle.EntryComponent
            {
                FullUrl = fullUrl,
                Resource = resource,
                Request = new Bundle.RequestComponent { Method = method, Url = url, IfNoneExist = ifNoneExist },
            });
            fields.Add(field);
            return fullUrl;
        }
        Identifier Id(string kind, string suffix = "") => new(IdentifierSystem(context.Finess, kind), form.Key + suffix);
        string Conditional(string type, Identifier id) => $"{type}?identifier={id.System}|{id.Value}";

        var patient = new ResourceReference("Patient/" + context.PatientId);
        var usmp = new ResourceReference("Organization/" + context.OrganizationId);
        var prescriber = new ResourceReference("Practitioner/" + context.PractitionerId);
        var release = ReleaseInstant(form);
        var today = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(context.Now, Paris).Date);

        // The stay: the existing one completed in place (only what the form says changes), or a new one.
        var stay = (Encounter?)context.Stay?.DeepCopy() ?? new Encounter
        {
            Identifier = [Id("sejour")],
            Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
            Subject = patient,
            Participant = [new Encounter.ParticipantComponent { Individual = prescriber }],
            ServiceProvider = usmp,
            Period = new Period(),
        };
        stay.Meta ??= new Meta();
        if (!stay.Meta.Profile.Contains(StayProfile)) stay.Meta.Profile = [.. stay.Meta.Profile, StayProfile];
        if (!stay.Type.Any(t => t.Coding.Any(c => c.System == EncounterTypes)))
        {
            var type = stay.Type.FirstOrDefault() ?? new CodeableConcept { Text = "Suivi sanitaire pendant la détention" };
            type.Coding.Add(new Coding(EncounterTypes, "detention-stay"));
            if (stay.Type.Count == 0) stay.Type.Add(type);
        }
        if (stay.Identifier.Count == 0) stay.Identifier.Add(Id("sejour"));
        stay.Period ??= new Period();
        // A stay being completed keeps its entry instant unless the date shown was changed.
        if (ExitPackageForm.ParseDate(form.Entry) is { } entry && (context.Stay is null || PortalPage.Date(stay.Period.Start) != form.Entry))
            stay.Period.Start = entry.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        // period.end is the release date: planned while in progress, actual once finished (DetentionStay).
        stay.Period.End = release is { } r ? Instant(r) : null;
        stay.Status = form.Released ? Encounter.EncounterStatus.Finished : Encounter.EncounterStatus.InProgress;
        if (form.ExitKind.Length > 0 || form.Destination.Length > 0)
        {
            stay.Hospitalization ??= new Encounter.HospitalizationComponent();
            if (form.ExitKind.Length > 0)
            {
                var label = ExitPackageForm.ExitKinds.FirstOrDefault(k => k.Code == form.ExitKind).Label;
                var text = stay.Hospitalization.DischargeDisposition?.Text;
                stay.Hospitalization.DischargeDisposition = new CodeableConcept(ExitKinds, form.ExitKind, label) { Text = text };
            }
            if (form.Destination.Length > 0) stay.Hospitalization.Destination = new ResourceReference { Display = form.Destination };
        }
        var stayIdentifier = stay.Identifier[0];
        var stayUrl = stay.Id is { } stayId
            ? Add(stay, "sejour", Bundle.HTTPVerb.PUT, "Encounter/" + stayId)
            : Add(stay, "sejour", Bundle.HTTPVerb.PUT, Conditional("Encounter", stayIdentifier));
        if (stay.Id is not null && context.StayVersion is { } version) bundle.Entry[^1].Request!.IfMatch = version;
        var stayRef = new ResourceReference(stayUrl);

        string? naloxonePrescription = null;
        string? firstPrescription = null;
        foreach (var line in form.Prescriptions.Where(l => !l.IsEmpty))
        {
            var request = Prescription(form, line, patient, stayRef, prescriber, release, today);
            var id = Id("prescription", "-" + line.Number);
            request.Identifier = [id];
            var url = Add(request, line.Prefix, Bundle.HTTPVerb.PUT, Conditional("MedicationRequest", id));
            firstPrescription ??= url;
            if (line.Code == "V03AB15") naloxonePrescription ??= url;
        }

        if (form.Naloxone == "oui" && !context.HasNaloxone)
        {
            var id = Id("dispensation", "-naloxone");
            var dispense = new MedicationDispense
            {
                Identifier = [id],
                Status = MedicationDispense.MedicationDispenseStatusCodes.Completed,
                Medication = new CodeableConcept(Atc, "V03AB15", "naloxone", "naloxone"),
                Subject = patient,
                Context = stayRef,
                Quantity = new Quantity { Value = 1, Unit = "kit" },
                WhenHandedOver = release is { } handed ? Instant(handed) : null,
                Note = [new Annotation { Text = "Kit de naloxone remis à la sortie" }],
            };
            if (naloxonePrescription is not null) dispense.AuthorizingPrescription = [new ResourceReference(naloxonePrescription)];
            Add(dispense, "naloxone", Bundle.HTTPVerb.PUT, Conditional("MedicationDispense", id));
        }

        if (!context.HasLetter && (form.LetterText.Trim().Length > 0 || form.LetterPdf is not null))
        {
            var id = Id("lettre");
            Add(Letter(form, context, id, patient, stayRef, stay, prescriber, usmp), "lettre", Bundle.HTTPVerb.PUT, Conditional("DocumentReference", id));
        }

        // The referral and its hand-off: a new one to the organisation chosen in the directory, or the one already there.
        string? referralUrl = context.Referral?.Id is { } referralId ? "ServiceRequest/" + referralId : null;
        var receiverId = context.ReceiverId;
        if (context.Referral is null && receiverId is not null)
        {
            var id = Id("adressage");
            var referral = new ServiceRequest
            {
                Meta = new Meta { Profile = [ReferralProfile] },
                Identifier = [id],
                Status = RequestStatus.Active,
                Intent = RequestIntent.Order,
                Code = new CodeableConcept(ReferralTypes, form.ReferralType, ExitPackageForm.ReferralTypes.FirstOrDefault(t => t.Code == form.ReferralType).Label)
                    { Text = ExitPackageForm.ReferralTypes.FirstOrDefault(t => t.Code == form.ReferralType).Label },
                Subject = patient,
                Encounter = stayRef,
                AuthoredOn = today.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                Requester = prescriber,
                Performer = [new ResourceReference("Organization/" + receiverId, context.ReceiverName)],
                Occurrence = release is { } from
                    ? new Period { Start = Day(from), End = Day(from.AddDays(7)) }
                    : new FhirDateTime(today.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)),
            };
            if (form.ReferralReason.Length > 0) referral.ReasonCode = [new CodeableConcept { Text = form.ReferralReason }];
            if (firstPrescription is not null) referral.SupportingInfo = [new ResourceReference(firstPrescription)];
            referralUrl = Add(referral, "adressage", Bundle.HTTPVerb.PUT, Conditional("ServiceRequest", id));

            var taskId = Id("relais");
            var task = new FhirTask
            {
                Meta = new Meta { Profile = [Exit.HandoffTasks.Profile] },
                Identifier = [taskId],
                Status = FhirTask.TaskStatus.Requested,
                BusinessStatus = new CodeableConcept(HandoffStatus, "sent"),
                Intent = FhirTask.TaskIntent.Order,
                Code = new CodeableConcept(Exit.HandoffTasks.TaskTypes, Exit.HandoffTasks.HandoffCode),
                BasedOn = [new ResourceReference(referralUrl)],
                Focus = new ResourceReference(referralUrl),
                For = patient,
                AuthoredOn = Instant(context.Now),
                Requester = usmp,
                Owner = new ResourceReference("Organization/" + receiverId, context.ReceiverName),
                Description = "Prise en charge à la sortie de détention" + (form.ReferralReason.Length > 0 ? " : " + form.ReferralReason : ""),
            };
            Add(task, "relais", Bundle.HTTPVerb.POST, "Task", $"identifier={taskId.System}|{taskId.Value}");
        }
        else if (context.Referral is not null)
        {
            receiverId = PortalData.IdOf(context.Referral.Performer.FirstOrDefault(), "Organization");
        }

        if (!context.HasAppointment && ExitPackageForm.ParseDate(form.AppointmentDate) is { } day && ExitPackageForm.ParseTime(form.AppointmentTime) is { } time
            && form.AppointmentPlace.Length > 0)
        {
            var start = ParisInstant(day, time);
            // The place: one Location per organisation and wording (its identifier is derived from both), managed by the receiver.
            var placeKey = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes((receiverId ?? "") + "|" + form.AppointmentPlace.ToUpperInvariant())))[..16].ToLowerInvariant();
            var placeId = new Identifier(IdentifierSystem(context.Finess, "lieu"), placeKey);
            var location = new Location { Identifier = [placeId], Status = Location.LocationStatus.Active, Name = form.AppointmentPlace };
            if (receiverId is not null) location.ManagingOrganization = new ResourceReference("Organization/" + receiverId);
            var place = Add(location, "rdv-lieu", Bundle.HTTPVerb.POST, "Location", $"identifier={placeId.System}|{placeId.Value}");
            var id = Id("rendez-vous");
            var appointment = new Appointment
            {
                Identifier = [id],
                Status = Appointment.AppointmentStatus.Booked,
                Description = "Premier rendez-vous" + (context.ReceiverName is { } name ? " — " + name : ""),
                Start = start,
                End = start.AddMinutes(45),
                Participant =
                [
                    new Appointment.ParticipantComponent { Actor = patient, Status = ParticipationStatus.Accepted },
                    new Appointment.ParticipantComponent { Actor = new ResourceReference(place, form.AppointmentPlace), Status = ParticipationStatus.Accepted },
                ],
            };
            if (referralUrl is not null) appointment.BasedOn = [new ResourceReference(referralUrl)];
            Add(appointment, "rdv", Bundle.HTTPVerb.PUT, Conditional("Appointment", id));
        }

        // Complete once it holds a letter, a prescription, a referral and an appointment; the tag is the stay's own (fs-stay-4).
        var complete = (context.HasLetter || fields.Contains("lettre")) && (context.HasPrescription || firstPrescription is not null)
            && referralUrl is not null && (context.HasAppointment || fields.Contains("rdv"));
        stay.Meta.Tag = [.. stay.Meta.Tag.Where(t => t.System != PackageStatus), new Coding(PackageStatus, complete ? "complete" : "incomplete")];
        return new Built(bundle, fields);
    }

    private static MedicationRequest Prescription(ExitPackageForm form, PrescriptionLine line, ResourceReference patient, ResourceReference stay,
        ResourceReference prescriber, DateTimeOffset? release, DateOnly today)
    {
        var name = ExitPackageForm.Medications.FirstOrDefault(m => m.Code == line.Code).Label;
        var dose = ExitPackageForm.Number(line.Dose);
        var days = ExitPackageForm.WholeNumber(line.Duration);
        var frequency = ExitPackageForm.Frequencies.FirstOrDefault(f => f.Code == line.Frequency).Label ?? line.Frequency;
        var unit = ExitPackageForm.Units.FirstOrDefault(u => u.Code == line.Unit).Label ?? line.Unit;
        var dosage = new Dosage
        {
            Text = $"{line.Dose} {unit}, {frequency}" + (days is { } d ? $", pendant {d} jours" : ""),
        };
        if (dose is { } amount)
        {
            dosage.DoseAndRate = [new Dosage.DoseAndRateComponent { Dose = UnitQuantity(amount, line.Unit) }];
        }
        if (int.TryParse(line.Frequency, NumberStyles.None, CultureInfo.InvariantCulture, out var perDay))
            dosage.Timing = new Timing { Repeat = new Timing.RepeatComponent { Frequency = perDay, Period = 1, PeriodUnit = Timing.UnitsOfTime.D } };
        else dosage.AsNeeded = new FhirBoolean(true);

        var start = release is { } r ? DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(r, Paris).Date) : today;
        var request = new MedicationRequest
        {
            Meta = new Meta { Profile = [PrescriptionProfile] },
            Status = MedicationRequest.MedicationrequestStatus.Active,
            Intent = MedicationRequest.MedicationRequestIntent.Order,
            Medication = name is null
                ? new CodeableConcept { Coding = [new Coding(Atc, line.Code)] }
                : new CodeableConcept(Atc, line.Code, name, name),
            Subject = patient,
            Encounter = stay,
            AuthoredOn = today.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
            Requester = prescriber,
            DosageInstruction = [dosage],
            DispenseRequest = new MedicationRequest.DispenseRequestComponent
            {
                ValidityPeriod = new Period { Start = Day(start), End = Day(start.AddDays(Math.Max(days ?? 0, 1) + 30)) },
            },
        };
        if (days is { } supply) request.DispenseRequest.ExpectedSupplyDuration = new Duration { Value = supply, Unit = "jours", System = Ucum, Code = "d" };
        if (ExitPackageForm.WholeNumber(line.BridgingDays) is { } bridging)
        {
            var extension = new Extension { Url = PortalData.BridgingSupplyExtension };
            extension.Extension.Add(new Extension("daysSupply", new Duration { Value = bridging, Unit = "jours", System = Ucum, Code = "d" }));
            if (ExitPackageForm.Number(line.BridgingQuantity) is { } quantity) extension.Extension.Add(new Extension("quantity", new Quantity { Value = quantity, Unit = unit }));
            if (release is { } handedOver) extension.Extension.Add(new Extension("handedOver", new FhirDateTime(Instant(handedOver))));
            request.Extension.Add(extension);
        }
        return request;
    }

    private static Quantity UnitQuantity(decimal value, string unit) => unit switch
    {
        "mg" => new Quantity { Value = value, Unit = "mg", System = Ucum, Code = "mg" },
        "mL" => new Quantity { Value = value, Unit = "mL", System = Ucum, Code = "mL" },
        _ => new Quantity { Value = value, Unit = unit },
    };

    private static DocumentReference Letter(ExitPackageForm form, ExitPackageContext context, Identifier id, ResourceReference patient, ResourceReference stayRef,
        Encounter stay, ResourceReference prescriber, ResourceReference usmp)
    {
        var pdf = form.LetterPdf is not null;
        var data = form.LetterPdf ?? Encoding.UTF8.GetBytes(form.LetterText.Trim());
        return new DocumentReference
        {
            Meta = new Meta { Profile = [LetterProfile] },
            Identifier = [id],
            Status = DocumentReferenceStatus.Current,
            DocStatus = CompositionStatus.Final,
            Type = new CodeableConcept(Mapping.NationalSystems.Loinc, Mapping.CdaDocument.LiaisonLetterLoinc, "Lettre de liaison"),
            Category = [new CodeableConcept { Text = "Lettre de liaison de sortie" }],
            Subject = patient,
            Date = context.Now,
            Author = [prescriber],
            Custodian = usmp,
            Description = "Lettre de liaison de sortie de détention",
            SecurityLabel = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "N")],
            Content =
            [
                new DocumentReference.ContentComponent
                {
                    Attachment = new Attachment
                    {
                        ContentType = pdf ? "application/pdf" : "text/plain",
                        Language = "fr-FR",
                        Data = data,
                        // An R4 unsignedInt: SDK 6.8's Size property is the R5 Integer64, which its serializer writes as a JSON string.
                        SizeElement = new UnsignedInt(data.Length),
                        Hash = SHA1.HashData(data),
                        Title = pdf && form.LetterPdfName.Length > 0 ? form.LetterPdfName : "Lettre de liaison de sortie",
                        CreationElement = new FhirDateTime(context.Now),
                    },
                    Format = pdf
                        ? new Coding("http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode", "urn:ihe:iti:xds-sd:pdf:2008")
                        : new Coding("http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode", "urn:ihe:iti:xds:2017:mimeTypeSufficient"),
                },
            ],
            Context = new DocumentReference.ContextComponent
            {
                Encounter = [stayRef],
                Period = new Period { Start = stay.Period?.Start ?? Day(DateOnly.FromDateTime(context.Now.UtcDateTime)), End = stay.Period?.End },
                PracticeSetting = new CodeableConcept { Text = "Unité sanitaire en milieu pénitentiaire" },
            },
        };
    }

    /// <summary>The release: its day and time (09:00 when none is given) in Europe/Paris.</summary>
    public static DateTimeOffset? ReleaseInstant(ExitPackageForm form) =>
        ExitPackageForm.ParseDate(form.Release) is { } day ? ParisInstant(day, ExitPackageForm.ParseTime(form.ReleaseTime) ?? new TimeOnly(9, 0)) : null;

    public static DateTimeOffset ParisInstant(DateOnly day, TimeOnly time)
    {
        var local = day.ToDateTime(time, DateTimeKind.Unspecified);
        return new DateTimeOffset(local, Paris.GetUtcOffset(local));
    }

    private static string Instant(DateTimeOffset instant) => instant.ToString("yyyy-MM-ddTHH:mm:sszzz", CultureInfo.InvariantCulture);

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static string Day(DateTimeOffset instant) => Day(DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(instant, Paris).Date));
}
