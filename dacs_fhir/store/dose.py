"""Dose analytics tables filled from the domain model, so statistics (DRLs, cumulative dose per
patient) are plain SQL; and the domain reports kept per study for re-merging (their JSON form is
made by the caller: the store knows nothing of mappers)."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Iterable, Optional

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from .. import codes
from ..domain import DoseReport, IrradiationEvent
from ..jsontext import compact
from . import dates
from .models import dose_report, dose_study, dose_summary, dose_total, irradiation_event, resource as R
from .raw import ArrayInsert, Statement

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


def record_parts(conn: Connection, report: DoseReport, kept: DoseReport, kept_json: dict,
                 resources: Iterable[dict] = ()) -> tuple[list[tuple], list[tuple]]:
    """Statements replacing the analytics rows of ``report``'s (study, kind, device) with its current
    values, and keeping ``kept`` (a study's object's own report, ``kept_json`` its JSON form) for later
    merges; ``resources``: the FHIR resources written for the report, whose references the rows carry.

    As (deletes, writes): the three deletes of the rows the report replaces, then the study upsert,
    three inserts and the kept-report upsert. The deletes only remove rows that were there before,
    and the writes touch none of them, so on PostgreSQL each part can be one statement
    (``raw.in_one``). There the totals and events are one array INSERT each, and all of it can share
    one round trip with the transaction's other writes."""
    study_uid = report.study.instance_uid
    device_key = report.device.key[:255]
    refs = _references(resources)
    scope = dict(study_uid=study_uid, kind=report.kind, device_key=device_key)
    s, d = report.study, report.device
    study = dict(study_uid=study_uid, patient_key=patient_key(report), patient_ref=refs.get("patient_ref"),
                 accession_number=s.accession_number[:64] or None, started=_naive(s.started or report.started),
                 modalities="\\".join(s.modalities)[:64] or None, institution=s.institution[:128] or None,
                 study_ref=refs.get("study_ref"), updated=_now())
    summary_row = dict(scope, source=report.source, modality=report.modality, manufacturer=d.manufacturer[:128],
                       model=d.model[:128], station_name=d.station_name[:64],
                       started=_naive(report.started or report.study.started),
                       event_count=len(report.events) or len(report.administrations), summary_ref=refs.get("summary"))
    totals = [dict(scope, **t) for t in _totals(report)]
    rows = [_event_row(study_uid, report.kind, device_key, ev, refs) for ev in report.events]
    kept_row = dict(study_uid=kept.study.instance_uid, sop_instance_uid=kept.sop_instance_uid, kind=kept.kind,
                    recorded=_now(), content=compact(kept_json))
    postgres = conn.dialect.name == "postgresql"
    # a study seen before: its rows of this kind and device are replaced
    deletes = [stmt.bind(conn, scope) for stmt in _DELETE_SCOPE]
    work = [(_UPSERT_STUDY_PG if postgres else _UPSERT_STUDY_SQLITE).bind(conn, study)]
    work.append(_INSERT_SUMMARY.bind(conn, summary_row))
    for table_rows, array_insert, stmt in ((totals, _TOTALS_PG, _INSERT_TOTAL), (rows, _EVENTS_PG, _INSERT_EVENT)):
        if table_rows and postgres:
            work.append(array_insert.bind(table_rows))
        else:
            assert stmt.keys is not None  # an INSERT names its columns
            work += [stmt.bind(conn, {k: r.get(k) for k in stmt.keys}) for r in table_rows]
    work.append((_UPSERT_REPORT_PG if postgres else _UPSERT_REPORT_SQLITE).bind(conn, kept_row))
    return deletes, work


def _upsert(dialect_insert, table, key: list[str], keep_if_null: tuple[str, ...] = ()) -> Statement:
    """INSERT … ON CONFLICT (key) DO UPDATE of every other column (``keep_if_null`` ones only when given)."""
    cols = [c.name for c in table.c]
    stmt = dialect_insert(table).values({c: bindparam(c) for c in cols})
    update = {c: (func.coalesce(stmt.excluded[c], table.c[c]) if c in keep_if_null else stmt.excluded[c])
              for c in cols if c not in key}
    return Statement(stmt.on_conflict_do_update(index_elements=key, set_=update))


_REFS = ("patient_ref", "study_ref")
_UPSERT_STUDY_PG = _upsert(pg_insert, dose_study, ["study_uid"], _REFS)
_UPSERT_STUDY_SQLITE = _upsert(sqlite_insert, dose_study, ["study_uid"], _REFS)
_UPSERT_REPORT_PG = _upsert(pg_insert, dose_report, ["study_uid", "sop_instance_uid"])
_UPSERT_REPORT_SQLITE = _upsert(sqlite_insert, dose_report, ["study_uid", "sop_instance_uid"])
_DELETE_SCOPE = [Statement(delete(t).where(t.c.study_uid == bindparam("study_uid"), t.c.kind == bindparam("kind"),
                                           t.c.device_key == bindparam("device_key")))
                 for t in (dose_summary, dose_total, irradiation_event)]
_INSERT_SUMMARY, _INSERT_TOTAL, _INSERT_EVENT = (Statement(insert(t), [c.name for c in t.c])
                                                 for t in (dose_summary, dose_total, irradiation_event))
_TOTALS_PG, _EVENTS_PG = ArrayInsert(dose_total, json_rows=True), ArrayInsert(irradiation_event, json_rows=True)


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


def read_back(conn: Connection, references: Iterable[str]) -> list[dict]:
    """The current resources named by ``Type/id`` references (written in this transaction and flushed)."""
    by_type: dict[str, list[str]] = {}
    for ref in references:
        if ref.count("/") == 1:
            rtype, rid = ref.split("/")
            by_type.setdefault(rtype, []).append(rid)
    out: list[dict] = []
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


REPORTS_FOR_STUDY = Statement(select(dose_report.c.content).where(dose_report.c.study_uid == bindparam("uid"))
                               .order_by(dose_report.c.recorded, dose_report.c.sop_instance_uid))
