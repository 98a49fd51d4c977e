"""ORM^O01 / OMI^O23 (HL7 v2.5.1 ch. 4, IHE RAD TF-2 RAD-4) -> FHIR ServiceRequest keyed by accession number.

Each ORC/OBR group is one requested procedure. The accession number is IPC-1
(OMI, v2.5+) or OBR-18 (ORM, IHE Scheduled Workflow); the Study Instance UID is
IPC-3 or ZDS-1.1. The PID of the message updates the Patient in the same
transaction so that a later RDSR with that accession finds order and patient.
"""
from __future__ import annotations

from ...codes import SYS_DCM, SYS_DICOM_UID
from ...hl7v2.errors import REQUIRED_FIELD_MISSING, ContentError, Location
from ...hl7v2.message import Inbound
from .adt import bundle, patient_resource, updated_entry
from .datatypes import ACCESSION, ORDER, codeable, fhir_datetime, identifier_ei

# HL7 table 0119 order control / 0038 order status -> ServiceRequest.status
STATUS_BY_CONTROL = {"NW": "active", "XO": "active", "SC": None, "CA": "revoked", "OC": "revoked", "DC": "revoked", "CR": "revoked", "HD": "on-hold", "RL": "active"}
STATUS_BY_ORDER_STATUS = {"CM": "completed", "IP": "active", "SC": "active", "A": "active", "CA": "revoked", "DC": "revoked", "HD": "on-hold"}
STUDY_UID_TYPE = {"text": "Study Instance UID"}


def _groups(inb: Inbound) -> list[dict]:
    """ORC/OBR groups with the IPC and ZDS segments that follow each OBR (message order)."""
    groups: list[dict] = []
    current: dict | None = None
    for seg in inb.msg:
        sid = str(seg[0])
        if sid == "ORC":
            current = {"ORC": seg, "OBR": None, "IPC": [], "ZDS": None, "TQ1": None}
            groups.append(current)
        elif sid == "OBR":
            if current is None or current["OBR"] is not None:
                current = {"ORC": None, "OBR": seg, "IPC": [], "ZDS": None, "TQ1": None}
                groups.append(current)
            else:
                current["OBR"] = seg
        elif current is not None and sid in ("IPC", "ZDS", "TQ1"):
            if sid == "IPC":
                current["IPC"].append(seg)
            else:
                current[sid] = current[sid] or seg
    return [g for g in groups if g["OBR"] is not None]


def _service_request(inb: Inbound, group: dict, n: int, patient_ref: str) -> dict:
    orc, obr, ipc = group["ORC"], group["OBR"], (group["IPC"] or [None])[0]
    accession = identifier_ei(inb, ipc, 1, ACCESSION, "ACSN") if ipc is not None else None
    if accession is None:
        accession = identifier_ei(inb, obr, 18, ACCESSION, "ACSN")
    if accession is None:
        where = Location("IPC", 1, 1, 1, 1) if ipc is not None else Location("OBR", n, 18, 1, 1)
        raise ContentError(f"{where.segment}-{where.field} accession number missing", REQUIRED_FIELD_MISSING, where)
    identifiers = [accession]
    for fld, id_type in ((2, "PLAC"), (3, "FILL")):
        ident = identifier_ei(inb, orc, fld, ORDER, id_type) if orc is not None else None
        ident = ident or identifier_ei(inb, obr, fld, ORDER, id_type)
        if ident:
            identifiers.append(ident)
    study_uid = inb.value(ipc, 3) if ipc is not None else ""
    study_uid = study_uid or inb.value(group["ZDS"], 1, 1, 1)
    if study_uid:
        identifiers.append({"type": STUDY_UID_TYPE, "system": SYS_DICOM_UID, "value": f"urn:oid:{study_uid}"})
    control = inb.value(orc, 1).upper() if orc is not None else "NW"
    status = STATUS_BY_CONTROL.get(control, "active")
    if status is None:
        status = STATUS_BY_ORDER_STATUS.get(inb.value(orc, 5).upper(), "active")
    sr: dict = {
        "resourceType": "ServiceRequest",
        "identifier": identifiers,
        "status": status,
        "intent": "order",
        "subject": {"reference": patient_ref},
    }
    code = codeable(inb, obr, 4) or (codeable(inb, obr, 44) if len(obr) > 44 else None)
    if code is None:
        raise ContentError("OBR-4 universal service identifier missing", REQUIRED_FIELD_MISSING, Location("OBR", n, 4, 1, 1))
    sr["code"] = code
    modality = (inb.value(ipc, 5) if ipc is not None else "") or inb.value(obr, 24)
    if modality:
        sr["category"] = [{"coding": [{"system": SYS_DCM, "code": modality.upper()}]}]
    when = (
        (inb.value(group["TQ1"], 7) if group["TQ1"] is not None else "")
        or inb.value(obr, 27, 1, 4)
        or (inb.value(orc, 7, 1, 4) if orc is not None else "")
        or inb.value(obr, 36)
    )
    occurrence = fhir_datetime(when, Location("OBR", n, 27, 1, 4))
    if occurrence:
        sr["occurrenceDateTime"] = occurrence
    authored = fhir_datetime(inb.value(orc, 9), Location("ORC", n, 9, 1, 1)) if orc is not None else None
    if authored:
        sr["authoredOn"] = authored
    return sr


def order_bundle(inb: Inbound) -> dict:
    """ORM^O01 / OMI^O23 -> transaction Bundle: the Patient of PID and one ServiceRequest per ORC/OBR."""
    pid = inb.segment("PID")
    if pid is None:
        raise ContentError("PID segment missing", REQUIRED_FIELD_MISSING, Location("PID"))
    patient = updated_entry(patient_resource(inb, pid))
    groups = _groups(inb)
    if not groups:
        raise ContentError("OBR segment missing", REQUIRED_FIELD_MISSING, Location("OBR"))
    entries = [patient]
    for n, group in enumerate(groups, start=1):
        entries.append(updated_entry(_service_request(inb, group, n, patient["fullUrl"])))
    return bundle(entries)
