"""DoseReport -> one FHIR R4 transaction Bundle (HL7 Radiation Dose Summary IG 1.0.0 and our profiles).

Entries: Patient, Practitioner (persons of the report), ServiceRequest (accession number),
ImagingStudy, Device (RDS ``modality-device``), the RDS ``radiation-dose-summary`` Observation
(LOINC 73569-6) and one ``irradiation-event`` Observation per event, linked by ``hasMember``.
Resources are plain dicts (no model objects on the hot path). Every entry's fullUrl is a uuid5 of
its business identifier, so the same report always gives the same Bundle; requests are
conditional on that identifier. The identifier systems and uuid5 rule are those of the HL7 v2
mapping (``hl7v2.datatypes``), so a Patient or order from the RIS and one from DICOM meet.
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
from ..domain import CT, PROJECTION, RADIOPHARMACEUTICAL, SOURCE_IMAGE, Concept, DoseReport, IrradiationEvent, Measurement, Person, PersonName, Quantity
from ..errors import MappingError

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

GENDER = {"M": "male", "F": "female", "O": "other"}  # DICOM (0010,0040) -> administrative-gender
CATEGORY_IMAGING = {"coding": [{"system": c.SYS_OBS_CATEGORY, "code": "imaging", "display": "Imaging"}]}
SUMMARY_CODE = {"coding": [{"system": c.SYS_LOINC, "code": c.LOINC_RADIATION_DOSE_SUMMARY,
                            "display": "Radiation exposure and protection information [Description] Document Diagnostic imaging"}]}
EVENT_CODE = {"coding": [{"system": c.SYS_DCM, "code": "113852", "display": "Irradiation Event"}]}
PROCEDURE_BY_KIND = {
    CT: Concept("SCT", "77477000", "Computed Tomography X-Ray"),
    PROJECTION: Concept("DCM", "113704", "Projection X-Ray"),
    RADIOPHARMACEUTICAL: Concept("DCM", "113502", "Radiopharmaceutical Administration"),
}
MAMMOGRAPHY = Concept("SCT", "71651007", "Mammography")
# Study-level totals per report kind (RDS IG component value set; TID 10012, 10002/10004/10007)
SUMMARY_TOTALS = {
    CT: (("113813", "CT Dose Length Product Total"), ("113814", "CT Effective Dose Total")),
    PROJECTION: (("113725", "Dose (RP) Total"), ("113722", "Dose Area Product Total"),
                 ("113726", "Fluoro Dose Area Product Total"), ("113727", "Acquisition Dose Area Product Total"),
                 ("113728", "Fluoro Dose (RP) Total"), ("113729", "Acquisition Dose (RP) Total"),
                 ("113730", "Total Fluoro Time"), ("113855", "Total Acquisition Time"),
                 ("113731", "Total Number of Radiographic Frames")),
    RADIOPHARMACEUTICAL: (),
}
# Numeric concepts that are counts: valueInteger, as the RDS IG types 113731
COUNTS = frozenset({c.TOTAL_NUMBER_OF_EVENTS, c.TOTAL_NUMBER_OF_FRAMES, c.NUMBER_OF_PULSES, c.NUMBER_OF_XRAY_SOURCES})
MODALITY_NAMES = {"CT": "Computed Tomography", "XA": "X-Ray Angiography", "RF": "Radio Fluoroscopy", "DX": "Digital Radiography",
                  "CR": "Computed Radiography", "MG": "Mammography", "PX": "Panoramic X-Ray", "IO": "Intra-oral Radiography",
                  "NM": "Nuclear Medicine", "PT": "Positron emission tomography", "OT": "Other"}
MODALITY_BY_KIND = {CT: "CT", RADIOPHARMACEUTICAL: "NM"}


def to_bundle(report: DoseReport, conditional: str = "create") -> dict:
    """One transaction Bundle for ``report``; ``conditional="update"`` makes the dose Observations conditional PUTs."""
    if conditional not in ("create", "update"):
        raise ValueError(f"conditional must be 'create' or 'update', not {conditional!r}")
    if not report.study.instance_uid:
        raise MappingError("report has no Study Instance UID")
    return _Builder(report, conditional == "update").bundle()


class _Builder:
    def __init__(self, report: DoseReport, update: bool):
        self.r, self.update = report, update
        self.entries: list[dict] = []

    def bundle(self) -> dict:
        r = self.r
        # Context resources are conditional creates in both modes: the RDS IG makes the FHIR server (fed by
        # the RIS / ADT / PACS) their source of truth, so a dose object never overwrites them.
        patient = self.add(_patient(r), update=False)
        persons = [self.add(p, update=False) for p in _practitioners(r)]
        order = self.add(_service_request(r, patient), update=False) if r.study.accession_number else None
        study = self.add(_imaging_study(r, patient, order), update=False)
        device = self.add(_device(r), update=False)
        unique = {e.uid: e for e in reversed(r.events)}  # one resource per Irradiation Event UID (first kept)
        events = [self.add(_event(r, e, patient, study, device)) for e in r.events if unique.get(e.uid) is e]
        performer = persons[0] if persons else None  # _persons puts the authorizing person (113850) first
        summary = _summary(r, patient, study, order, device, performer, events)
        self.entries.insert(len(self.entries) - len(events), self.entry(summary))
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}

    def add(self, resource: dict, update: Optional[bool] = None) -> dict:
        entry = self.entry(resource, update)
        self.entries.append(entry)
        return {"reference": entry["fullUrl"], "type": resource["resourceType"]}

    def entry(self, resource: dict, update: Optional[bool] = None) -> dict:
        rtype, key = resource["resourceType"], resource["identifier"][0]
        query = "identifier=" + quote(f"{key['system']}|{key['value']}", safe=":/|")
        put = self.update if update is None else update
        request = {"method": "PUT", "url": f"{rtype}?{query}"} if put else {"method": "POST", "url": rtype, "ifNoneExist": query}
        return {"fullUrl": full_url(key["system"], key["value"], rtype), "resource": resource, "request": request}


# ---------------------------------------------------------------------------- identifiers


def full_url(system: str, value: str, rtype: str) -> str:
    """Deterministic ``urn:uuid`` of a resource known by ``system|value`` (same rule as ``hl7v2.datatypes.full_url``)."""
    return f"urn:uuid:{_uuid5(f'{rtype}|{system}|{value}')}"


def _uuid5(name: str) -> str:
    """RFC 4122 name-based (SHA-1) UUID in the URL namespace, as ``uuid.uuid5`` but without its object overhead."""
    b = bytearray(hashlib.sha1(_URL_NS + name.encode("utf-8")).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_URL_NS = uuid.NAMESPACE_URL.bytes


def authority_system(issuer: str, kind: str) -> str:
    """Identifier system for a DICOM issuer (0010,0021) / (0008,0051): OID or URI as is, else under our sid base."""
    if re.fullmatch(r"[0-2](\.\d+)+", issuer):
        return f"urn:oid:{issuer}"
    if re.match(r"^[a-z][a-z0-9+.-]*:", issuer):
        return issuer
    return f"{SID}/{kind}/{quote(issuer, safe='')}" if issuer else f"{SID}/{kind}"


def _id_type(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _uid(uid: str, type_code: str = "", display: str = "") -> dict:
    ident = {"system": c.SYS_DICOM_UID, "value": f"urn:oid:{uid}"}
    if type_code:
        ident = {"type": _id_type(SYS_ID_TYPE, type_code, display), **ident}
    return ident


def _accession(r: DoseReport) -> dict:
    return {"type": _id_type(c.SYS_V2_0203, "ACSN", "Accession ID"),
            "system": authority_system(r.study.accession_issuer, "accession"), "value": r.study.accession_number}


def _ref(target: dict, identifier: Optional[dict] = None) -> dict:
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


def _component(code: dict, measurement: Optional[Measurement] = None, **value) -> dict:
    comp = {"code": code}
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


def _dcm(code: str, meaning: str) -> dict:
    return {"coding": [dict(_coding("DCM", code, meaning))]}


# ---------------------------------------------------------------------------- context resources


def _patient(r: DoseReport) -> dict:
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


def _practitioners(r: DoseReport) -> list[dict]:
    out = []
    for person in _persons(r):
        res = {"resourceType": "Practitioner", "identifier": [_person_identifier(person)]}
        if person.name:
            res["name"] = [human_name(person.name)]
        out.append(res)
    return out


def _service_request(r: DoseReport, patient: dict) -> dict:
    res = {"resourceType": "ServiceRequest", "identifier": [_accession(r)], "status": "unknown", "intent": "order",
           "subject": _ref(patient)}
    if r.study.procedure_code is not None:
        res["code"] = concept(r.study.procedure_code)
    return res


def _modalities(r: DoseReport) -> list[str]:
    mods = [m for m in (r.modality, *r.study.modalities) if m and m != "SR"]
    return list(dict.fromkeys(mods)) or [MODALITY_BY_KIND.get(r.kind, "OT")]


def _imaging_study(r: DoseReport, patient: dict, order: Optional[dict]) -> dict:
    s = r.study
    res: dict = {"resourceType": "ImagingStudy", "identifier": [_uid(s.instance_uid)], "status": "available",
                 "subject": _ref(patient)}
    if s.accession_number:
        res["identifier"].append(_accession(r))
    res["modality"] = [{"system": c.SYS_DCM, "code": m} for m in _modalities(r)]
    if s.started:
        res["started"] = fhir_datetime(s.started)
    if order is not None:
        res["basedOn"] = [_ref(order)]
    if s.procedure_code is not None:
        res["procedureCode"] = [concept(s.procedure_code)]
    if s.description:
        res["description"] = s.description
    return res


def _device(r: DoseReport) -> dict:
    """RDS ``modality-device``: TID 1004 Device Observer / General Equipment module (PS3.3 C.7.5.1)."""
    d, ids = r.device, []
    if d.observer_uid:
        ids.append(_uid(d.observer_uid, "device-uid", "Device UID"))
    if d.serial_number:
        ids.append({"type": _id_type(c.SYS_V2_0203, "SNO", "Serial Number"),
                    "system": f"{SID}/device-serial/{quote(d.manufacturer or 'unknown', safe='')}", "value": d.serial_number})
    ae = d.name or d.station_name  # TID 1004 Device Observer Name, else (0008,1010) Station Name
    ae_id = {"type": _id_type(SYS_ID_TYPE, "application-entity", "Application Entity"), "system": f"{SID}/ae-title"}
    if ae:
        ids.append({**ae_id, "value": ae})
    else:  # identifier:aeTitle is 1..1 in the RDS IG: say that it is unknown rather than invent one
        ids.append({**ae_id, "_value": {"extension": [DATA_ABSENT_UNKNOWN]}})
    if not d.observer_uid and not d.serial_number:  # conditional key of last resort
        ids.insert(0, {"system": f"{SID}/device", "value": d.key})
    modality = _modalities(r)[0]
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


# ---------------------------------------------------------------------------- dose observations


def procedure_reported(r: DoseReport) -> Concept:
    """121058 Procedure reported: from the report, else by kind (mammography when an AGD is present)."""
    if r.procedure_reported is not None:
        return r.procedure_reported
    if r.kind == PROJECTION and (r.total(c.ACCUMULATED_AGD) is not None or "MG" in _modalities(r)):
        return MAMMOGRAPHY
    return PROCEDURE_BY_KIND.get(r.kind, PROCEDURE_BY_KIND[PROJECTION])


def _summary_components(r: DoseReport) -> tuple[list[dict], list[str]]:
    """Components (RDS IG component value set, DICOM codes, UCUM units) and the phrases of the summary text."""
    proc = procedure_reported(r)
    comps = [{"code": _dcm(c.PROCEDURE_REPORTED, "Procedure reported"), "valueCodeableConcept": concept(proc)}]
    text = [f"{proc.meaning or r.kind} performed"]
    for code, meaning in SUMMARY_TOTALS.get(r.kind, ()):
        q = r.total(code)
        if q is not None:
            comps.append(_component(_dcm(code, meaning), Measurement(Concept("DCM", code, meaning), q)))
            text.append(f"{meaning} = {number(q.value)} {q.unit}" if code not in COUNTS else f"{meaning} = {number(q.value)}")
    for m in [m for a in r.accumulated for m in a.all(c.ACCUMULATED_AGD)] + r.all(c.ACCUMULATED_AGD):
        comps.append(_component(_dcm(c.ACCUMULATED_AGD, "Accumulated Average Glandular Dose"), m))  # TID 10005, per breast
        side = f" ({m.qualifier.meaning})" if m.qualifier is not None and m.qualifier.meaning else ""
        text.append(f"Accumulated Average Glandular Dose{side} = {number(m.quantity.value)} {m.quantity.unit}")
    for adm in r.administrations:  # TID 10022, as the RDS IG radiopharmaceutical components
        comps.extend(_administration(adm))
        agent = adm.agent.meaning if adm.agent is not None and adm.agent.meaning else adm.agent_text
        if adm.activity is not None:
            text.append(f"{agent + ' ' if agent else ''}administered activity = {number(adm.activity.value)} MBq")
        if adm.effective_dose is not None:
            text.append(f"Effective Dose = {number(adm.effective_dose.value)} mSv")
    n = r.total(c.TOTAL_NUMBER_OF_EVENTS)
    count = int(n.value) if n is not None else len(r.events)
    if r.kind != RADIOPHARMACEUTICAL:
        comps.append({"code": _dcm(c.TOTAL_NUMBER_OF_EVENTS, "Total Number of Irradiation Events"), "valueInteger": count})
        text.append(f"{count} irradiation event{'s' if count != 1 else ''}")
    return comps, text


def _administration(adm) -> list[dict]:
    out = []
    if adm.agent is not None:
        out.append({"code": concept(Concept("SCT", c.RP_AGENT[1], "Radiopharmaceutical agent")), "valueCodeableConcept": concept(adm.agent)})
    elif adm.agent_text:
        out.append({"code": concept(Concept("SCT", c.RP_AGENT[1], "Radiopharmaceutical agent")), "valueString": adm.agent_text})
    if adm.radionuclide is not None:
        out.append({"code": concept(Concept("SCT", c.RADIONUCLIDE[1], "Radionuclide")), "valueCodeableConcept": concept(adm.radionuclide)})
    if adm.activity is not None:
        out.append(_component(_dcm(c.ADMINISTERED_ACTIVITY, "Administered activity"),
                              Measurement(Concept("DCM", c.ADMINISTERED_ACTIVITY), adm.activity)))
    volume = adm.get("123005")
    if volume is not None:
        out.append(_component(_dcm("123005", "Radiopharmaceutical Volume"), Measurement(Concept("DCM", "123005"), volume)))
    if adm.route is not None:
        out.append({"code": concept(Concept("SCT", c.ROUTE_OF_ADMINISTRATION[1], "Route of administration")),
                    "valueCodeableConcept": concept(adm.route)})
    if adm.effective_dose is not None:
        out.append(_component(_dcm(c.EFFECTIVE_DOSE, "Effective Dose"), Measurement(Concept("DCM", c.EFFECTIVE_DOSE), adm.effective_dose)))
    for organ in adm.organ_doses:  # TID 10023: the organ in the dose-target-site extension
        out.append(_component(_dcm(c.ORGAN_DOSE, "Organ Dose"), Measurement(Concept("DCM", c.ORGAN_DOSE), organ.dose, organ.organ)))
    return out


def _effective(r: DoseReport) -> Optional[str]:
    """113809 Start of X-Ray Irradiation (RDS IG), for radiopharmaceuticals 123003 Start DateTime, else the study's."""
    starts = [a.started for a in r.administrations if a.started] if r.kind == RADIOPHARMACEUTICAL else []
    starts += [r.started, r.study.started, *[e.started for e in r.events if e.started]]
    return fhir_datetime(next((s for s in starts if s), None))


def summary_key(r: DoseReport) -> str:
    """Stable key of the summary: one per study, report kind and device (what aggregate.merge_reports combines)."""
    return _uuid5(f"dose-summary|{r.study.instance_uid}|{r.kind}|{r.device.key}")


def _summary(r, patient, study, order, device, performer, events) -> dict:
    ids = [{"type": _id_type(c.SYS_V2_0203, "RI", "Resource identifier"), "system": SYS_DOSE_SUMMARY, "value": summary_key(r)}]
    if r.source != SOURCE_IMAGE:  # RDS IG identifier:radiationSRUID, the RDSR SOP Instance UID(s)
        ids += [_uid(u, "sop-instance-uid", "SOP Instance UID") for u in dict.fromkeys(r.source_instances or (r.sop_instance_uid,))]
    comps, text = _summary_components(r)
    res: dict = {"resourceType": "Observation", "meta": {"profile": [PROFILE_RDS_SUMMARY, PROFILE_DOSE_SUMMARY]}, "identifier": ids}
    if order is not None:
        res["basedOn"] = [_ref(order, _accession(r))]
    res["partOf"] = [_ref(study, _uid(r.study.instance_uid, "study-instance-uid", "Study Instance UID"))]
    res.update({"status": "final", "category": [CATEGORY_IMAGING], "code": SUMMARY_CODE, "subject": _ref(patient),
                "focus": [_ref(study)]})
    effective = _effective(r)
    if effective:
        res["effectiveDateTime"] = effective
    if performer is not None:  # RDS IG performer:irradiationAutorizingPerson
        res["performer"] = [_ref(performer)]
    else:  # performer is 1..1 in the RDS IG: say that the person is unknown rather than invent one
        res["performer"] = [{"type": "Practitioner", "extension": [DATA_ABSENT_UNKNOWN]}]
    res["valueString"] = ", ".join(text)
    res["device"] = _ref(device)
    if events:
        res["hasMember"] = [_ref(e) for e in events]
    res["component"] = comps
    return res


def _event(r: DoseReport, e: IrradiationEvent, patient: dict, study: dict, device: dict) -> dict:
    """One irradiation event: TID 10013 CT Acquisition or TID 10003 Irradiation Event X-Ray Data."""
    res: dict = {"resourceType": "Observation", "meta": {"profile": [PROFILE_IRRADIATION_EVENT]},
                 "identifier": [_uid(e.uid, "irradiation-event-uid", "Irradiation Event UID")],
                 "partOf": [_ref(study)], "status": "final", "category": [CATEGORY_IMAGING], "code": EVENT_CODE,
                 "subject": _ref(patient)}
    effective = fhir_datetime(e.started or r.started or r.study.started)
    if effective:
        res["effectiveDateTime"] = effective
    if e.target_region is not None:
        res["bodySite"] = concept(e.target_region)  # 123014 Target Region
    res["device"] = _ref(device)
    if e.comment:
        res["note"] = [{"text": e.comment}]
    res["component"] = _event_components(e)
    return res


def _event_components(e: IrradiationEvent) -> list[dict]:
    comps, seen = [], set()

    def coded(code: str, meaning: str, value: Optional[Concept], scheme: str = "DCM") -> None:
        if value is not None:
            comps.append({"code": concept(Concept(scheme, code, meaning)), "valueCodeableConcept": concept(value)})
            seen.add(code)

    if e.kind == CT:
        coded(c.CT_ACQUISITION_TYPE, "CT Acquisition Type", e.event_type)
    else:
        coded(c.IRRADIATION_EVENT_TYPE, "Irradiation Event Type", e.event_type)
    coded(c.ACQUISITION_PLANE, "Acquisition Plane", e.plane)
    coded(c.LATERALITY[1], "Laterality", e.laterality, "SCT")
    coded(c.CTDIW_PHANTOM_TYPE, "CTDIw Phantom Type", e.phantom)
    coded(c.FLUORO_MODE, "Fluoro Mode", e.fluoro_mode)
    coded(c.PROCEDURE_CONTEXT[1], "Procedure Context", e.procedure_context, "SCT")
    if e.protocol:
        comps.append({"code": _dcm(c.ACQUISITION_PROTOCOL, "Acquisition Protocol"), "valueString": e.protocol})
    if e.reference_point_definition:
        comps.append({"code": _dcm(c.REFERENCE_POINT_DEFINITION[0], "Reference Point Definition"), "valueString": e.reference_point_definition})
    for m in (*e.measurements, *(m for s in e.sources for m in s.measurements)):
        comps.append(_component(concept(m.concept), m))
    for f in e.filters:  # TID 10003 X-Ray Filters (113771): material, type and thickness range as text
        if f.material is not None:
            cc = concept(f.material)
            cc["text"] = _filter_text(f)
            comps.append({"code": _dcm(c.FILTER_MATERIAL, "X-Ray Filter Material"), "valueCodeableConcept": cc})
    taken = seen | {c.TARGET_REGION, *c.LATERALITY, *c.PROCEDURE_CONTEXT}  # already carried above
    if e.filters:
        taken |= {c.FILTER_MATERIAL, c.FILTER_TYPE}
    for name, value in e.codes:
        if name.code not in taken:
            comps.append({"code": concept(name), "valueCodeableConcept": concept(value)})
    return comps


@lru_cache(maxsize=256)
def _filter_text(f) -> str:
    parts = [f.material.meaning or f.material.code]
    if f.type is not None and f.type.meaning:
        parts.append(f"({f.type.meaning})")
    lo, hi = f.thickness_min, f.thickness_max
    if lo is not None and hi is not None and lo.value != hi.value:
        parts.append(f"{number(lo.value)}-{number(hi.value)} {lo.unit}")
    elif lo is not None or hi is not None:
        q = lo or hi
        parts.append(f"{number(q.value)} {q.unit}")
    return " ".join(parts)
