"""Study aggregation: several dose reports of one study become one report per study, kind and device.

Cumulative RDSRs repeat earlier irradiation events (deduplicated by Irradiation Event UID,
PS3.16 TID 10003 / 10013 113769); the accumulated totals (TID 10002 / 10012) are taken from the
report that already covers every event, summed when the reports describe separate irradiations,
and recomputed from the events otherwise (image headers carry no accumulated container).
A dose SR of the study outranks image headers of the same device: these then add only their
instance UIDs, so an irradiation is never counted twice.
"""
from __future__ import annotations

import uuid
from dataclasses import fields, is_dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Iterable, Optional

from . import codes as c
from .domain import (
    CT,
    PROJECTION,
    SOURCE_IMAGE,
    AccumulatedDose,
    Concept,
    DoseReport,
    IrradiationEvent,
    Measurement,
    Quantity,
    RadiopharmaceuticalAdministration,
)

SINGLE_PLANE = Concept("DCM", c.SINGLE_PLANE, "Single Plane")
_FLUORO_TYPES = frozenset(c.FLUOROSCOPY)
# report-level values of image headers that are cumulative over a procedure step (not per event)
_CUMULATIVE_REPORT_VALUES = frozenset((c.TOTAL_FLUORO_TIME,))


def _concept(code: str, meaning: str) -> Concept:
    return Concept("DCM", code, meaning)


def _exact_sum(values: Iterable[float]) -> float:
    total = sum((Decimal(repr(v)) for v in values), Decimal(0))
    return float(f"{total:.12g}") if total else 0.0


def _summed(events: list[IrradiationEvent], code: str) -> Optional[Quantity]:
    """The sum of one event quantity, or None unless every event carries it (never a partial total)."""
    found = [q for e in events if (q := e.get(code)) is not None]
    if not found or len(found) != len(events):
        return None
    return Quantity(_exact_sum(q.value for q in found), found[0].unit)


def _is_fluoro(event: IrradiationEvent) -> bool:
    return event.event_type is not None and event.event_type.code in _FLUORO_TYPES


def _ct_totals(events: list[IrradiationEvent]) -> tuple[AccumulatedDose, ...]:
    """TID 10012 CT Accumulated Dose Data."""
    items = [Measurement(_concept(c.TOTAL_NUMBER_OF_EVENTS, "Total Number of Irradiation Events"), Quantity(float(len(events)), "{events}"))]
    dlp = _summed(events, c.DLP)
    if dlp is not None:
        items.append(Measurement(_concept(c.CT_DLP_TOTAL, "CT Dose Length Product Total"), dlp))
    return (AccumulatedDose(measurements=tuple(items)),)


def _plane_totals(events: list[IrradiationEvent]) -> list[Measurement]:
    """TID 10002 / 10004 totals of one plane (only where every event carries the value)."""
    items: list[Measurement] = []
    fluoro = [e for e in events if _is_fluoro(e)]
    acquisition = [e for e in events if not _is_fluoro(e)]
    for code, meaning, part_codes in (
        (c.DAP, "Dose Area Product Total", (c.DAP_TOTAL, c.FLUORO_DAP_TOTAL, c.ACQUISITION_DAP_TOTAL)),
        (c.DOSE_RP, "Dose (RP) Total", (c.DOSE_RP_TOTAL, c.FLUORO_DOSE_RP_TOTAL, c.ACQUISITION_DOSE_RP_TOTAL)),
    ):
        total = _summed(events, code)
        if total is None:
            continue
        items.append(Measurement(_concept(part_codes[0], meaning), total))
        if not fluoro:  # radiography (TID 10007): no fluoroscopy / acquisition split
            continue
        for part, label, code_part in ((fluoro, "Fluoro", part_codes[1]), (acquisition, "Acquisition", part_codes[2])):
            value = _summed(part, code) if part else Quantity(0.0, total.unit)
            assert value is not None  # every event carries ``code`` (there is a total), so every part sums
            items.append(Measurement(_concept(code_part, f"{label} {meaning}"), value))
    if fluoro:
        time = _summed(fluoro, c.IRRADIATION_DURATION) or _summed(fluoro, c.EXPOSURE_TIME_PROJECTION)
        if time is not None:
            items.append(Measurement(_concept(c.TOTAL_FLUORO_TIME, "Total Fluoro Time"), time))
    if acquisition:
        frames = _exact_sum((e.get(c.NUMBER_OF_PULSES) or Quantity(1.0, "1")).value for e in acquisition)
        items.append(Measurement(_concept(c.TOTAL_NUMBER_OF_FRAMES, "Total Number of Radiographic Frames"), Quantity(frames, "{frames}")))
    return items


def _agd_totals(events: list[IrradiationEvent]) -> list[Measurement]:
    """TID 10005 Accumulated Average Glandular Dose, one per breast (laterality as concept modifier)."""
    by_side: dict[Optional[Concept], list[Quantity]] = {}
    for e in events:
        agd = e.get(c.AGD)
        if agd is not None:
            by_side.setdefault(e.laterality, []).append(agd)
    concept = _concept(c.ACCUMULATED_AGD, "Accumulated Average Glandular Dose")
    return [
        Measurement(concept, Quantity(_exact_sum(q.value for q in qs), qs[0].unit), side)
        for side, qs in sorted(by_side.items(), key=lambda kv: kv[0].code if kv[0] else "")
    ]


def totals_from_events(kind: str, events: Iterable[IrradiationEvent], extra: Iterable[Measurement] = ()) -> tuple[AccumulatedDose, ...]:
    """Accumulated totals recomputed from irradiation events (TID 10012 for CT, TID 10002 per plane).

    ``extra`` are report-level cumulative values (e.g. Total Time of Fluoroscopy of an image
    header) added to the (first) projection container when the events cannot give them.
    """
    events = list(events)
    if kind == CT:
        return _ct_totals(events) if events else ()
    if kind != PROJECTION or not events:
        return ()
    planes: dict[Concept, list[IrradiationEvent]] = {}
    for e in events:
        planes.setdefault(e.plane or SINGLE_PLANE, []).append(e)
    out = []
    extra = list(extra)
    for i, (plane, plane_events) in enumerate(sorted(planes.items(), key=lambda kv: kv[0].code)):
        items = _plane_totals(plane_events) + _agd_totals(plane_events)
        if i == 0:
            have = {m.concept.key for m in items}
            items += [m for m in extra if m.concept.key not in have]
        out.append(AccumulatedDose(plane=plane, measurements=tuple(items)))
    return tuple(out)


def with_total(accumulated: tuple[AccumulatedDose, ...], total: Measurement) -> tuple[AccumulatedDose, ...]:
    """``accumulated`` with ``total`` replacing the same concept in its first container."""
    if not accumulated:
        return (AccumulatedDose(measurements=(total,)),)
    first = accumulated[0]
    items = tuple(m for m in first.measurements if m.concept.key != total.concept.key) + (total,)
    return (replace(first, measurements=items),) + accumulated[1:]


# ---------------------------------------------------------------- merging


def group_key(report: DoseReport) -> tuple[str, str, str]:
    """Reports that describe one study's irradiation by one device: (study UID, kind, device key)."""
    return (report.study.instance_uid, report.kind, report.device.key)


def group_uid(key: tuple[str, str, str]) -> str:
    """A stable UID for the combined image-header report of one group (PS3.5 B.2, UUID-derived)."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "dacs-fhir/study-dose/" + "|".join(key)).int)


def merge_reports(reports: Iterable[DoseReport]) -> list[DoseReport]:
    """One report per (study UID, kind, device); the result does not depend on the input order."""
    groups: dict[tuple[str, str, str], list[DoseReport]] = {}
    for r in reports:
        groups.setdefault(group_key(r), []).append(r)
    # An RDSR names its device by Device Observer UID, an image header by manufacturer/model/serial:
    # image headers of a device that also sent a dose SR for the study join that SR's group.
    keys = sorted(groups)
    for key in keys:
        if all(r.source == SOURCE_IMAGE for r in groups[key]):
            target = next((k for k in keys if k in groups and k[:2] == key[:2] and _has_dose_sr(groups[k])
                           and _same_device(groups[k][0].device, groups[key][0].device)), None)
            if target is not None:
                groups[target].extend(groups.pop(key))
    return [_merge(key, groups[key]) for key in sorted(groups)]


def _has_dose_sr(reports: list[DoseReport]) -> bool:
    return any(r.source != SOURCE_IMAGE for r in reports)


def _same_device(a, b) -> bool:
    """Same manufacturer and model, and no conflicting serial number or station name."""
    def norm(v: str) -> str:
        return " ".join(v.lower().split())

    if not (norm(a.manufacturer) and norm(a.model)) or (norm(a.manufacturer), norm(a.model)) != (norm(b.manufacturer), norm(b.model)):
        return False
    return all(not norm(x) or not norm(y) or norm(x) == norm(y) for x, y in ((a.serial_number, b.serial_number), (a.station_name, b.station_name)))


def _naive(dt: Optional[datetime]) -> str:
    if dt is None:
        return ""
    return (dt.replace(tzinfo=None) if dt.tzinfo else dt).isoformat()


def _event_uids(report: DoseReport) -> frozenset[str]:
    return frozenset(e.uid for e in report.events)


def _preference(report: DoseReport) -> tuple:
    # the fullest, then the latest, report first; the SOP Instance UID breaks ties
    return (len(report.events), _naive(report.content_datetime or report.ended or report.started), report.sop_instance_uid)


def _fullness(report: DoseReport) -> tuple:
    return (len(report.events), len(report.source_instances), len(report.quirks), len(report.accumulated))


def _merge(key: tuple[str, str, str], reports: list[DoseReport]) -> DoseReport:
    unique: dict[str, DoseReport] = {}
    for r in reports:  # the same object twice (or an earlier merge of it): keep the fuller copy
        kept = unique.get(r.sop_instance_uid)
        if kept is None or _fullness(r) > _fullness(kept):
            unique[r.sop_instance_uid] = r
    ordered = sorted(unique.values(), key=_preference, reverse=True)
    dose_srs = [r for r in ordered if r.source != SOURCE_IMAGE]
    images_only = not dose_srs
    # an RDSR of the study is authoritative: image headers then add only their instances
    base = ordered if images_only else dose_srs
    instances = tuple(sorted({u for r in reports for u in (r.source_instances or (r.sop_instance_uid,))}))
    quirks = tuple(sorted({q for r in reports for q in r.quirks}))
    if len(ordered) == 1:  # nothing to combine: keep the report's own totals (e.g. a device-reported DLP)
        single = ordered[0]
        uid = group_uid(key) if images_only else single.sop_instance_uid
        if (single.sop_instance_uid, single.source_instances, single.quirks) == (uid, instances, quirks):
            return single
        return replace(single, sop_instance_uid=uid, source_instances=instances, quirks=quirks)
    events = _union_events(base)
    all_uids = frozenset(e.uid for e in events)
    superset = next((r for r in base if _event_uids(r) == all_uids and r.accumulated), None)
    primary = superset or base[0]
    extra: tuple[Measurement, ...] = ()
    if images_only:
        extra = _report_level_max(base)
        accumulated = totals_from_events(primary.kind, events, extra)
    elif superset is not None:
        accumulated = superset.accumulated
    elif _disjoint(base) and all(r.accumulated for r in base):
        accumulated = _summed_containers(base)
    else:
        accumulated = totals_from_events(primary.kind, events)
    study = _fill(primary.study, [r.study for r in ordered])
    study = replace(study, modalities=tuple(sorted({m for r in ordered for m in r.study.modalities})))
    merged = replace(
        primary,
        study=study,
        patient=_fill(primary.patient, [r.patient for r in ordered]),
        device=_fill(primary.device, [r.device for r in ordered]),
        started=min((r.started for r in base if r.started), key=_naive, default=None),
        ended=max((r.ended for r in base if r.ended), key=_naive, default=None),
        events=events,
        accumulated=accumulated,
        administrations=_union_administrations(base),
        persons=tuple(dict.fromkeys(p for r in base for p in r.persons)),
        source_of_dose_information=tuple(dict.fromkeys(s for r in base for s in r.source_of_dose_information)),
        measurements=tuple(extra) if images_only else primary.measurements,
        source_instances=instances,
        quirks=quirks,
    )
    if images_only:
        merged = replace(merged, sop_instance_uid=group_uid(key))
    return merged


def _union_events(reports: list[DoseReport]) -> tuple[IrradiationEvent, ...]:
    """Events deduplicated by Irradiation Event UID; the preferred report's copy wins."""
    seen: dict[str, IrradiationEvent] = {}
    for r in reports:
        for e in r.events:
            seen.setdefault(e.uid, e)
    # stable sort: events without a start time keep their report order
    return tuple(sorted(seen.values(), key=lambda e: (e.started is None, _naive(e.started))))


def _union_administrations(reports: list[DoseReport]) -> tuple[RadiopharmaceuticalAdministration, ...]:
    seen: dict[object, RadiopharmaceuticalAdministration] = {}
    for r in reports:
        for a in r.administrations:
            seen.setdefault(a.uid or (a.agent, a.radionuclide, _naive(a.started), a.activity), a)
    return tuple(seen.values())


def _disjoint(reports: list[DoseReport]) -> bool:
    seen: set[str] = set()
    for r in reports:
        uids = _event_uids(r)
        if seen & uids:
            return False
        seen |= uids
    return True


def _summed_containers(reports: list[DoseReport]) -> tuple[AccumulatedDose, ...]:
    """Totals of reports of separate irradiations added per plane, concept and qualifier.

    An unqualified total is summed only when every report with that plane carries it;
    qualified ones (AGD per breast) are summed over the reports that have them.
    """
    planes: dict[Optional[Concept], list[AccumulatedDose]] = {}
    for r in reports:
        for a in r.accumulated:
            planes.setdefault(a.plane, []).append(a)
    out = []
    for containers in planes.values():
        sums: dict[tuple, list[Measurement]] = {}
        for a in containers:
            for m in a.measurements:
                sums.setdefault((m.concept.key, m.qualifier.key if m.qualifier else None), []).append(m)
        items = []
        for (_concept_key, qualifier), ms in sums.items():
            if qualifier is None and len(ms) != len(containers):
                continue
            units = {m.quantity.unit for m in ms}
            if len(units) != 1:
                continue
            items.append(replace(ms[0], quantity=Quantity(_exact_sum(m.quantity.value for m in ms), ms[0].quantity.unit)))
        out.append(replace(containers[0], measurements=tuple(items)))
    return tuple(out)


def _report_level_max(reports: list[DoseReport]) -> tuple[Measurement, ...]:
    """Procedure-step cumulative header values (Total Time of Fluoroscopy): the largest one counts."""
    best: dict[tuple, Measurement] = {}
    for r in reports:
        for m in r.measurements:
            if m.concept.code in _CUMULATIVE_REPORT_VALUES:
                k = m.concept.key
                if k not in best or m.quantity.value > best[k].quantity.value:
                    best[k] = m
    return tuple(best[k] for k in sorted(best))


def _fill(primary, others):
    """``primary`` with its empty fields taken from the first of ``others`` that has them."""
    if not is_dataclass(primary) or isinstance(primary, type):
        return primary
    changes = {}
    for f in fields(primary):
        if f.name == "modalities" or getattr(primary, f.name):
            continue
        for o in others:
            value = getattr(o, f.name)
            if value:
                changes[f.name] = value
                break
    return replace(primary, **changes) if changes else primary
