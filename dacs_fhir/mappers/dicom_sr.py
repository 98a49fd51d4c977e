"""Dose SR -> :class:`DoseReport` (PS3.16 TID 10001, 10011, 10021, 10030; private Siemens summary).

Content items are matched by coded concept (scheme + code value), never by
meaning; SNOMED concepts are accepted in their SRT, SNM3 and SCT forms. Every
NUM becomes a :class:`Measurement` in the canonical unit of its dimension.
Vendor deviations are repaired by the named fixes of :mod:`.quirks`, whose names
end up in ``DoseReport.quirks``.

For a CT acquisition with one X-ray source, the source's NUMs (kVp, tube
current …) are also event measurements, so ``event.get("113733")`` works for CT
and projection alike; with several sources they live only in ``event.sources``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from pydicom.dataset import Dataset

from .. import codes as C
from ..domain import (
    CT,
    PROJECTION,
    RADIOPHARMACEUTICAL,
    SOURCE_PRIVATE_SR,
    SOURCE_RDSR,
    AccumulatedDose,
    Concept,
    Device,
    DoseCheck,
    DoseReport,
    IrradiationEvent,
    Measurement,
    OrganDose,
    Patient,
    Person,
    Quantity,
    RadiopharmaceuticalAdministration,
    Study,
    XRayFilter,
    XRaySource,
)
from ..errors import CorruptObject, DacsError, MappingError, NotADoseObject
from ..units import UnitError, convert, normalise, parse_decimal
from . import quirks as Q
from .dicom_header import device_from, parse_datetime, patient_from, person_name, study_from, text
from .sr_tree import Node, RawFormatError, read_tree, tree_of

SR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.67": "X-Ray Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.68": "Radiopharmaceutical Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.73": "Patient Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.76": "Enhanced X-Ray Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
}
PATIENT_RADIATION_DOSE_REPORT = "128401"  # TID 10030 root (DCM)
RADIATION_DOSE_ESTIMATE = "128402"  # TID 10031
PATIENT_CHARACTERISTICS = "121118"  # TID 1007
_NOT_IMAGING = {"", "SR", "OT", "KO", "PR", "DOC", "REG"}

__all__ = ["is_sr", "parse_sr", "SR_SOP_CLASSES"]


def is_sr(ds: Dataset) -> bool:
    """True for any Structured Report object (dose or not): parse_sr decides what it is."""
    return str(ds.get("SOPClassUID", "")) in SR_SOP_CLASSES or (
        ds.get("Modality") == "SR" and "ContentSequence" in ds
    )


def parse_sr(ds: Dataset) -> DoseReport:
    """Map a dose SR; raises NotADoseObject / CorruptObject / MappingError with one-line reasons."""
    try:
        return _parse(ds)
    except DacsError:
        raise
    except RawFormatError as exc:
        raise CorruptObject(f"malformed SR content ({exc})") from None
    except Exception as exc:
        raise CorruptObject(f"malformed dose SR ({type(exc).__name__}: {str(exc)[:160]})") from None


def _parse(ds: Dataset) -> DoseReport:
    sop_class = str(ds.get("SOPClassUID", ""))
    class_name = SR_SOP_CLASSES.get(sop_class, "SR")
    root = read_tree(ds)
    if not root.code:
        raise NotADoseObject(f"{class_name} without a document title is not a dose report")
    sop_uid = text(ds, "SOPInstanceUID")
    if not sop_uid:
        raise CorruptObject("dose SR without SOP Instance UID")
    ctx = Context(root, sop_uid)
    if root.is_(C.XRAY_DOSE_REPORT) or root.is_(C.RP_DOSE_REPORT) or root.is_(PATIENT_RADIATION_DOSE_REPORT):
        return _standard(ds, root, ctx, sop_class)
    if root.is_(Q.SIEMENS_RADSUM_ROOT, Q.SIEMENS_RADSUM_SCHEME):
        return _siemens_summary(ds, root, ctx, sop_class)
    title = root.concept
    raise NotADoseObject(
        f"{class_name} with title {title.meaning or '?'!r} ({title.scheme} {title.code}) is not a radiation dose report"
    )


def _standard(ds: Dataset, root, ctx: Context, sop_class: str) -> DoseReport:
    """TID 10001 / 10011 / 10021 / 10030 (template inferred when the identifier is missing)."""
    head = header_items(root, ctx)
    accumulated: list[AccumulatedDose] = []
    events: list[IrradiationEvent] = []
    admins: list[RadiopharmaceuticalAdministration] = []
    measurements: list[Measurement] = []
    patient_extra: dict = {}
    ct_like = projection_like = False
    for node in root.children:
        if node.scheme != "DCM":
            if Q.private_scheme(node.scheme):
                ctx.quirk(f"private-codes:{node.scheme}")
            continue
        code = node.code
        if code == C.CT_ACCUMULATED:  # TID 10012
            accumulated.append(ct_accumulated(node, ctx))
            ct_like = True
        elif code == C.CT_ACQUISITION:  # TID 10013
            events.append(ct_event(node, ctx, len(events), head))
            ct_like = True
        elif code == C.ACCUMULATED_XRAY_DOSE:  # TID 10002
            accumulated.append(accumulated_projection(node, ctx, head))
            projection_like = True
        elif code == C.IRRADIATION_EVENT_XRAY:  # TID 10003
            events.append(projection_event(node, ctx, len(events), head))
            projection_like = True
        elif code == C.RP_ADMINISTRATION:  # TID 10022
            admins.append(administration(node, ctx, len(admins), head))
        elif code == PATIENT_CHARACTERISTICS:  # TID 1007
            patient_extra = patient_characteristics(node, ctx)
        elif code == RADIATION_DOSE_ESTIMATE:  # TID 10031
            measurements.extend(m for n in node.iter() if n.vt == "NUM" for m in [ctx.measure(n)] if m)
    events, names = Q.dedup_by_uid(events, lambda e: e.uid, _same_event,
                                   lambda e, i: replace(e, uid=Q.synthesize_uid(ctx.sop_uid, e.kind, i)))
    admins, names2 = Q.dedup_by_uid(admins, lambda a: a.uid, _same_event,
                                    lambda a, i: replace(a, uid=Q.synthesize_uid(ctx.sop_uid, RADIOPHARMACEUTICAL, i)))
    for name in names + names2:
        ctx.quirk(name)

    template = root.template
    if root.is_(C.RP_DOSE_REPORT) or admins:
        kind, inferred = RADIOPHARMACEUTICAL, "10021"
        # TID 10021 has no Procedure reported; the RDS IG codes it as Radiopharmaceutical Administration
        head.procedure = head.procedure or Concept("DCM", C.RP_ADMINISTRATION, "Radiopharmaceutical Administration")
    elif ct_like or _is_ct(head.procedure):
        kind, inferred = CT, "10011"
    else:
        kind, inferred = PROJECTION, "10001"
    if root.is_(PATIENT_RADIATION_DOSE_REPORT):
        inferred = "10030"
        kind = _kind_from_modality(text(ds, "Modality"), kind)
    if not template:
        template = inferred
        ctx.quirk(Q.MISSING_TEMPLATE_ID)
    if kind != RADIOPHARMACEUTICAL and not (ct_like or projection_like or head.procedure or measurements):
        raise MappingError("X-Ray Radiation Dose Report without procedure reported or dose containers")

    modality = _modality(text(ds, "Modality"), kind, head, accumulated, events, admins)
    device = device_of(ds, head, ctx)
    return DoseReport(
        sop_instance_uid=ctx.sop_uid,
        sop_class_uid=sop_class,
        kind=kind,
        source=SOURCE_RDSR,
        study=study_of(ds, head, modality),
        patient=patient_of(ds, patient_extra),
        device=device,
        modality=modality,
        template=template,
        procedure_reported=head.procedure,
        intent=head.intent,
        started=head.started,
        ended=head.ended,
        content_datetime=parse_datetime(ds.get("ContentDate"), ds.get("ContentTime", "")),
        scope=head.scope,
        source_of_dose_information=head.sources,
        persons=tuple(_unique_persons(head.persons)),
        accumulated=tuple(accumulated),
        events=tuple(events),
        administrations=tuple(admins),
        measurements=tuple(measurements),
        source_instances=(ctx.sop_uid,),
        quirks=ctx.finish(),
    )


def _siemens_summary(ds: Dataset, root, ctx: Context, sop_class: str) -> DoseReport:
    """Siemens ARCADIS Varic 'Radiation Summary Report' (private 99SMS_RADSUM) as TID 10002 totals."""
    ctx.quirk("siemens-radiation-summary")
    measurements: list[Measurement] = []
    started = ended = None
    for node in root.children:
        if node.scheme != Q.SIEMENS_RADSUM_SCHEME:
            continue
        if node.code in Q.SIEMENS_RADSUM_NUM and node.vt == "NUM":
            code, meaning = Q.SIEMENS_RADSUM_NUM[node.code]
            m = ctx.measure(node, Concept("DCM", code, meaning))
            if m:
                measurements.append(m)
        elif node.vt == "NUM":
            m = ctx.measure(node)
            if m:
                measurements.append(m)
        elif node.code == Q.SIEMENS_RADSUM_START:
            started = parse_datetime(node.text)
        elif node.code == Q.SIEMENS_RADSUM_END:
            ended = parse_datetime(node.text)
    head = header_items(root, ctx)
    acc = AccumulatedDose(plane=None, measurements=tuple(m for m in measurements if m.concept.scheme == "DCM"))
    modality = text(ds, "Modality")
    modality = modality if modality not in _NOT_IMAGING else "RF"
    return DoseReport(
        sop_instance_uid=ctx.sop_uid,
        sop_class_uid=sop_class,
        kind=PROJECTION,
        source=SOURCE_PRIVATE_SR,
        study=study_of(ds, head, modality),
        patient=patient_of(ds, {}),
        device=device_of(ds, head, ctx),
        modality=modality,
        template="",
        procedure_reported=Concept("DCM", C.PROJECTION_PROCEDURE, "Projection X-Ray"),
        started=started,
        ended=ended,
        content_datetime=parse_datetime(ds.get("ContentDate"), ds.get("ContentTime", "")),
        accumulated=(acc,),
        measurements=tuple(m for m in measurements if m.concept.scheme != "DCM"),
        source_instances=(ctx.sop_uid,),
        quirks=ctx.finish(),
    )


def _same_event(a, b) -> bool:
    """Same irradiation: equal start time and equal values (meanings and order aside)."""
    return a.started == b.started and sorted((m.concept.key, m.quantity.value) for m in a.measurements) == sorted(
        (m.concept.key, m.quantity.value) for m in b.measurements
    )


def _is_ct(procedure: Optional[Concept]) -> bool:
    return procedure is not None and procedure.code in C.CT_PROCEDURE


def _kind_from_modality(modality: str, default: str) -> str:
    return {"CT": CT, "NM": RADIOPHARMACEUTICAL, "PT": RADIOPHARMACEUTICAL}.get(modality, default)


# Positron emitters (CID 4020 PET Radionuclide), SNOMED RT and CT forms
_PET_RADIONUCLIDES = {
    "C-111A1", "77004003",  # 18F
    "C-105A1", "21576001",  # 11C
    "C-107A1", "21654000",  # 13N
    "C-B1038", "129444002",  # 15O
    "C-131A3",  # 68Ga
    "C-159A2",  # 82Rb
    "C-127A1",  # 64Cu
    "C-162A7",  # 89Zr
    "C-114A5",  # 124I
}
_FLUORO = ("P5-06000", "44491008")
_ANGIO_PLANES = {"113620", "113621"}  # Plane A / Plane B: biplane angiography
_DX_DEVICE_TYPES = {"113957", "113958"}  # CID 10032 cassette-based / integrated projection radiography


def _modality(header: str, kind: str, head, accumulated, events, admins) -> str:
    """Modality of the imaging the report is about (an RDSR itself is 'SR')."""
    if header not in _NOT_IMAGING:
        return header
    if kind == CT:
        return "CT"
    if kind == RADIOPHARMACEUTICAL:
        pet = any(a.radionuclide is not None and a.radionuclide.code in _PET_RADIONUCLIDES for a in admins)
        return "PT" if pet else "NM"
    proc = head.procedure
    if (proc is not None and proc.code in C.MAMMOGRAPHY_PROCEDURE) or any(
        e.get(C.AGD) is not None for e in events
    ) or any(a.get(C.ACCUMULATED_AGD) is not None for a in accumulated):
        return "MG"
    if head.device_type is not None and head.device_type.code in _DX_DEVICE_TYPES:
        return "DX"
    fluoro = any(e.event_type is not None and e.event_type.code in _FLUORO for e in events) or any(
        (q := a.get(C.TOTAL_FLUORO_TIME)) is not None and q.value > 0 for a in accumulated
    )
    if not fluoro:
        return "DX"
    angio = any(a.plane is not None and a.plane.code in _ANGIO_PLANES for a in accumulated) or any(
        e.get(C.POSITIONER_PRIMARY_ANGLE) is not None for e in events
    )
    return "XA" if angio else "RF"


def _unique_persons(persons: list[Person]) -> list[Person]:
    seen = set()
    out = []
    for p in persons:
        key = (p.name.text, p.role.key if p.role else None)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# ---------------------------------------------------------------- reading context and header (TID 1001, 1002, 1004, 1020)

class Context:
    """Per-document state: quirks applied, decoded concepts, the document's character sets."""

    __slots__ = ("sop_uid", "tree", "_quirks", "_concepts")

    def __init__(self, root: Node, sop_uid: str):
        self.sop_uid = sop_uid
        self.tree = tree_of(root)
        self._quirks: dict[str, None] = {}
        self._concepts: dict[tuple[str, str], Concept] = {}

    def quirk(self, name: Optional[str]) -> None:
        if name:
            self._quirks[name] = None

    def finish(self) -> tuple[str, ...]:
        if "SNM3" in self.tree.schemes:
            self.quirk(Q.snomed_scheme("SNM3")[1])
        return tuple(self._quirks)

    def concept(self, node: Node) -> Concept:
        """Concept name of a node (meanings decoded once per code)."""
        key = (node.scheme, node.code)
        c = self._concepts.get(key)
        if c is None:
            c = self._concepts[key] = node.concept
        return c

    def text(self, node: Node) -> str:
        """TEXT / PNAME / CODE-meaning value, repaired when UTF-8 bytes were read as Latin-1."""
        value = node.text
        if node.vt in ("TEXT", "PNAME") and value and not value.isascii():
            value, fixed = Q.repair_mojibake(value, self.tree.encodings)
            self.quirk(fixed)
        return value

    def code(self, node: Node) -> Optional[Concept]:
        value = node.coded
        if value is None and node.vt == "CODE":
            self.quirk(Q.EMPTY_CODE)
        return value

    def measure(self, node: Node, concept: Optional[Concept] = None) -> Optional[Measurement]:
        """A NUM item in canonical units (None when it carries no value)."""
        value, unit, _qualifier = node.numeric
        if value is None:
            self.quirk(Q.EMPTY_NUMERIC)
            return None
        value, fixed = Q.fix_numeric_text(value)
        self.quirk(fixed)
        ucum, fixed = Q.fix_unit(unit)
        self.quirk(fixed)
        try:
            quantity = normalise(value, ucum)
        except UnitError:
            try:
                number = float(parse_decimal(value))
            except UnitError:
                self.quirk(Q.NON_NUMERIC)
                return None
            quantity = Quantity(number, ucum)
            self.quirk(f"{Q.UNKNOWN_UNIT}:{unit}")
        modifier = None
        for k in node.children:
            if k.rel == "HAS CONCEPT MOD" and k.vt == "CODE":
                modifier = k.coded
                break
        return Measurement(concept or self.concept(node), quantity, modifier)

    def measure_all(self, nodes, into: list[Measurement]) -> None:
        """Measurements of the standard NUM items among ``nodes`` (private ones are ignored)."""
        for n in nodes:
            if n.vt == "NUM":
                if Q.private_scheme(n.scheme):
                    self.quirk(f"private-codes:{n.scheme}")
                    continue
                m = self.measure(n)
                if m is not None:
                    into.append(m)


class Head:
    """Document-level context items of TID 10001 / 10011 / 10021 and participants found anywhere."""

    __slots__ = ("procedure", "associated", "intent", "started", "ended", "scope", "sources", "persons", "device_type",
                 "observer", "participant", "study_uid")

    def __init__(self):
        self.procedure = self.intent = self.started = self.ended = self.scope = self.device_type = None
        self.associated: Optional[Concept] = None
        self.sources: tuple[Concept, ...] = ()
        self.persons: list[Person] = []
        self.observer: dict[str, str] = {}
        self.participant: dict[str, str] = {}
        self.study_uid = ""

    def add_participant(self, node: Node, ctx: Context) -> None:
        """TID 1021 Device Participant (113876) properties, first one wins."""
        for k in node.children:
            field = _DEVICE_FIELDS.get(k.code) if k.scheme == "DCM" else None
            if field and k.vt in ("TEXT", "UIDREF") and not self.participant.get(field):
                self.participant[field] = ctx.text(k)


_OBSERVER_FIELDS = {"121012": "uid", "121013": "name", "121014": "manufacturer", "121015": "model", "121016": "serial"}
_DEVICE_FIELDS = {"113877": "name", "113878": "manufacturer", "113879": "model", "113880": "serial", "121012": "uid"}
ASSOCIATED_PROCEDURE = ("G-C2D0", "363589002")
DEVICE_ROLE = "113876"
PERSON_OBSERVER_NAME, PERSON_OBSERVER_ORG, PERSON_OBSERVER_ROLE = "121008", "121009", "121011"


def header_items(root: Node, ctx: Context) -> Head:
    """Procedure reported, intent, irradiation times, scope, sources, observers, persons (root level)."""
    head = Head()
    sources = []
    observer_person = {}
    for n in root.children:
        if n.scheme == "DCM":
            c = n.code
            if c == C.PROCEDURE_REPORTED:
                head.procedure = ctx.code(n)
                intent = n.find_snomed(C.HAS_INTENT)
                head.intent = intent.coded if intent else head.intent
            elif c == C.START_OF_IRRADIATION:
                head.started = parse_datetime(n.text)
            elif c == C.END_OF_IRRADIATION:
                head.ended = parse_datetime(n.text)
            elif c == C.SCOPE_OF_ACCUMULATION:
                head.scope = ctx.code(n)
                uid = n.find(C.STUDY_INSTANCE_UID)
                head.study_uid = uid.text if uid else ""
            elif c == C.SOURCE_OF_DOSE_INFORMATION:
                sources.append(ctx.code(n))
            elif c in _OBSERVER_FIELDS:
                if c == C.DEVICE_OBSERVER_UID and n.vt == "TEXT":
                    ctx.quirk(Q.DEVICE_UID_AS_TEXT)
                head.observer[_OBSERVER_FIELDS[c]] = ctx.text(n)
            elif c == DEVICE_ROLE:
                head.add_participant(n, ctx)
            elif c == C.PERSON_NAME:
                head.persons.append(person_of(n, ctx))
            elif c == PERSON_OBSERVER_NAME:
                observer_person["name"] = person_name(ctx.text(n))
            elif c == PERSON_OBSERVER_ORG:
                observer_person["organization"] = ctx.text(n)
            elif c == PERSON_OBSERVER_ROLE:
                observer_person["role"] = ctx.code(n)
            elif c == ACQUISITION_DEVICE_TYPE:
                head.device_type = ctx.code(n)
        elif n.is_snomed(ASSOCIATED_PROCEDURE):  # TID 10021: the study's procedure, kept on Study
            head.associated = ctx.code(n)
            intent = n.find_snomed(C.HAS_INTENT)
            head.intent = intent.coded if intent else head.intent
    head.sources = tuple(s for s in sources if s is not None)
    if observer_person.get("name"):
        head.persons.append(Person(observer_person["name"], observer_person.get("role"), "", observer_person.get("organization", "")))
    return head


ACQUISITION_DEVICE_TYPE = "122142"


def person_of(node: Node, ctx: Context) -> Person:
    """TID 1020 Person Participant."""
    role = None
    pid = org = ""
    for k in node.children:
        if k.scheme != "DCM":
            continue
        if k.code == C.PERSON_ROLE:
            role = k.coded
        elif k.code == "113871":
            pid = k.text
        elif k.code == "113873":
            org = ctx.text(k)
    return Person(person_name(ctx.text(node)), role, pid, org)


def device_of(ds: Dataset, head: Head, ctx: Context) -> Device:
    """General Equipment module, completed by TID 1004 Device Observer and TID 1021 Device Participant."""
    d = device_from(ds)
    obs, par = head.observer, head.participant

    def pick(*values: str) -> str:
        return next((v for v in values if v), "")

    return Device(
        manufacturer=pick(d.manufacturer, obs.get("manufacturer", ""), par.get("manufacturer", "")),
        model=pick(d.model, obs.get("model", ""), par.get("model", "")),
        serial_number=pick(d.serial_number, obs.get("serial", ""), par.get("serial", "")),
        station_name=pick(d.station_name, obs.get("name", ""), par.get("name", "")),
        observer_uid=pick(obs.get("uid", ""), d.observer_uid, par.get("uid", "")),
        software_versions=d.software_versions,
        name=pick(obs.get("name", ""), par.get("name", ""), d.station_name),
    )


def study_of(ds: Dataset, head: Head, modality: str) -> Study:
    study = study_from(ds, (modality,) if modality else ())
    changes: dict = {}
    if not study.instance_uid and head.study_uid:
        changes["instance_uid"] = head.study_uid
    if study.procedure_code is None and head.associated is not None:
        changes["procedure_code"] = head.associated
    return replace(study, **changes) if changes else study


def patient_of(ds: Dataset, extra: dict) -> Patient:
    """Patient modules of the header; TID 1007 values fill what the header leaves empty."""
    p = patient_from(ds)
    changes = {k: v for k, v in extra.items() if v and not getattr(p, k)}
    return replace(p, **changes) if changes else p


_AGE_UNITS = {"a": "Y", "mo": "M", "wk": "W", "d": "D"}
_SEX = {"M": "M", "F": "F", "O": "O", "248153007": "M", "248152002": "F"}
HEIGHT = ("8302-2", "50373000")  # LN Body height, SCT Body height
WEIGHT = ("29463-7", "27113001")  # LN Body weight, SCT Body weight


def patient_characteristics(node: Node, ctx: Context) -> dict:
    """TID 1007 Subject age, sex, height (m), weight (kg)."""
    out: dict = {}
    for n in node.children:
        if n.is_("121033") and n.vt == "NUM":
            value, unit, _ = n.numeric
            if value and unit in _AGE_UNITS:
                value, _fixed = Q.fix_numeric_text(value)
                try:
                    out["age"] = f"{int(float(value)):03d}{_AGE_UNITS[unit]}"
                except ValueError:
                    pass
        elif n.is_("121032") and n.vt == "CODE":
            sex = n.coded
            out["sex"] = _SEX.get(sex.code, "") if sex else ""
        elif n.code in HEIGHT or n.code in WEIGHT:
            value, unit, _ = n.numeric
            if value is None:
                continue
            try:
                q = convert(Q.fix_numeric_text(value)[0], Q.fix_unit(unit)[0], "m" if n.code in HEIGHT else "kg")
            except UnitError:
                continue
            if q.value > 0:
                out["height" if n.code in HEIGHT else "weight"] = q
    return out


def _yes_no(node: Node) -> Optional[bool]:
    value = node.coded
    if value is None:
        return None
    return True if value.code in C.YES else False if value.code in C.NO else None


def _laterality(node: Node) -> Optional[Concept]:
    """Laterality concept modifier (G-C171 / 272741003) of an item, if any."""
    lat = node.find_snomed(C.LATERALITY)
    return lat.coded if lat is not None else None


# ---------------------------------------------------------------- CT (TID 10011, 10012, 10013, 10014, 10015)

def ct_accumulated(node: Node, ctx: Context) -> AccumulatedDose:
    """TID 10012 CT Accumulated Dose Data."""
    ms: list[Measurement] = []
    ctx.measure_all(node.children, ms)
    return AccumulatedDose(plane=None, measurements=tuple(ms))


def ct_event(node: Node, ctx: Context, index: int, head: Head) -> IrradiationEvent:
    """TID 10013 CT Irradiation Event Data (with 10014 scanning length and 10015 dose check)."""
    f: dict = {}
    ms: list[Measurement] = []
    sources: list[XRaySource] = []
    alert = notification = None
    other_codes = []
    for n in node.children:
        if n.scheme == "DCM":
            c = n.code
            if c == C.IRRADIATION_EVENT_UID:
                f["uid"] = n.text
            elif c == C.ACQUISITION_PROTOCOL:
                f["protocol"] = ctx.text(n)
            elif c == C.TARGET_REGION:
                f["target_region"] = ctx.code(n)
                f["laterality"] = _laterality(n) or f.get("laterality")
            elif c == C.CT_ACQUISITION_TYPE:
                f["event_type"] = ctx.code(n)
            elif c == C.DATETIME_STARTED:
                f["started"] = parse_datetime(n.text)
            elif c == C.COMMENT:
                f["comment"] = ctx.text(n)
            elif c == C.CT_ACQUISITION_PARAMETERS:
                ctx.measure_all(n.children, ms)
                for k in n.children:
                    if k.is_(C.CT_XRAY_SOURCE_PARAMETERS):
                        sources.append(_xray_source(k, ctx))
                    elif k.vt == "CONTAINER" and k.scheme == "DCM":  # TID 10014 scanning length
                        ctx.measure_all(k.children, ms)
            elif c == C.CT_DOSE:
                ctx.measure_all(n.children, ms)
                for k in n.children:
                    if k.is_(C.CTDIW_PHANTOM_TYPE):
                        f["phantom"] = ctx.code(k)
                    elif k.is_(C.DOSE_CHECK_ALERT):
                        alert = k
                    elif k.is_(C.DOSE_CHECK_NOTIFICATION):
                        notification = k
            elif c in (C.DOSE_CHECK_ALERT, C.DOSE_CHECK_NOTIFICATION):  # placed beside CT Dose by some vendors
                alert, notification = (n, notification) if c == C.DOSE_CHECK_ALERT else (alert, n)
            elif c == C.PERSON_NAME:
                head.persons.append(person_of(n, ctx))
            elif c == DEVICE_ROLE:
                head.add_participant(n, ctx)
            elif n.vt == "NUM":
                ctx.measure_all((n,), ms)
            elif n.vt == "CODE":
                other_codes.append(n)
        elif n.is_snomed(C.PROCEDURE_CONTEXT):
            f["procedure_context"] = ctx.code(n)
        elif n.is_snomed(C.LATERALITY):
            f["laterality"] = n.coded
        elif Q.private_scheme(n.scheme):
            ctx.quirk(f"private-codes:{n.scheme}")
        elif n.vt == "NUM":
            ctx.measure_all((n,), ms)
        elif n.vt == "CODE":
            other_codes.append(n)
    if len(sources) == 1:
        ms.extend(sources[0].measurements)
    dose_check = _dose_check(alert, notification, ctx, head) if (alert or notification) else None
    return IrradiationEvent(
        uid=_event_uid(f.get("uid", ""), ctx, CT, index),
        kind=CT,
        measurements=tuple(ms),
        sources=tuple(sources),
        dose_check=dose_check,
        codes=_codes(other_codes, ctx),
        **{k: v for k, v in f.items() if k != "uid" and v is not None},
    )


def _xray_source(node: Node, ctx: Context) -> XRaySource:
    """TID 10013 CT X-Ray Source Parameters (113831)."""
    ms: list[Measurement] = []
    ctx.measure_all(node.children, ms)
    ident = node.find(C.IDENTIFICATION_OF_XRAY_SOURCE)
    return XRaySource(identification=ctx.text(ident) if ident else "", measurements=tuple(ms))


_DOSE_CHECK_FLAGS = {
    C.DLP_ALERT_CONFIGURED: "dlp_alert_configured",
    C.CTDIVOL_ALERT_CONFIGURED: "ctdivol_alert_configured",
    C.DLP_NOTIFICATION_CONFIGURED: "dlp_notification_configured",
    C.CTDIVOL_NOTIFICATION_CONFIGURED: "ctdivol_notification_configured",
}


def _dose_check(alert: Optional[Node], notification: Optional[Node], ctx: Context, head: Head) -> DoseCheck:
    """TID 10015 CT Dose Check Details: alert (113900) and notification (113908) containers."""
    flags: dict = {}
    ms: list[Measurement] = []
    reasons: list[str] = []
    persons: list[Person] = []
    for container in (alert, notification):
        if container is None:
            continue
        ctx.measure_all(container.children, ms)
        for k in container.children:
            if k.scheme != "DCM":
                continue
            if k.code in _DOSE_CHECK_FLAGS:
                flags[_DOSE_CHECK_FLAGS[k.code]] = _yes_no(k)
            elif k.code == C.REASON_FOR_PROCEEDING:
                reasons.append(ctx.text(k))
            elif k.code == C.PERSON_NAME:
                persons.append(person_of(k, ctx))
    head.persons.extend(persons)
    return DoseCheck(measurements=tuple(ms), reasons=tuple(reasons), persons=tuple(persons), **flags)


def _event_uid(uid: str, ctx: Context, kind: str, index: int) -> str:
    if uid:
        return uid
    ctx.quirk("synthesized-event-uid")
    return Q.synthesize_uid(ctx.sop_uid, kind, index)


def _codes(nodes: list[Node], ctx: Context) -> tuple[tuple[Concept, Concept], ...]:
    out = []
    for n in nodes:
        value = n.coded
        if value is not None:
            out.append((ctx.concept(n), value))
    return tuple(out)


# ---------------------------------------------------------------- projection X-ray (TID 10001, 10002-10005, 10007)

CALIBRATION = "122505"


def accumulated_projection(node: Node, ctx: Context, head: Head) -> AccumulatedDose:
    """TID 10002 Accumulated X-Ray Dose for one plane, with TID 10004 / 10005 / 10007 items."""
    plane = None
    rp = ""
    ms: list[Measurement] = []
    ctx.measure_all(node.children, ms)
    for n in node.children:
        if n.scheme != "DCM":
            if Q.private_scheme(n.scheme) and n.vt != "NUM":
                ctx.quirk(f"private-codes:{n.scheme}")
            continue
        if n.code == C.ACQUISITION_PLANE:
            plane = ctx.code(n)
        elif n.code == C.REFERENCE_POINT_DEFINITION[0]:
            rp = ctx.text(n)
        elif n.code == DEVICE_ROLE:
            head.add_participant(n, ctx)
        elif n.vt == "CONTAINER" and n.code != CALIBRATION:  # older encodings nest TID 10004 / 10007
            ctx.measure_all(n.children, ms)
    return AccumulatedDose(plane=plane, reference_point_definition=rp, measurements=tuple(ms))


ANATOMICAL_STRUCTURE = ("T-D0005", "91723000")
_EVENT_TYPED = {C.IRRADIATION_EVENT_UID, C.ACQUISITION_PLANE, C.DATETIME_STARTED, C.IRRADIATION_EVENT_TYPE,
                C.ACQUISITION_PROTOCOL, C.TARGET_REGION, C.REFERENCE_POINT_DEFINITION[0], C.XRAY_FILTERS,
                C.FLUORO_MODE, C.COMMENT, C.PERSON_NAME, DEVICE_ROLE}


def projection_event(node: Node, ctx: Context, index: int, head: Head) -> IrradiationEvent:
    """TID 10003 Irradiation Event X-Ray Data (with 10003A/B/C detector, source, mechanical items)."""
    f: dict = {}
    ms: list[Measurement] = []
    filters: list[XRayFilter] = []
    other_codes = []
    ctx.measure_all(node.children, ms)
    for n in node.children:
        if n.scheme == "DCM":
            c = n.code
            if c not in _EVENT_TYPED:
                if n.vt == "CODE":
                    other_codes.append(n)
                elif n.vt == "CONTAINER":
                    ctx.measure_all(n.children, ms)
            elif c == C.IRRADIATION_EVENT_UID:
                f["uid"] = n.text
            elif c == C.ACQUISITION_PLANE:
                f["plane"] = ctx.code(n)
            elif c == C.DATETIME_STARTED:
                f["started"] = parse_datetime(n.text)
            elif c == C.IRRADIATION_EVENT_TYPE:
                f["event_type"] = ctx.code(n)
            elif c == C.ACQUISITION_PROTOCOL:
                f["protocol"] = ctx.text(n)
            elif c == C.TARGET_REGION:
                f["target_region"] = ctx.code(n)
                f["laterality"] = _laterality(n) or f.get("laterality")
            elif c == C.REFERENCE_POINT_DEFINITION[0]:
                f["reference_point_definition"] = ctx.text(n)
            elif c == C.XRAY_FILTERS:
                filters.append(_filter(n, ctx))
            elif c == C.FLUORO_MODE:
                f["fluoro_mode"] = ctx.code(n)
            elif c == C.COMMENT:
                f["comment"] = ctx.text(n)
            elif c == C.PERSON_NAME:
                head.persons.append(person_of(n, ctx))
            elif c == DEVICE_ROLE:
                head.add_participant(n, ctx)
        elif n.is_snomed(C.PROCEDURE_CONTEXT):
            f["procedure_context"] = ctx.code(n)
        elif n.is_snomed(C.LATERALITY):
            f["laterality"] = n.coded
        elif n.is_snomed(ANATOMICAL_STRUCTURE):
            other_codes.append(n)
            f["laterality"] = f.get("laterality") or _laterality(n)
        elif Q.private_scheme(n.scheme):
            ctx.quirk(f"private-codes:{n.scheme}")
        elif n.vt == "CODE":
            other_codes.append(n)
    return IrradiationEvent(
        uid=_event_uid(f.get("uid", ""), ctx, PROJECTION, index),
        kind=PROJECTION,
        measurements=tuple(ms),
        filters=tuple(filters),
        codes=_codes(other_codes, ctx),
        **{k: v for k, v in f.items() if k != "uid" and v is not None},
    )


def _filter(node: Node, ctx: Context) -> XRayFilter:
    """TID 10003 X-Ray Filters (113771)."""
    f: dict = {}
    for k in node.children:
        if k.scheme != "DCM":
            continue
        if k.code == C.FILTER_TYPE:
            f["type"] = ctx.code(k)
        elif k.code == C.FILTER_MATERIAL:
            f["material"] = ctx.code(k)
        elif k.code in (C.FILTER_THICKNESS_MIN, C.FILTER_THICKNESS_MAX) and k.vt == "NUM":
            m = ctx.measure(k)
            if m is not None:
                f["thickness_min" if k.code == C.FILTER_THICKNESS_MIN else "thickness_max"] = m.quantity
    return XRayFilter(**f)


# ---------------------------------------------------------------- radiopharmaceutical (TID 10021, 10022, 10023)

def administration(node: Node, ctx: Context, index: int, head: Head) -> RadiopharmaceuticalAdministration:
    """TID 10022 Radiopharmaceutical Administration."""
    f: dict = {}
    ms: list[Measurement] = []
    organs: list[OrganDose] = []
    persons: list[Person] = []
    for n in node.children:
        if n.is_snomed(C.RP_AGENT):
            f["agent"] = ctx.code(n) if n.vt == "CODE" else None
            f["agent_text"] = f["agent"].meaning if f.get("agent") else ctx.text(n)
            _agent_properties(n, ctx, f)
        elif n.is_snomed(C.RADIONUCLIDE) or n.is_snomed(C.HALF_LIFE):
            _agent_properties(_Single(n), ctx, f)
        elif n.is_snomed(C.ROUTE_OF_ADMINISTRATION):
            f["route"] = ctx.code(n)
            site = n.find_snomed(C.SITE_OF)
            f["site"] = site.coded if site else None
        elif n.scheme == "DCM":
            c = n.code
            if c == C.RP_ADMIN_EVENT_UID:
                f["uid"] = n.text
            elif c == C.RP_START_DATETIME:
                f["started"] = parse_datetime(n.text)
            elif c == C.RP_STOP_DATETIME:
                f["ended"] = parse_datetime(n.text)
            elif c == C.ORGAN_DOSE_INFORMATION:
                organs.extend(_organ_doses(n, ctx))
            elif c == C.PERSON_NAME:
                persons.append(person_of(n, ctx))
            elif n.vt == "NUM":
                ctx.measure_all((n,), ms)
            elif n.vt == "CONTAINER":
                _effective_dose_in(n, ctx, ms)
        elif n.vt == "CONTAINER":  # private wrappers, e.g. Siemens 99SHS 220001 around Effective Dose
            if _effective_dose_in(n, ctx, ms):
                ctx.quirk(Q.PRIVATE_EFFECTIVE_DOSE)
        elif Q.private_scheme(n.scheme):
            ctx.quirk(f"private-codes:{n.scheme}")
    for m in ms:
        if m.concept.code == C.ADMINISTERED_ACTIVITY and m.concept.scheme == "DCM":
            f.setdefault("activity", m.quantity)
        elif m.concept.code == C.EFFECTIVE_DOSE and m.concept.scheme == "DCM":
            f.setdefault("effective_dose", m.quantity)
    head.persons.extend(persons)
    return RadiopharmaceuticalAdministration(
        uid=_event_uid(f.pop("uid", ""), ctx, RADIOPHARMACEUTICAL, index),
        organ_doses=tuple(organs),
        persons=tuple(persons),
        measurements=tuple(ms),
        **{k: v for k, v in f.items() if v is not None},
    )


class _Single:
    """A node seen as the only child of a pseudo-parent (radionuclide / half-life beside the agent)."""

    def __init__(self, node: Node):
        self.children = [node]


def _agent_properties(node, ctx: Context, f: dict) -> None:
    for k in node.children:
        if k.is_snomed(C.RADIONUCLIDE):
            f["radionuclide"] = ctx.code(k)
        elif k.is_snomed(C.HALF_LIFE) and k.vt == "NUM":
            m = ctx.measure(k)
            f["half_life"] = m.quantity if m else None


def _effective_dose_in(container: Node, ctx: Context, into: list[Measurement]) -> bool:
    found = False
    for n in container.iter():
        if n.is_(C.EFFECTIVE_DOSE) and n.vt == "NUM":
            m = ctx.measure(n)
            if m is not None:
                into.append(m)
                found = True
    return found


FINDING_SITE = ("G-C0E3", "363698007")
REFERENCE_AUTHORITY = "121406"


def _organ_doses(node: Node, ctx: Context) -> list[OrganDose]:
    """TID 10023 Organ Dose: finding site and laterality modifiers, dose with its reference authority."""
    organ = _laterality(node)
    site = node.find_snomed(FINDING_SITE) or node.find_snomed(C.SITE_OF)
    organ_site = site.coded if site else None
    out = []
    for n in node.children:
        if n.is_(C.ORGAN_DOSE) and n.vt == "NUM":
            m = ctx.measure(n)
            if m is None:
                continue
            ref = n.find(REFERENCE_AUTHORITY)
            out.append(OrganDose(organ=organ_site, dose=m.quantity, laterality=organ,
                                 reference_authority=ctx.text(ref) if ref else ""))
    return out
