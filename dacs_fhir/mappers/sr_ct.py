"""CT dose containers of a dose SR (PS3.16 TID 10011 CT Radiation Dose, 10012-10015).

For a CT acquisition with one X-ray source, the source's NUMs (kVp, tube
current …) are also event measurements, so ``event.get("113733")`` works for CT
and projection alike; with several sources they live only in ``event.sources``.
"""
from __future__ import annotations

from typing import Optional

from .. import codes as C
from ..domain import CT, AccumulatedDose, DoseCheck, IrradiationEvent, Measurement, Person, XRaySource
from . import quirks as Q
from .sr_context import Head, person_of, read_event_item
from .sr_tree import Node
from .sr_values import Context, coded_items, event_uid, yes_no


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
            if read_event_item(n, ctx, f, head):
                continue
            c = n.code
            if c == C.CT_ACQUISITION_TYPE:
                f["event_type"] = ctx.code(n)
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
        uid=event_uid(f.get("uid", ""), ctx, CT, index),
        kind=CT,
        measurements=tuple(ms),
        sources=tuple(sources),
        dose_check=dose_check,
        codes=coded_items(other_codes, ctx),
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
                flags[_DOSE_CHECK_FLAGS[k.code]] = yes_no(k)
            elif k.code == C.REASON_FOR_PROCEEDING:
                reasons.append(ctx.text(k))
            elif k.code == C.PERSON_NAME:
                persons.append(person_of(k, ctx))
    head.persons.extend(persons)
    return DoseCheck(measurements=tuple(ms), reasons=tuple(reasons), persons=tuple(persons), **flags)
