"""Projection X-ray dose containers of a dose SR (PS3.16 TID 10001 Projection X-Ray Radiation Dose, 10002-10007)."""
from __future__ import annotations

from .. import codes as C
from ..domain import PROJECTION, AccumulatedDose, IrradiationEvent, Measurement, XRayFilter
from . import quirks as Q
from .sr_context import DEVICE_ROLE, Head, read_event_item
from .sr_tree import Node
from .sr_values import Context, coded_items, event_uid, laterality

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
            elif c == C.ACQUISITION_PLANE:
                f["plane"] = ctx.code(n)
            elif c == C.IRRADIATION_EVENT_TYPE:
                f["event_type"] = ctx.code(n)
            elif c == C.REFERENCE_POINT_DEFINITION[0]:
                f["reference_point_definition"] = ctx.text(n)
            elif c == C.XRAY_FILTERS:
                filters.append(_filter(n, ctx))
            elif c == C.FLUORO_MODE:
                f["fluoro_mode"] = ctx.code(n)
            else:
                read_event_item(n, ctx, f, head)
        elif n.is_snomed(C.PROCEDURE_CONTEXT):
            f["procedure_context"] = ctx.code(n)
        elif n.is_snomed(C.LATERALITY):
            f["laterality"] = n.coded
        elif n.is_snomed(ANATOMICAL_STRUCTURE):
            other_codes.append(n)
            f["laterality"] = f.get("laterality") or laterality(n)
        elif Q.private_scheme(n.scheme):
            ctx.quirk(f"private-codes:{n.scheme}")
        elif n.vt == "CODE":
            other_codes.append(n)
    return IrradiationEvent(
        uid=event_uid(f.get("uid", ""), ctx, PROJECTION, index),
        kind=PROJECTION,
        measurements=tuple(ms),
        filters=tuple(filters),
        codes=coded_items(other_codes, ctx),
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
