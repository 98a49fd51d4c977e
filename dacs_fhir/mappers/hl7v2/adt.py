"""ADT (HL7 v2.5.1 ch. 3) -> FHIR Patient and body-size Observations, as one transaction Bundle.

PID-3 identifiers (PID-2 in pre-2.3 style feeds) with their assigning authority
become ``Patient.identifier``; name, birth date, sex, address and death follow
the HL7 v2-to-FHIR PID map. Weight and height from OBX (LOINC 29463-7 / 8302-2,
or the IHE RAD TF-2 "BODY WEIGHT" / "BODY HEIGHT" identifiers with no code) are
kept as vital-signs Observations of the patient: size-specific dose needs them
with their date, which a Patient extension could not carry.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Optional

from ...codes import SYS_LOINC, SYS_OBS_CATEGORY, SYS_UCUM
from ...hl7v2.errors import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, TABLE_VALUE_NOT_FOUND, ContentError, Location
from ...hl7v2.message import Inbound, Segment
from .datatypes import (
    GENDER,
    SID_BASE,
    address,
    fhir_date,
    fhir_datetime,
    full_url,
    human_name,
    identifier_criterion,
    identifier_cx,
)

OBX_ID_SYSTEM = f"{SID_BASE}/hl7v2-obx"
WEIGHT, HEIGHT = "29463-7", "8302-2"
# LOINC body weight / height codes and the IHE RAD TF-2 OBX-3.2 identifiers used without a code
SIZE_CODES = {"29463-7": WEIGHT, "3141-9": WEIGHT, "8302-2": HEIGHT, "3137-7": HEIGHT}
SIZE_TEXTS = {"BODY WEIGHT": WEIGHT, "BODY HEIGHT": HEIGHT}
SIZE_DISPLAY = {WEIGHT: "Body weight", HEIGHT: "Body height"}
# UCUM unit of the FHIR vital-signs profile, and the factor from each unit seen in OBX-6
SIZE_UNITS: dict[str, tuple[str, dict[str, int | Decimal]]] = {
    WEIGHT: ("kg", {"kg": 1, "g": Decimal("0.001"), "lb": Decimal("0.45359237"), "[lb_av]": Decimal("0.45359237")}),
    HEIGHT: ("cm", {"cm": 1, "m": 100, "mm": Decimal("0.1"), "in": Decimal("2.54"), "[in_i]": Decimal("2.54")}),
}


def patient_identifiers(inb: Inbound, pid: Segment) -> list[dict]:
    """PID-3 repetitions (PID-2 when PID-3 is empty, as older feeds send)."""
    for fld in (3, 2):
        ids = [i for r in inb.iter_reps(pid, fld) if (i := identifier_cx(inb, pid, fld, r))]
        if ids:
            return ids
    return []


def patient_resource(inb: Inbound, pid: Segment) -> dict:
    """PID -> Patient (HL7 v2-to-FHIR IG, segment map PID[Patient])."""
    ids = patient_identifiers(inb, pid)
    if not ids:
        raise ContentError("PID-3 patient identifier missing", REQUIRED_FIELD_MISSING, Location("PID", inb.segment_sequence(pid), 3, 1, 1))
    patient: dict = {"resourceType": "Patient", "identifier": ids, "active": True}
    names = [n for r in inb.iter_reps(pid, 5) if (n := human_name(inb, pid, 5, r))]
    if names:
        patient["name"] = names
    sex = inb.value(pid, 8).upper()
    if sex:
        if sex not in GENDER:
            raise ContentError("PID-8 sex not in HL7 table 0001", TABLE_VALUE_NOT_FOUND, Location("PID", 1, 8, 1, 1))
        patient["gender"] = GENDER[sex]
    birth = fhir_date(inb.value(pid, 7), Location("PID", 1, 7, 1, 1))
    if birth:
        patient["birthDate"] = birth
    addresses = [a for r in inb.iter_reps(pid, 11) if (a := address(inb, pid, 11, r))]
    if addresses:
        patient["address"] = addresses
    death = fhir_datetime(inb.value(pid, 29), Location("PID", 1, 29, 1, 1))
    if death:
        patient["deceasedDateTime"] = death
    elif inb.value(pid, 30).upper() == "Y":
        patient["deceasedBoolean"] = True
    return patient


def size_observations(inb: Inbound, patient_ref: str, when: Optional[str]) -> list[dict]:
    """OBX body weight / height -> vital-signs Observations (FHIR R4 bodyweight / bodyheight profiles)."""
    out = []
    sender = inb.value("MSH", 3) or "unknown"
    for n, obx in enumerate(inb.segments("OBX"), start=1):
        code = inb.value(obx, 3, 1, 1)
        kind = SIZE_CODES.get(code) if code else SIZE_TEXTS.get(inb.value(obx, 3, 1, 2).upper())
        if kind is None:
            continue
        loc = Location("OBX", n, 5, 1, 1)
        raw = inb.value(obx, 5)
        if not raw:
            continue
        unit_in = inb.value(obx, 6, 1, 1) or SIZE_UNITS[kind][0]
        unit, factors = SIZE_UNITS[kind]
        try:
            value = Decimal(raw.replace(",", "."))
        except InvalidOperation:
            raise ContentError(f"OBX-5 {SIZE_DISPLAY[kind].lower()} is not a number", DATA_TYPE_ERROR, loc) from None
        factor = factors.get(unit_in) or factors.get(unit_in.lower())
        if factor is None:
            raise ContentError(f"OBX-6 unit of {SIZE_DISPLAY[kind].lower()} not understood", DATA_TYPE_ERROR, Location("OBX", n, 6, 1, 1))
        value = (value * Decimal(factor)).normalize()
        ident = {"system": OBX_ID_SYSTEM, "value": f"{sender}|{inb.control_id}|{inb.value(obx, 1) or n}"}
        obs = {
            "resourceType": "Observation",
            "identifier": [ident],
            "status": "final",
            "category": [{"coding": [{"system": SYS_OBS_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": SYS_LOINC, "code": kind, "display": SIZE_DISPLAY[kind]}]},
            "subject": {"reference": patient_ref},
            "valueQuantity": {"value": float(value), "unit": unit, "system": SYS_UCUM, "code": unit},
        }
        effective = fhir_datetime(inb.value(obx, 14), Location("OBX", n, 14, 1, 1)) or when
        if effective:
            obs["effectiveDateTime"] = effective
        out.append(obs)
    return out


def updated_entry(resource: dict) -> dict:
    """Transaction entry: conditional update on the resource's first identifier (Patient by MRN,
    ServiceRequest by accession number)."""
    ident = resource["identifier"][0]
    rtype = resource["resourceType"]
    return {
        "fullUrl": full_url(ident["system"], ident["value"], rtype),
        "resource": resource,
        "request": {"method": "PUT", "url": f"{rtype}?{identifier_criterion(ident['system'], ident['value'])}"},
    }


def created_entry(resource: dict) -> dict:
    """Transaction entry: conditional create on the resource's first identifier (replays add nothing)."""
    ident = resource["identifier"][0]
    rtype = resource["resourceType"]
    return {
        "fullUrl": full_url(ident["system"], ident["value"], rtype),
        "resource": resource,
        "request": {"method": "POST", "url": rtype, "ifNoneExist": identifier_criterion(ident["system"], ident["value"])},
    }


def bundle(entries: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def patient_bundle(inb: Inbound) -> dict:
    """ADT^A01/A04/A08/A28/A31 (and the PID of orders) -> transaction Bundle: Patient + size Observations."""
    pid = inb.segment("PID")
    if pid is None:
        raise ContentError("PID segment missing", REQUIRED_FIELD_MISSING, Location("PID"))
    entry = updated_entry(patient_resource(inb, pid))
    when = fhir_datetime(inb.value("EVN", 2), Location("EVN", 1, 2, 1, 1)) or fhir_datetime(inb.value("MSH", 7), Location("MSH", 1, 7, 1, 1))
    obs = size_observations(inb, entry["fullUrl"], when)
    return bundle([entry] + [created_entry(o) for o in obs])


def prior_identifiers(inb: Inbound) -> list[dict]:
    """MRG-1 prior patient identifier list (ADT^A40, HL7 v2.5.1 §3.4.2)."""
    mrg = inb.segment("MRG")
    if mrg is None:
        raise ContentError("MRG segment missing", REQUIRED_FIELD_MISSING, Location("MRG"))
    ids = [i for r in inb.iter_reps(mrg, 1) if (i := identifier_cx(inb, mrg, 1, r))]
    if not ids:
        raise ContentError("MRG-1 prior patient identifier missing", REQUIRED_FIELD_MISSING, Location("MRG", 1, 1, 1, 1))
    return ids
