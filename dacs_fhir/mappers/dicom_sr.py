"""Dose SR -> :class:`DoseReport` (PS3.16 TID 10001, 10011, 10021, 10030; private Siemens summary).

Content items are matched by coded concept (scheme + code value), never by
meaning; SNOMED concepts are accepted in their SRT, SNM3 and SCT forms. Every
NUM becomes a :class:`Measurement` in the canonical unit of its dimension
(:mod:`.sr_values`). Vendor deviations are repaired by the named fixes of
:mod:`.quirks`, whose names end up in ``DoseReport.quirks``.

This module finds the root template and assembles the report; the containers
are read by :mod:`.sr_context` (header items), :mod:`.sr_ct`,
:mod:`.sr_projection` and :mod:`.sr_radiopharmaceutical`.
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
    DoseReport,
    IrradiationEvent,
    Measurement,
    RadiopharmaceuticalAdministration,
)
from ..errors import CorruptObject, DacsError, MappingError, NotADoseObject
from . import quirks as Q
from .dicom_header import parse_datetime, text
from .sr_context import (
    PATIENT_CHARACTERISTICS,
    device_of,
    header_items,
    patient_characteristics,
    patient_of,
    study_of,
    unique_persons,
)
from .sr_ct import ct_accumulated, ct_event
from .sr_projection import accumulated_projection, projection_event
from .sr_radiopharmaceutical import (
    PATIENT_RADIATION_DOSE_REPORT,
    RADIATION_DOSE_ESTIMATE,
    administration,
    dose_estimates,
    kind_from_modality,
)
from .sr_tree import RawFormatError, read_tree
from .sr_values import Context

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
            measurements.extend(dose_estimates(node, ctx))
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
        kind = kind_from_modality(text(ds, "Modality"), kind)
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
        persons=tuple(unique_persons(head.persons)),
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
