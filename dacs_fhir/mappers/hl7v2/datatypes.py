"""HL7 v2 data types -> FHIR R4 data types (HL7 v2-to-FHIR IG 1.0 datatype maps: CX, XPN, XAD, DTM, CWE, EI)."""
from __future__ import annotations

import re
from typing import Optional
from urllib.parse import quote

from ...codes import SYS_V2_0203, scheme_system
from ...hl7v2.errors import DATA_TYPE_ERROR, ContentError, Location
from ...hl7v2.message import Inbound, Segment
from ..fhir_datatypes import full_url, identifier_criterion  # noqa: F401  (shared with the DICOM mapping)

SID_BASE = "https://dacs-fhir.org/fhir/sid"
PATIENT_ID = "patient-id"
ACCESSION = "accession"
ORDER = "order"

# HL7 table 0001 Administrative Sex -> FHIR administrative-gender
GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown", "X": "other"}
# HL7 table 0200 Name Type -> FHIR HumanName.use
NAME_USE = {"L": "official", "D": "usual", "M": "maiden", "N": "nickname", "A": "usual", "B": "old", "BAD": "old", "TEMP": "temp"}
# HL7 table 0190 Address Type -> FHIR Address.use / type
ADDRESS_USE = {"H": "home", "B": "work", "O": "work", "C": "temp", "BA": "old", "BDL": "home", "M": None}
# coding systems seen in CWE-3 beyond DICOM scheme designators
V2_SYSTEMS = {"C4": "http://www.ama-assn.org/go/cpt", "I9": "http://hl7.org/fhir/sid/icd-9-cm", "SNOMED": "http://snomed.info/sct", "ISO": "urn:ietf:bcp:47"}
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d{1,4})?)?([+-]\d{4})?$")


def authority_system(namespace: str, universal_id: str = "", universal_type: str = "", kind: str = PATIENT_ID) -> str:
    """FHIR identifier system for an assigning authority (HD).

    The namespace (HD-1) comes first, by the rule the DICOM mapper applies to Issuer
    of Patient ID (0010,0021), so that a RIS patient and the patient of an RDSR
    meet on one system; the universal id (HD-2/3) is used when there is no namespace.
    """
    if namespace:
        if re.fullmatch(r"[0-2](\.\d+)+", namespace):
            return f"urn:oid:{namespace}"
        if re.match(r"^[a-z][a-z0-9+.-]*:", namespace):
            return namespace
        return f"{SID_BASE}/{kind}/{quote(namespace, safe='')}"
    utype = universal_type.upper()
    if universal_id:
        if utype == "ISO" or re.fullmatch(r"[0-2](\.\d+)+", universal_id):
            return f"urn:oid:{universal_id}"
        if utype == "UUID":
            return f"urn:uuid:{universal_id.lower()}"
        if utype == "DNS":
            return f"https://{universal_id}"
        return universal_id if re.match(r"^[a-z][a-z0-9+.-]*:", universal_id) else f"{SID_BASE}/{kind}/{quote(universal_id, safe='')}"
    return f"{SID_BASE}/{kind}"





def identifier_cx(inb: Inbound, seg: Segment, fld: int, rep: int, kind: str = PATIENT_ID) -> Optional[dict]:
    """CX -> Identifier: CX-1 value, CX-4 assigning authority -> system, CX-5 identifier type (table 0203)."""
    v = lambda c, s=1: inb.value(seg, fld, rep, c, s)  # noqa: E731
    value = v(1)
    if not value:
        return None
    ident: dict = {"system": authority_system(v(4, 1), v(4, 2), v(4, 3), kind), "value": value}
    if v(5):
        ident["type"] = {"coding": [{"system": SYS_V2_0203, "code": v(5)}]}
    return ident


def identifier_ei(inb: Inbound, seg: Segment, fld: int, kind: str, type_code: str = "") -> Optional[dict]:
    """EI -> Identifier: EI-1 value, EI-2..4 namespace / universal id / type -> system."""
    v = lambda c: inb.value(seg, fld, 1, c)  # noqa: E731
    if not v(1):
        return None
    ident: dict = {"system": authority_system(v(2), v(3), v(4), kind), "value": v(1)}
    if type_code:
        ident["type"] = {"coding": [{"system": SYS_V2_0203, "code": type_code}]}
    return ident


def human_name(inb: Inbound, seg: Segment, fld: int, rep: int) -> Optional[dict]:
    """XPN -> HumanName: family (XPN-1.1), given (XPN-2, XPN-3), suffix (XPN-4, 6), prefix (XPN-5), use (XPN-7)."""
    v = lambda c, s=1: inb.value(seg, fld, rep, c, s)  # noqa: E731
    family = v(1, 1)
    given = [g for g in (v(2), v(3)) if g]
    if not family and not given:
        return None
    name: dict = {}
    use = NAME_USE.get(v(7).upper())
    if use:
        name["use"] = use
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    if v(5):
        name["prefix"] = [v(5)]
    suffix = [s for s in (v(4), v(6)) if s]
    if suffix:
        name["suffix"] = suffix
    return name


def address(inb: Inbound, seg: Segment, fld: int, rep: int) -> Optional[dict]:
    """XAD -> Address: line (XAD-1.1, XAD-2), city, state, postalCode, country, use/type (XAD-7)."""
    v = lambda c, s=1: inb.value(seg, fld, rep, c, s)  # noqa: E731
    street = " ".join(x for x in (v(1, 1), v(1, 2), v(1, 3)) if x)  # SAD: street, street name, dwelling number
    lines = [x for x in (street, v(2)) if x]
    out: dict = {}
    if lines:
        out["line"] = lines
    for key, comp in (("city", 3), ("state", 4), ("postalCode", 5), ("country", 6)):
        if v(comp):
            out[key] = v(comp)
    if not out:
        return None
    kind = v(7).upper()
    if kind == "M":
        out["type"] = "postal"
    elif ADDRESS_USE.get(kind):
        out["use"] = ADDRESS_USE[kind]
    return out


def fhir_date(value: str, where: Location) -> Optional[str]:
    """DTM/DT -> FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)."""
    if not value:
        return None
    m = _DTM.match(value)
    if not m:
        raise ContentError(f"{where.segment}-{where.field} is not an HL7 date", DATA_TYPE_ERROR, where)
    y, mo, d = m.group(1), m.group(2), m.group(3)
    try:
        if mo and not 1 <= int(mo) <= 12 or d and not 1 <= int(d) <= 31:
            raise ValueError
    except ValueError:
        raise ContentError(f"{where.segment}-{where.field} is not a valid date", DATA_TYPE_ERROR, where) from None
    return "-".join(p for p in (y, mo, d) if p)


def fhir_datetime(value: str, where: Location) -> Optional[str]:
    """DTM -> FHIR dateTime; a time without a UTC offset is reduced to its date (FHIR needs the offset)."""
    if not value:
        return None
    m = _DTM.match(value)
    if not m:
        raise ContentError(f"{where.segment}-{where.field} is not an HL7 date/time", DATA_TYPE_ERROR, where)
    date = fhir_date(value, where)
    hh, mm, ss, tz = m.group(4), m.group(5), m.group(6), m.group(7)
    if not hh or not tz or not m.group(3):
        return date
    ss = ss or "00"
    return f"{date}T{hh}:{mm or '00'}:{ss}{tz[:3]}:{tz[3:]}"


def codeable(inb: Inbound, seg: Segment, fld: int, rep: int = 1) -> Optional[dict]:
    """CE/CWE -> CodeableConcept: identifier/text/system and the alternate triplet (components 4-6)."""
    v = lambda c: inb.value(seg, fld, rep, c)  # noqa: E731
    codings = []
    for code, text, scheme in ((v(1), v(2), v(3)), (v(4), v(5), v(6))):
        if code:
            coding = {"code": code}
            if scheme:
                coding["system"] = V2_SYSTEMS.get(scheme.upper()) or scheme_system(scheme)
            if text:
                coding["display"] = text
            codings.append(coding)
    text = v(2) or v(5)
    if not codings and not text:
        return None
    out: dict = {}
    if codings:
        out["coding"] = codings
    if text:
        out["text"] = text
    return out
