"""Dose Observations of a Bundle: the RDS ``radiation-dose-summary`` and one ``irradiation-event`` per event.

The summary (LOINC 73569-6) carries the study totals (TID 10012, 10002/10004/10007), mammography
AGD per breast (TID 10005) and radiopharmaceutical administrations (TID 10022 / 10023) as RDS IG
components; the events carry TID 10013 / TID 10003 values. DICOM codes, UCUM units.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Optional

from .. import codes as c
from ..domain import (
    CT,
    PROJECTION,
    RADIOPHARMACEUTICAL,
    SOURCE_IMAGE,
    Concept,
    DoseReport,
    IrradiationEvent,
    Measurement,
)
from .fhir_datatypes import (
    COUNTS,
    DATA_ABSENT_UNKNOWN,
    PROFILE_DOSE_SUMMARY,
    PROFILE_IRRADIATION_EVENT,
    PROFILE_RDS_SUMMARY,
    SYS_DOSE_SUMMARY,
    accession_identifier,
    component,
    concept,
    dcm,
    fhir_datetime,
    id_type,
    number,
    reference,
    uid_identifier,
    uuid5,
)
from .fhir_participants import modalities

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


def procedure_reported(r: DoseReport) -> Concept:
    """121058 Procedure reported: from the report, else by kind (mammography when an AGD is present)."""
    if r.procedure_reported is not None:
        return r.procedure_reported
    if r.kind == PROJECTION and (r.total(c.ACCUMULATED_AGD) is not None or "MG" in modalities(r)):
        return MAMMOGRAPHY
    return PROCEDURE_BY_KIND.get(r.kind, PROCEDURE_BY_KIND[PROJECTION])


def summary_key(r: DoseReport) -> str:
    """Stable key of the summary: one per study, report kind and device (what aggregate.merge_reports combines)."""
    return uuid5(f"dose-summary|{r.study.instance_uid}|{r.kind}|{r.device.key}")


# ---------------------------------------------------------------------------- radiation dose summary


def _summary_components(r: DoseReport) -> tuple[list[dict], list[str]]:
    """Components (RDS IG component value set, DICOM codes, UCUM units) and the phrases of the summary text."""
    proc = procedure_reported(r)
    comps: list[dict] = [{"code": dcm(c.PROCEDURE_REPORTED, "Procedure reported"), "valueCodeableConcept": concept(proc)}]
    text = [f"{proc.meaning or r.kind} performed"]
    for code, meaning in SUMMARY_TOTALS.get(r.kind, ()):
        q = r.total(code)
        if q is not None:
            comps.append(component(dcm(code, meaning), Measurement(Concept("DCM", code, meaning), q)))
            text.append(f"{meaning} = {number(q.value)} {q.unit}" if code not in COUNTS else f"{meaning} = {number(q.value)}")
    for m in [m for a in r.accumulated for m in a.all(c.ACCUMULATED_AGD)] + r.all(c.ACCUMULATED_AGD):
        comps.append(component(dcm(c.ACCUMULATED_AGD, "Accumulated Average Glandular Dose"), m))  # TID 10005, per breast
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
        comps.append({"code": dcm(c.TOTAL_NUMBER_OF_EVENTS, "Total Number of Irradiation Events"), "valueInteger": count})
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
        out.append(component(dcm(c.ADMINISTERED_ACTIVITY, "Administered activity"),
                             Measurement(Concept("DCM", c.ADMINISTERED_ACTIVITY), adm.activity)))
    volume = adm.get("123005")
    if volume is not None:
        out.append(component(dcm("123005", "Radiopharmaceutical Volume"), Measurement(Concept("DCM", "123005"), volume)))
    if adm.route is not None:
        out.append({"code": concept(Concept("SCT", c.ROUTE_OF_ADMINISTRATION[1], "Route of administration")),
                    "valueCodeableConcept": concept(adm.route)})
    if adm.effective_dose is not None:
        out.append(component(dcm(c.EFFECTIVE_DOSE, "Effective Dose"), Measurement(Concept("DCM", c.EFFECTIVE_DOSE), adm.effective_dose)))
    for organ in adm.organ_doses:  # TID 10023: the organ in the dose-target-site extension
        out.append(component(dcm(c.ORGAN_DOSE, "Organ Dose"), Measurement(Concept("DCM", c.ORGAN_DOSE), organ.dose, organ.organ)))
    return out


def _effective(r: DoseReport) -> Optional[str]:
    """113809 Start of X-Ray Irradiation (RDS IG), for radiopharmaceuticals 123003 Start DateTime, else the study's."""
    starts: list[Optional[datetime]] = [a.started for a in r.administrations] if r.kind == RADIOPHARMACEUTICAL else []
    starts += [r.started, r.study.started, *[e.started for e in r.events]]
    return fhir_datetime(next((s for s in starts if s), None))


def dose_summary(r: DoseReport, patient: dict, study: dict, order: Optional[dict], device: dict,
                 performer: Optional[dict], events: list[dict]) -> dict:
    """RDS ``radiation-dose-summary`` Observation; arguments other than ``r`` are references to Bundle entries."""
    ids = [{"type": id_type(c.SYS_V2_0203, "RI", "Resource identifier"), "system": SYS_DOSE_SUMMARY, "value": summary_key(r)}]
    if r.source != SOURCE_IMAGE:  # RDS IG identifier:radiationSRUID, the RDSR SOP Instance UID(s)
        ids += [uid_identifier(u, "sop-instance-uid", "SOP Instance UID") for u in dict.fromkeys(r.source_instances or (r.sop_instance_uid,))]
    comps, text = _summary_components(r)
    res: dict = {"resourceType": "Observation", "meta": {"profile": [PROFILE_RDS_SUMMARY, PROFILE_DOSE_SUMMARY]}, "identifier": ids}
    if order is not None:
        res["basedOn"] = [reference(order, accession_identifier(r))]
    res["partOf"] = [reference(study, uid_identifier(r.study.instance_uid, "study-instance-uid", "Study Instance UID"))]
    res.update({"status": "final", "category": [CATEGORY_IMAGING], "code": SUMMARY_CODE, "subject": reference(patient),
                "focus": [reference(study)]})
    effective = _effective(r)
    if effective:
        res["effectiveDateTime"] = effective
    if performer is not None:  # RDS IG performer:irradiationAutorizingPerson
        res["performer"] = [reference(performer)]
    else:  # performer is 1..1 in the RDS IG: say that the person is unknown rather than invent one
        res["performer"] = [{"type": "Practitioner", "extension": [DATA_ABSENT_UNKNOWN]}]
    res["valueString"] = ", ".join(text)
    res["device"] = reference(device)
    if events:
        res["hasMember"] = [reference(e) for e in events]
    res["component"] = comps
    return res


# ---------------------------------------------------------------------------- irradiation events


def irradiation_event(r: DoseReport, e: IrradiationEvent, patient: dict, study: dict, device: dict) -> dict:
    """One irradiation event: TID 10013 CT Acquisition or TID 10003 Irradiation Event X-Ray Data."""
    res: dict = {"resourceType": "Observation", "meta": {"profile": [PROFILE_IRRADIATION_EVENT]},
                 "identifier": [uid_identifier(e.uid, "irradiation-event-uid", "Irradiation Event UID")],
                 "partOf": [reference(study)], "status": "final", "category": [CATEGORY_IMAGING], "code": EVENT_CODE,
                 "subject": reference(patient)}
    effective = fhir_datetime(e.started or r.started or r.study.started)
    if effective:
        res["effectiveDateTime"] = effective
    if e.target_region is not None:
        res["bodySite"] = concept(e.target_region)  # 123014 Target Region
    res["device"] = reference(device)
    if e.comment:
        res["note"] = [{"text": e.comment}]
    res["component"] = _event_components(e)
    return res


def _event_components(e: IrradiationEvent) -> list[dict]:
    comps: list[dict] = []
    seen: set = set()

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
        comps.append({"code": dcm(c.ACQUISITION_PROTOCOL, "Acquisition Protocol"), "valueString": e.protocol})
    if e.reference_point_definition:
        comps.append({"code": dcm(c.REFERENCE_POINT_DEFINITION[0], "Reference Point Definition"), "valueString": e.reference_point_definition})
    for m in (*e.measurements, *(m for s in e.sources for m in s.measurements)):
        comps.append(component(concept(m.concept), m))
    for f in e.filters:  # TID 10003 X-Ray Filters (113771): material, type and thickness range as text
        if f.material is not None:
            cc = concept(f.material)
            cc["text"] = _filter_text(f)
            comps.append({"code": dcm(c.FILTER_MATERIAL, "X-Ray Filter Material"), "valueCodeableConcept": cc})
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
