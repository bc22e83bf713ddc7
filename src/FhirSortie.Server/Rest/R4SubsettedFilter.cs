using Hl7.Fhir.Introspection;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;

namespace FhirSortie.Server.Rest;

/// <summary>
/// Wraps the SDK's _summary/_elements filters: Firely 6.8 tags a summarised resource SUBSETTED under the STU3 system
/// (http://hl7.org/fhir/v3/ObservationValue) while it serialises it, next to the R4 tag we add ourselves
/// (<see cref="FhirResponse.MarkSubsetted"/>). R4 knows only http://terminology.hl7.org/CodeSystem/v3-ObservationValue,
/// so the STU3 tag is taken out again when the serialiser reaches meta, before it is written. Costs one look at the tags
/// of each Meta, and only on _summary/_elements answers.
/// </summary>
public sealed class R4SubsettedFilter(SerializationFilter inner) : SerializationFilter
{
    private const string Stu3System = "http://hl7.org/fhir/v3/ObservationValue";

    public override void EnterObject(object value, ClassMapping? mapping)
    {
        inner.EnterObject(value, mapping);
        if (value is Resource { Meta: { } resourceMeta }) DropStu3Tag(resourceMeta);
        else if (value is Meta meta) DropStu3Tag(meta);
    }

    public override bool TryEnterMember(string name, object value, PropertyMapping? mapping)
    {
        var entered = inner.TryEnterMember(name, value, mapping);
        if (entered && value is Meta meta) DropStu3Tag(meta);
        return entered;
    }

    public override void LeaveMember(string name, object value, PropertyMapping? mapping) => inner.LeaveMember(name, value, mapping);

    public override void LeaveObject(object value, ClassMapping? mapping) => inner.LeaveObject(value, mapping);

    private static void DropStu3Tag(Meta meta)
    {
        if (meta.Tag.Count > 0) meta.Tag.RemoveAll(t => t.Code == "SUBSETTED" && t.System == Stu3System);
    }
}
