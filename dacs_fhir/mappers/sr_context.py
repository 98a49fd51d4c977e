"""Observation context and header items of a dose SR (PS3.16 TID 1001-1004, 1007, 1020, 1021).

Procedure reported, intent, irradiation times, scope of accumulation and
source of dose information sit at the root of TID 10001 / 10011 / 10021; device
observer, device participant and person participant items complete the
General Equipment and Patient modules of the header.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from pydicom.dataset import Dataset

from .. import codes as C
from ..domain import Concept, Device, Patient, Person, PersonName, Study
from ..units import UnitError, convert
from . import quirks as Q
from .dicom_header import device_from, parse_datetime, patient_from, person_name, study_from
from .sr_tree import Node
from .sr_values import Context, laterality


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
ACQUISITION_DEVICE_TYPE = "122142"
PATIENT_CHARACTERISTICS = "121118"  # TID 1007


def header_items(root: Node, ctx: Context) -> Head:
    """Procedure reported, intent, irradiation times, scope, sources, observers, persons (root level)."""
    head = Head()
    sources = []
    observer_name, observer_org = PersonName(), ""  # TID 1003 Person Observer
    observer_role: Optional[Concept] = None
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
            elif c in _OBSERVER_FIELDS:  # TID 1004 Device Observer
                if c == C.DEVICE_OBSERVER_UID and n.vt == "TEXT":
                    ctx.quirk(Q.DEVICE_UID_AS_TEXT)
                head.observer[_OBSERVER_FIELDS[c]] = ctx.text(n)
            elif c == DEVICE_ROLE:
                head.add_participant(n, ctx)
            elif c == C.PERSON_NAME:
                head.persons.append(person_of(n, ctx))
            elif c == PERSON_OBSERVER_NAME:  # TID 1003 Person Observer
                observer_name = person_name(ctx.text(n))
            elif c == PERSON_OBSERVER_ORG:
                observer_org = ctx.text(n)
            elif c == PERSON_OBSERVER_ROLE:
                observer_role = ctx.code(n)
            elif c == ACQUISITION_DEVICE_TYPE:
                head.device_type = ctx.code(n)
        elif n.is_snomed(ASSOCIATED_PROCEDURE):  # TID 10021: the study's procedure, kept on Study
            head.associated = ctx.code(n)
            intent = n.find_snomed(C.HAS_INTENT)
            head.intent = intent.coded if intent else head.intent
    head.sources = tuple(s for s in sources if s is not None)
    if observer_name:
        head.persons.append(Person(observer_name, observer_role, "", observer_org))
    return head


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


def read_event_item(n: Node, ctx: Context, f: dict, head: Head) -> bool:
    """A DCM item TID 10003 and TID 10013 share (UID, start, protocol, target region, comment, participants).

    Event fields go to ``f``, participants to ``head``; False when the item is none of these.
    """
    c = n.code
    if c == C.IRRADIATION_EVENT_UID:
        f["uid"] = n.text
    elif c == C.DATETIME_STARTED:
        f["started"] = parse_datetime(n.text)
    elif c == C.ACQUISITION_PROTOCOL:
        f["protocol"] = ctx.text(n)
    elif c == C.TARGET_REGION:
        f["target_region"] = ctx.code(n)
        f["laterality"] = laterality(n) or f.get("laterality")
    elif c == C.COMMENT:
        f["comment"] = ctx.text(n)
    elif c == C.PERSON_NAME:
        head.persons.append(person_of(n, ctx))
    elif c == DEVICE_ROLE:
        head.add_participant(n, ctx)
    else:
        return False
    return True


def unique_persons(persons: list[Person]) -> list[Person]:
    """Persons without repeats of the same name in the same role, first seen first."""
    seen = set()
    out = []
    for p in persons:
        key = (p.name.text, p.role.key if p.role else None)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


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
    """General Study module; the scope's Study Instance UID and TID 10021's associated procedure fill gaps."""
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
