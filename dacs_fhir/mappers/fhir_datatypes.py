"""FHIR R4 datatypes and identifiers shared by the Bundle's resources (HL7 Radiation Dose Summary IG 1.0.0).

Canonical URLs of the profiles we claim, Coding / CodeableConcept / Quantity / HumanName from the
domain model, the business identifiers (DICOM UIDs, accession number) and references. A resource
known by ``system|value`` gets a deterministic fullUrl: the uuid5 rule of ``hl7v2.datatypes``.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date, datetime
from functools import lru_cache
from typing import Optional
from urllib.parse import quote

from .. import codes as c
from ..domain import Concept, DoseReport, Measurement, PersonName, Quantity

RDS = "http://hl7.org/fhir/uv/radiation-dose-summary"
OURS = "https://dacs-fhir.org/fhir"
SID = f"{OURS}/sid"
PROFILE_RDS_SUMMARY = f"{RDS}/StructureDefinition/radiation-dose-summary"
PROFILE_MODALITY_DEVICE = f"{RDS}/StructureDefinition/modality-device"
PROFILE_DOSE_SUMMARY = f"{OURS}/StructureDefinition/dose-summary"
PROFILE_IRRADIATION_EVENT = f"{OURS}/StructureDefinition/irradiation-event"
EXT_TARGET_SITE = f"{OURS}/StructureDefinition/dose-target-site"
SYS_ID_TYPE = f"{RDS}/CodeSystem/dicom-identifier-type"  # RDS IG CodeSystem dicom-identifier-type
SYS_DOSE_SUMMARY = f"{SID}/dose-summary"
DATA_ABSENT_UNKNOWN = {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
# Numeric concepts that are counts: valueInteger, as the RDS IG types 113731
COUNTS = frozenset({c.TOTAL_NUMBER_OF_EVENTS, c.TOTAL_NUMBER_OF_FRAMES, c.NUMBER_OF_PULSES, c.NUMBER_OF_XRAY_SOURCES})
_URL_NS = uuid.NAMESPACE_URL.bytes


# ---------------------------------------------------------------------------- identifiers


def full_url(system: str, value: str, rtype: str) -> str:
    """Deterministic ``urn:uuid`` of a resource known by ``system|value`` (same rule as ``hl7v2.datatypes.full_url``)."""
    return f"urn:uuid:{uuid5(f'{rtype}|{system}|{value}')}"


def identifier_criterion(system: str, value: str) -> str:
    r"""``identifier=system|value`` as a conditional-interaction query: the value escaped for FHIR search
    (``\\``, ``\|``, ``\,``, ``\$``; R4 search.html#escaping), then URL-encoded, so identifiers with
    any characters match exactly one token."""
    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
    return "identifier=" + quote(system, safe=":/") + "|" + quote(escaped, safe=":/")


def uuid5(name: str) -> str:
    """RFC 4122 name-based (SHA-1) UUID in the URL namespace, as ``uuid.uuid5`` but without its object overhead."""
    b = bytearray(hashlib.sha1(_URL_NS + name.encode("utf-8")).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def authority_system(issuer: str, kind: str) -> str:
    """Identifier system for a DICOM issuer (0010,0021) / (0008,0051): OID or URI as is, else under our sid base."""
    if re.fullmatch(r"[0-2](\.\d+)+", issuer):
        return f"urn:oid:{issuer}"
    if re.match(r"^[a-z][a-z0-9+.-]*:", issuer):
        return issuer
    return f"{SID}/{kind}/{quote(issuer, safe='')}" if issuer else f"{SID}/{kind}"


def id_type(system: str, code: str, display: str) -> dict:
    """Identifier.type with one coding."""
    return {"coding": [{"system": system, "code": code, "display": display}]}


def uid_identifier(uid: str, type_code: str = "", display: str = "") -> dict:
    """A DICOM UID as an ``urn:oid`` Identifier, typed by the RDS IG dicom-identifier-type when given."""
    ident: dict = {"system": c.SYS_DICOM_UID, "value": f"urn:oid:{uid}"}
    if type_code:
        ident = {"type": id_type(SYS_ID_TYPE, type_code, display), **ident}
    return ident


def accession_identifier(r: DoseReport) -> dict:
    """Accession Number (0008,0050) with its issuer (0008,0051), typed ACSN (HL7 table 0203)."""
    return {"type": id_type(c.SYS_V2_0203, "ACSN", "Accession ID"),
            "system": authority_system(r.study.accession_issuer, "accession"), "value": r.study.accession_number}


def reference(target: dict, identifier: Optional[dict] = None) -> dict:
    """A Reference to an in-Bundle entry (``{"reference", "type"}`` as returned when it was added)."""
    out = {"reference": target["reference"], "type": target["type"]}
    if identifier:
        out["identifier"] = identifier
    return out


# ---------------------------------------------------------------------------- datatypes


def coding(concept: Concept) -> dict:
    """DICOM coded concept -> Coding; SNOMED-RT codes with a SNOMED CT pair go out as SCT (PS3.16 Annex O)."""
    return dict(_coding(concept.scheme, concept.code, concept.meaning))


@lru_cache(maxsize=4096)
def _coding(scheme: str, code: str, meaning: str) -> dict:
    if scheme in ("SRT", "SNM3") and code in c.SRT_TO_SCT:
        scheme, code = "SCT", c.SRT_TO_SCT[code]
    out = {"system": c.scheme_system(scheme), "code": code}
    if meaning:
        out["display"] = meaning
    return out


def concept(cpt: Concept) -> dict:
    return {"coding": [dict(_coding(cpt.scheme, cpt.code, cpt.meaning))]}


def dcm(code: str, meaning: str) -> dict:
    """CodeableConcept of a DICOM (DCM) code."""
    return {"coding": [dict(_coding("DCM", code, meaning))]}


def quantity(q: Quantity) -> dict:
    """Canonical UCUM quantity (units.py): ``unit`` and ``code`` both the UCUM code, as in the RDS IG examples."""
    return {"value": q.value, "unit": q.unit, "system": c.SYS_UCUM, "code": q.unit}


def fhir_datetime(value) -> Optional[str]:
    """FHIR dateTime; a DICOM time without offset is taken as local time of this system."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.astimezone()).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def human_name(name: PersonName) -> dict:
    out: dict = {}
    if name.family:
        out["family"] = name.family
    if name.given:
        out["given"] = list(name.given)
    if name.prefix:
        out["prefix"] = [name.prefix]
    if name.suffix:
        out["suffix"] = [name.suffix]
    return out


def number(value: float) -> str:
    """A number for display text: plain decimal, never an exponent."""
    from decimal import Decimal

    text = format(Decimal(repr(float(value))).normalize(), "f")
    return text[:-2] if text.endswith(".0") else text


def component(code: dict, measurement: Optional[Measurement] = None, **value) -> dict:
    """Observation.component of a measurement: valueInteger for counts, else valueQuantity; qualifier as target site."""
    comp: dict = {"code": code}
    if measurement is not None:
        q = measurement.quantity
        if measurement.concept.code in COUNTS and float(q.value).is_integer():
            comp["valueInteger"] = int(q.value)
        else:
            comp["valueQuantity"] = quantity(q)
        if measurement.qualifier is not None:
            comp["extension"] = [{"url": EXT_TARGET_SITE, "valueCodeableConcept": concept(measurement.qualifier)}]
    comp.update(value)
    return comp
