"""Dose analytics tables filled from the domain model, so statistics (DRLs, cumulative dose per
patient) are plain SQL; and the domain reports kept per study for re-merging."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Iterable, Optional

from sqlalchemy import and_, delete, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from .. import codes
from ..domain import DoseReport, IrradiationEvent
from . import dates
from .models import dose_report, dose_study, dose_summary, dose_total, irradiation_event, resource as R


LOINC_DOSE_SUMMARY = "73569-6"  # RDS IG radiation-dose-summary Observation.code
# irradiation_event column -> DCM code (TID 10013 / TID 10003), canonical units of units.py
EVENT_VALUES = {"ctdivol": codes.MEAN_CTDIVOL, "dlp": codes.DLP, "ssde": codes.SSDE, "dap": codes.DAP,
                "dose_rp": codes.DOSE_RP, "agd": codes.AGD, "kvp": codes.KVP, "exposure_time": codes.EXPOSURE_TIME}


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _naive(value: Optional[datetime]) -> Optional[datetime]:
    return dates.to_utc_naive(value) if value is not None else None


def patient_key(report: DoseReport) -> Optional[str]:
    """A pseudonymous patient key (the identifier itself is PHI and stays in the Patient resource)."""
    p = report.patient
    return hashlib.sha256(f"{p.issuer}|{p.id}".encode()).hexdigest() if p.id else None


def record(conn: Connection, report: DoseReport, summary=None, events=None, dumped: Optional[dict] = None) -> None:
    """Replace the analytics rows of ``report``'s (study, kind, device) with its current values.

    ``summary``/``events`` are the FHIR resources written for the report (dicts, ``Type/id``
    strings or a fullUrl -> ``Type/id`` map); a DoseReport given as ``summary`` is the source
    report to keep for later merges (otherwise ``report`` itself is kept).
    """
    study_uid = report.study.instance_uid
    device_key = report.device.key[:255]
    resources = _resources(conn, summary, events)
    refs = _references(resources)
    if _upsert_study(conn, report, refs):  # a study seen before: replace its rows of this kind and device
        for table in (dose_summary, dose_total, irradiation_event):
            conn.execute(delete(table).where(table.c.study_uid == study_uid, table.c.kind == report.kind,
                                             table.c.device_key == device_key))
    d = report.device
    conn.execute(insert(dose_summary).values(
        study_uid=study_uid, kind=report.kind, device_key=device_key, source=report.source,
        modality=report.modality, manufacturer=d.manufacturer[:128], model=d.model[:128],
        station_name=d.station_name[:64], started=_naive(report.started or report.study.started),
        event_count=len(report.events) or len(report.administrations), summary_ref=refs.get("summary")))
    totals = [dict(study_uid=study_uid, kind=report.kind, device_key=device_key, **t) for t in _totals(report)]
    if totals:
        conn.execute(insert(dose_total), totals)
    rows = [_event_row(study_uid, report.kind, device_key, ev, refs) for ev in report.events]
    if rows:
        conn.execute(insert(irradiation_event), rows)
    keep_report(conn, summary if isinstance(summary, DoseReport) else report, dumped)


def _upsert_study(conn: Connection, report: DoseReport, refs: dict) -> bool:
    """Insert or update the study row; True when it existed."""
    s = report.study
    values = dict(patient_key=patient_key(report), accession_number=s.accession_number[:64] or None,
                  started=_naive(s.started or report.started), modalities="\\".join(s.modalities)[:64] or None,
                  institution=s.institution[:128] or None, updated=_now())
    for key in ("patient_ref", "study_ref"):
        if refs.get(key):
            values[key] = refs[key]
    if conn.dialect.name == "postgresql":  # one round trip; xmax = 0 only on a row this statement inserted
        stmt = pg_insert(dose_study).values(study_uid=s.instance_uid, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[dose_study.c.study_uid], set_=values)
        return not conn.execute(stmt.returning(literal_column("xmax = 0"))).scalar_one()
    exists = conn.execute(select(dose_study.c.study_uid).where(dose_study.c.study_uid == s.instance_uid)).first()
    if exists:
        conn.execute(update(dose_study).where(dose_study.c.study_uid == s.instance_uid).values(**values))
        return True
    conn.execute(insert(dose_study).values(study_uid=s.instance_uid, **values))
    return False


def _totals(report: DoseReport) -> list[dict]:
    """Study totals per concept (summed over planes), plus radiopharmaceutical activity and effective dose."""
    keys = []
    for m in [m for a in report.accumulated for m in a.measurements] + list(report.measurements):
        key = (m.concept.scheme, m.concept.code, m.qualifier.code if m.qualifier else None)
        if key not in keys:
            keys.append(key)
    out = []
    for scheme, code, qualifier in keys:
        q = report.total(code, scheme, qualifier)
        if q is not None:
            out.append(dict(scheme=scheme, code=code, qualifier=qualifier or "", value=q.value, unit=q.unit))
    for code, attr in (("113507", "activity"), ("113839", "effective_dose")):
        values = [getattr(a, attr) for a in report.administrations if getattr(a, attr) is not None]
        if values:
            out.append(dict(scheme="DCM", code=code, qualifier="", value=sum(v.value for v in values), unit=values[0].unit))
    return out


def _event_value(ev: IrradiationEvent, code: str) -> Optional[float]:
    q = ev.get(code)
    if q is None:
        for source in ev.sources:  # CT: kVp, exposure time per X-ray source (TID 10013 113831)
            q = source.get(code)
            if q is not None:
                break
    return q.value if q is not None else None


def _event_row(study_uid: str, kind: str, device_key: str, ev: IrradiationEvent, refs: dict) -> dict:
    return dict(study_uid=study_uid, kind=kind, device_key=device_key, event_uid=ev.uid[:64],
                started=_naive(ev.started), event_type=ev.event_type.code if ev.event_type else None,
                protocol=ev.protocol[:255] or None, target_region=ev.target_region.code if ev.target_region else None,
                observation_ref=refs.get("events", {}).get(f"urn:oid:{ev.uid}"),
                **{col: _event_value(ev, code) for col, code in EVENT_VALUES.items()})


def _resources(conn: Connection, summary, events) -> list[dict]:
    """The FHIR resources written for the report, loaded from this transaction when given as references."""
    items: list = []
    for part in (summary, events):
        if isinstance(part, dict) and "resourceType" in part:
            items.append(part)
        elif isinstance(part, dict):
            items.extend(part.values())
        elif isinstance(part, (list, tuple)):
            items.extend(part)
    out, wanted = [], []
    for item in items:
        if isinstance(item, dict) and "resourceType" in item:
            out.append(item)
        elif isinstance(item, str) and item.count("/") == 1:
            wanted.append(tuple(item.split("/")))
    by_type: dict[str, list[str]] = {}
    for rtype, rid in wanted:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, rids in by_type.items():
        found = conn.execute(select(R.c.content).where(R.c.rtype == rtype, R.c.rid.in_(rids), R.c.content.is_not(None)))
        out.extend(json.loads(c) for c in found.scalars())
    return out


def _references(resources: Iterable[dict]) -> dict:
    refs: dict = {"events": {}}
    for res in resources:
        ref = f"{res['resourceType']}/{res.get('id')}"
        if res["resourceType"] == "Patient":
            refs.setdefault("patient_ref", ref)
        elif res["resourceType"] == "ImagingStudy":
            refs.setdefault("study_ref", ref)
        elif res["resourceType"] == "Observation":
            codings = (res.get("code") or {}).get("coding") or []
            if any(c.get("code") == LOINC_DOSE_SUMMARY for c in codings):
                refs.setdefault("summary", ref)
            for ident in res.get("identifier") or []:
                if isinstance(ident.get("value"), str):
                    refs["events"].setdefault(ident["value"], ref)
    return refs


def keep_report(conn: Connection, report: DoseReport, dumped: Optional[dict] = None) -> None:
    """Keep the serialized domain report (``mappers.report_json``; ``dumped`` when the caller has it)
    for later merges of its study."""
    if dumped is None:
        from ..mappers import report_json

        dumped = report_json.dump(report)
    content = json.dumps(dumped, separators=(",", ":"), ensure_ascii=False)
    values = dict(content=content, kind=report.kind, recorded=_now())
    dialect = {"postgresql": pg_insert, "sqlite": sqlite_insert}.get(conn.dialect.name)
    if dialect is not None:  # one upsert on the primary key (study, SOP instance)
        stmt = dialect(dose_report).values(study_uid=report.study.instance_uid,
                                           sop_instance_uid=report.sop_instance_uid, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=[dose_report.c.study_uid, dose_report.c.sop_instance_uid],
                                                set_=values))
        return
    key = and_(dose_report.c.study_uid == report.study.instance_uid,
               dose_report.c.sop_instance_uid == report.sop_instance_uid)
    if conn.execute(select(dose_report.c.study_uid).where(key)).first():
        conn.execute(update(dose_report).where(key).values(**values))
    else:
        conn.execute(insert(dose_report).values(study_uid=report.study.instance_uid,
                                                sop_instance_uid=report.sop_instance_uid, **values))


def reports_for_study(conn: Connection, study_uid: str) -> list[dict]:
    rows = conn.execute(select(dose_report.c.content).where(dose_report.c.study_uid == study_uid)
                        .order_by(dose_report.c.recorded, dose_report.c.sop_instance_uid)).scalars()
    return [json.loads(c) for c in rows]
