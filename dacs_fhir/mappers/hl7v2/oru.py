"""DoseReport -> HL7 v2.5.1 ORU^R01 dose summary, built and validated with hl7apy.

The OBX follow the components of the FHIR ``radiation-dose-summary`` Observation
(HL7 RDS IG 1.0.0) that ``mappers.fhir`` builds for the same report, so both
carry the same codes (coding systems DCM / SCT / LN) and UCUM units: one OBX per
component, a qualifying laterality / organ as a CWE OBX with the same sub-ID, the
Study Instance UID as the ``113014 DICOM Study`` OBX (as IHE RAD report feeds
send it), and the summary text as a TX OBX (LOINC 73569-6).
"""
from __future__ import annotations

import itertools
import time
from decimal import Decimal
from typing import Optional

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from ... import codes
from ...domain import DoseReport
from ...errors import MappingError

VERSION = "2.5.1"
SENDING_APPLICATION = "DACS"
SUMMARY_LOINC = ("73569-6", "Radiation exposure and protection information")
# what a component's dose-target-site extension qualifies: laterality of an AGD (TID 10005), else the organ (TID 10023)
QUALIFIER_CODE = {"111637": ("272741003", "Laterality")}
FINDING_SITE = ("363698007", "Finding site")
SYSTEM_SCHEMES = {system: scheme for scheme, system in reversed(list(codes.SCHEME_SYSTEMS.items()))}
TEXT_WIDTH = 150  # escaped text must stay within the 199 characters hl7apy allows one OBX-5 repetition
_counter = itertools.count(1)


def _esc(text: str) -> str:
    """Escape delimiters in one leaf value (HL7 v2.5.1 §2.7.1)."""
    out = str(text).replace("\\", "\\E\\")
    for ch, code in (("|", "F"), ("^", "S"), ("~", "R"), ("&", "T")):
        out = out.replace(ch, f"\\{code}\\")
    return out.replace("\r", " ").replace("\n", " ")


def _cwe(code: str, text: str, scheme: str) -> str:
    return "^".join((_esc(code), _esc(text), _esc(scheme)))


def coding_scheme(system: str) -> str:
    """HL7 v2 coding system (table 0396: DCM, LN, SCT …) of a FHIR Coding.system."""
    if system in SYSTEM_SCHEMES:
        return SYSTEM_SCHEMES[system]
    if system.startswith("urn:dicom:coding-scheme:"):
        return system.rsplit(":", 1)[1]
    return system


def _coded(concept: dict) -> str:
    c = (concept.get("coding") or [{}])[0]
    return _cwe(c.get("code", ""), c.get("display") or concept.get("text", ""), coding_scheme(c.get("system", "")))


def number(value: float) -> str:
    """HL7 NM: decimal digits, never an exponent."""
    d = Decimal(repr(float(value))).normalize()
    text = format(d, "f")
    return text[:-2] if text.endswith(".0") else text


def _ts(dt) -> str:
    if dt is None:
        return ""
    return dt.strftime("%Y%m%d%H%M%S") + (dt.strftime("%z") if dt.tzinfo else "")


def summary_observation(report: DoseReport) -> dict:
    """The FHIR ``radiation-dose-summary`` Observation of ``report``: the OBX follow its components."""
    from ..fhir import to_bundle

    for entry in to_bundle(report)["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Observation" and any(c.get("code") == SUMMARY_LOINC[0] for c in res["code"].get("coding", [])):
            return res
    raise MappingError("no dose summary for this report")


def text_lines(text: str, width: int = TEXT_WIDTH) -> list[str]:
    """Split the summary into OBX-5 repetitions (one line each) that fit the 2.5.1 field length."""
    lines: list[str] = []
    for part in text.split(", "):
        while len(part) > width:
            lines.append(part[:width])
            part = part[width:]
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] = f"{lines[-1]}, {part}"
        else:
            lines.append(part)
    return lines


def obx_rows(report: DoseReport) -> list[list]:
    """OBX-2..6 (value type, identifier, sub-id, value or repetitions, units) of the summary, in message order."""
    summary = summary_observation(report)
    rows: list[list] = [["ST", _cwe("113014", "DICOM Study", "DCM"), "", _esc(report.study.instance_uid), ""]]
    sub = itertools.count(1)
    for comp in summary.get("component", []):
        code = comp["code"]["coding"][0]
        qualifier = next((e["valueCodeableConcept"] for e in comp.get("extension", []) if "valueCodeableConcept" in e), None)
        sub_id = str(next(sub)) if qualifier is not None else ""
        if "valueQuantity" in comp:
            q = comp["valueQuantity"]
            unit = q.get("code") or q.get("unit", "")
            rows.append(["NM", _coded(comp["code"]), sub_id, number(q["value"]), _cwe(unit, unit, "UCUM") if unit else ""])
        elif "valueInteger" in comp:
            rows.append(["NM", _coded(comp["code"]), sub_id, str(comp["valueInteger"]), ""])
        elif "valueCodeableConcept" in comp:
            rows.append(["CWE", _coded(comp["code"]), sub_id, _coded(comp["valueCodeableConcept"]), ""])
        elif "valueString" in comp:
            rows.append(["ST", _coded(comp["code"]), sub_id, _esc(comp["valueString"][:190]), ""])
        else:
            continue
        if qualifier is not None:
            qcode, qtext = QUALIFIER_CODE.get(code.get("code"), FINDING_SITE)
            rows.append(["CWE", _cwe(qcode, qtext, "SCT"), sub_id, _coded(qualifier), ""])
    if summary.get("valueString"):
        rows.append(["TX", _cwe(SUMMARY_LOINC[0], SUMMARY_LOINC[1], "LN"), "", [_esc(t) for t in text_lines(summary["valueString"])], ""])
    return rows


def _name(report: DoseReport) -> str:
    n = report.patient.name
    return "^".join((_esc(n.family), _esc(n.given[0] if n.given else ""), _esc(" ".join(n.given[1:])), _esc(n.suffix), _esc(n.prefix))).rstrip("^")


def new_control_id() -> str:
    return f"O{int(time.time() * 1000) % 10**11:011d}{next(_counter) % 10**8:08d}"


def to_oru(
    report: DoseReport,
    control_id: Optional[str] = None,
    corrected: bool = False,
    receiving_application: str = "",
    receiving_facility: str = "",
) -> str:
    """HL7 v2.5.1 ORU^R01 for ``report`` (segments separated by CR); validated strictly by hl7apy."""
    if not report.study.instance_uid:
        raise MappingError("report has no Study Instance UID")
    from ..fhir import concept as fhir_concept

    status = "C" if corrected else "F"
    msg = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    msh = msg.msh
    msh.msh_3 = SENDING_APPLICATION
    if receiving_application:
        msh.msh_5 = _esc(receiving_application)
    if receiving_facility:
        msh.msh_6 = _esc(receiving_facility)
    msh.msh_7 = time.strftime("%Y%m%d%H%M%S")
    msh.msh_9 = "ORU^R01^ORU_R01"
    msh.msh_10 = control_id or new_control_id()
    msh.msh_11 = "P"
    msh.msh_18 = "UNICODE UTF-8"
    result = msg.add_group("ORU_R01_PATIENT_RESULT")
    pid = result.add_group("ORU_R01_PATIENT").add_segment("PID")
    p = report.patient
    # PID-3 is required: an RDSR without Patient ID sends the HL7 null ("") rather than an invented id
    pid.pid_3 = "^^^".join((_esc(p.id), _esc(p.issuer))).rstrip("^") if p.id else '""'
    pid.pid_5 = _name(report) or '""'
    if p.birth_date:
        pid.pid_7 = p.birth_date.strftime("%Y%m%d")
    if p.sex in ("M", "F", "O"):
        pid.pid_8 = p.sex
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    accession = _esc(report.study.accession_number)
    issuer = _esc(report.study.accession_issuer)
    orc = order.add_segment("ORC")
    orc.orc_1 = "RE"
    if accession:
        orc.orc_3 = f"{accession}^{issuer}".rstrip("^")
    orc.orc_5 = "CM"
    obr = order.add_segment("OBR")
    obr.obr_1 = "1"
    if accession:
        obr.obr_3 = f"{accession}^{issuer}".rstrip("^")
    proc = report.study.procedure_code
    obr.obr_4 = _coded(fhir_concept(proc)) if proc else _cwe(SUMMARY_LOINC[0], SUMMARY_LOINC[1], "LN")
    when = _ts(report.started or report.study.started)
    if when:
        obr.obr_7 = when
    if accession:
        obr.obr_18 = accession  # IHE RAD Scheduled Workflow: accession number in OBR-18
    obr.obr_25 = status
    for n, (vtype, ident, sub_id, value, units) in enumerate(obx_rows(report), start=1):
        obx = order.add_group("ORU_R01_OBSERVATION").add_segment("OBX")
        obx.obx_1 = str(n)
        obx.obx_2 = vtype
        obx.obx_3 = ident
        if sub_id:
            obx.obx_4 = sub_id
        for rep in value if isinstance(value, list) else [value]:  # OBX-5 repeats: one TX line each
            obx.add_field("OBX_5").value = rep
        if units:
            obx.obx_6 = units
        obx.obx_11 = status
    msg.validate()
    return msg.to_er7()
