"""Context resources of a dose Bundle: Patient, Practitioner, ServiceRequest, ImagingStudy, Device.

From the DICOM Patient / General Study / General Equipment modules (PS3.3 C.7.1.1, C.7.2.1,
C.7.5.1) and TID 1020 persons; the Device follows the RDS IG ``modality-device`` profile. Each
resource carries the business identifier its Bundle entry is conditional on.
"""
from __future__ import annotations

from typing import Optional
from urllib.parse import quote

from .. import codes as c
from ..domain import CT, RADIOPHARMACEUTICAL, DoseReport, Person
from .fhir_datatypes import (
    DATA_ABSENT_UNKNOWN,
    PROFILE_MODALITY_DEVICE,
    SID,
    SYS_ID_TYPE,
    accession_identifier,
    authority_system,
    concept,
    fhir_datetime,
    human_name,
    id_type,
    reference,
    uid_identifier,
)

GENDER = {"M": "male", "F": "female", "O": "other"}  # DICOM (0010,0040) -> administrative-gender
MODALITY_NAMES = {"CT": "Computed Tomography", "XA": "X-Ray Angiography", "RF": "Radio Fluoroscopy", "DX": "Digital Radiography",
                  "CR": "Computed Radiography", "MG": "Mammography", "PX": "Panoramic X-Ray", "IO": "Intra-oral Radiography",
                  "NM": "Nuclear Medicine", "PT": "Positron emission tomography", "OT": "Other"}
MODALITY_BY_KIND = {CT: "CT", RADIOPHARMACEUTICAL: "NM"}


def patient(r: DoseReport) -> dict:
    """Patient from the Patient module (PS3.3 C.7.1.1)."""
    p = r.patient
    if p.id:  # PS3.3 C.7.1.1 Patient ID, Issuer of Patient ID
        ident = {"system": authority_system(p.issuer, "patient-id"), "value": p.id}
    else:  # no Patient ID: the patient is known only as "the patient of this study"
        ident = {"system": f"{SID}/patient-of-study", "value": r.study.instance_uid}
    res: dict = {"resourceType": "Patient", "identifier": [ident]}
    if p.name:
        res["name"] = [human_name(p.name)]
    if p.sex:
        res["gender"] = GENDER.get(p.sex.upper(), "unknown")
    if p.birth_date:
        res["birthDate"] = p.birth_date.isoformat()
    return res


def _persons(r: DoseReport) -> list[Person]:
    """Named persons of the report (TID 1020), irradiation authorizing (113850) first."""
    seen, out = set(), []
    everyone = list(r.persons) + [p for adm in r.administrations for p in adm.persons]
    everyone.sort(key=lambda p: 0 if p.role is not None and p.role.code == c.IRRADIATION_AUTHORIZING else 1)
    for person in everyone:
        if not person.name and not person.id:
            continue
        key = _person_identifier(person)["value"]
        if key not in seen:
            seen.add(key)
            out.append(person)
    return out


def _person_identifier(person: Person) -> dict:
    if person.id:  # TID 1020 EV (113871, DCM, Person ID)
        return {"system": f"{SID}/person-id", "value": person.id}
    name = person.name
    return {"system": f"{SID}/person-name", "value": "^".join((name.family, *name.given)).upper()}


def practitioners(r: DoseReport) -> list[dict]:
    """One Practitioner per named person of the report (TID 1020), the irradiation authorizing one first."""
    out = []
    for person in _persons(r):
        res = {"resourceType": "Practitioner", "identifier": [_person_identifier(person)]}
        if person.name:
            res["name"] = [human_name(person.name)]
        out.append(res)
    return out


def service_request(r: DoseReport, patient_ref: dict) -> dict:
    """The order, known by its Accession Number (0008,0050)."""
    res = {"resourceType": "ServiceRequest", "identifier": [accession_identifier(r)], "status": "unknown", "intent": "order",
           "subject": reference(patient_ref)}
    if r.study.procedure_code is not None:
        res["code"] = concept(r.study.procedure_code)
    return res


def modalities(r: DoseReport) -> list[str]:
    """Modalities of the study (SR excluded), else the one the report kind implies."""
    mods = [m for m in (r.modality, *r.study.modalities) if m and m != "SR"]
    return list(dict.fromkeys(mods)) or [MODALITY_BY_KIND.get(r.kind, "OT")]


def imaging_study(r: DoseReport, patient_ref: dict, order: Optional[dict]) -> dict:
    """ImagingStudy from the General Study module (PS3.3 C.7.2.1), known by its Study Instance UID."""
    s = r.study
    res: dict = {"resourceType": "ImagingStudy", "identifier": [uid_identifier(s.instance_uid)], "status": "available",
                 "subject": reference(patient_ref)}
    if s.accession_number:
        res["identifier"].append(accession_identifier(r))
    res["modality"] = [{"system": c.SYS_DCM, "code": m} for m in modalities(r)]
    if s.started:
        res["started"] = fhir_datetime(s.started)
    if order is not None:
        res["basedOn"] = [reference(order)]
    if s.procedure_code is not None:
        res["procedureCode"] = [concept(s.procedure_code)]
    if s.description:
        res["description"] = s.description
    return res


def device(r: DoseReport) -> dict:
    """RDS ``modality-device``: TID 1004 Device Observer / General Equipment module (PS3.3 C.7.5.1)."""
    d, ids = r.device, []
    if d.observer_uid:
        ids.append(uid_identifier(d.observer_uid, "device-uid", "Device UID"))
    if d.serial_number:
        ids.append({"type": id_type(c.SYS_V2_0203, "SNO", "Serial Number"),
                    "system": f"{SID}/device-serial/{quote(d.manufacturer or 'unknown', safe='')}", "value": d.serial_number})
    ae = d.name or d.station_name  # TID 1004 Device Observer Name, else (0008,1010) Station Name
    ae_id = {"type": id_type(SYS_ID_TYPE, "application-entity", "Application Entity"), "system": f"{SID}/ae-title"}
    if ae:
        ids.append({**ae_id, "value": ae})
    else:  # identifier:aeTitle is 1..1 in the RDS IG: say that it is unknown rather than invent one
        ids.append({**ae_id, "_value": {"extension": [DATA_ABSENT_UNKNOWN]}})
    if not d.observer_uid and not d.serial_number:  # conditional key of last resort
        ids.insert(0, {"system": f"{SID}/device", "value": d.key})
    modality = modalities(r)[0]
    res: dict = {"resourceType": "Device", "meta": {"profile": [PROFILE_MODALITY_DEVICE]}, "identifier": ids,
                 "type": {"coding": [{"system": c.SYS_DCM, "code": modality, "display": MODALITY_NAMES.get(modality, modality)}]}}
    if d.manufacturer:
        res["manufacturer"] = d.manufacturer
    if d.serial_number:
        res["serialNumber"] = d.serial_number
    names = [(d.manufacturer, "manufacturer-name"), (d.model, "model-name"), (d.station_name, "user-friendly-name")]
    if any(n for n, _ in names):
        res["deviceName"] = [{"name": n, "type": t} for n, t in names if n]
    if d.software_versions:
        res["version"] = [{"value": d.software_versions}]
    return res
