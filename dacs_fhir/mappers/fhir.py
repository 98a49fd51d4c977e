"""DoseReport -> one FHIR R4 transaction Bundle (HL7 Radiation Dose Summary IG 1.0.0 and our profiles).

Entries: Patient, Practitioner (persons of the report), ServiceRequest (accession number),
ImagingStudy, Device (RDS ``modality-device``), the RDS ``radiation-dose-summary`` Observation
(LOINC 73569-6) and one ``irradiation-event`` Observation per event, linked by ``hasMember``.
Resources are plain dicts (no model objects on the hot path). Every entry's fullUrl is a uuid5 of
its business identifier, so the same report always gives the same Bundle; requests are
conditional on that identifier. The identifier systems and uuid5 rule are those of the HL7 v2
mapping (``hl7v2.datatypes``), so a Patient or order from the RIS and one from DICOM meet.

The resources are built in :mod:`.fhir_participants` (context) and :mod:`.fhir_observations`
(dose), from the datatypes of :mod:`.fhir_datatypes`; their public names are re-exported here.
"""
from __future__ import annotations

from typing import Optional

from .. import codes as c
from ..domain import DoseReport
from ..errors import MappingError
from .fhir_datatypes import (
    COUNTS,
    DATA_ABSENT_UNKNOWN,
    EXT_TARGET_SITE,
    OURS,
    PROFILE_DOSE_SUMMARY,
    PROFILE_IRRADIATION_EVENT,
    PROFILE_MODALITY_DEVICE,
    PROFILE_RDS_SUMMARY,
    RDS,
    SID,
    SYS_DOSE_SUMMARY,
    SYS_ID_TYPE,
    authority_system,
    coding,
    concept,
    fhir_datetime,
    full_url,
    human_name,
    identifier_criterion,
    number,
    quantity,
)
from .fhir_observations import (
    CATEGORY_IMAGING,
    EVENT_CODE,
    MAMMOGRAPHY,
    PROCEDURE_BY_KIND,
    SUMMARY_CODE,
    SUMMARY_TOTALS,
    dose_summary,
    irradiation_event,
    procedure_reported,
    summary_key,
)
from .fhir_participants import (
    GENDER,
    MODALITY_BY_KIND,
    MODALITY_NAMES,
    device,
    imaging_study,
    patient,
    practitioners,
    service_request,
)

__all__ = [
    "to_bundle", "c",
    "RDS", "OURS", "SID", "PROFILE_RDS_SUMMARY", "PROFILE_MODALITY_DEVICE", "PROFILE_DOSE_SUMMARY", "PROFILE_IRRADIATION_EVENT",
    "EXT_TARGET_SITE", "SYS_ID_TYPE", "SYS_DOSE_SUMMARY", "DATA_ABSENT_UNKNOWN", "COUNTS",
    "GENDER", "MODALITY_NAMES", "MODALITY_BY_KIND",
    "CATEGORY_IMAGING", "SUMMARY_CODE", "EVENT_CODE", "PROCEDURE_BY_KIND", "MAMMOGRAPHY", "SUMMARY_TOTALS",
    "full_url", "authority_system", "coding", "concept", "quantity", "fhir_datetime", "human_name", "number",
    "procedure_reported", "summary_key",
]


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
        subject = self.add(patient(r), update=False)
        persons = [self.add(p, update=False) for p in practitioners(r)]
        order = self.add(service_request(r, subject), update=False) if r.study.accession_number else None
        study = self.add(imaging_study(r, subject, order), update=False)
        modality = self.add(device(r), update=False)
        unique = {e.uid: e for e in reversed(r.events)}  # one resource per Irradiation Event UID (first kept)
        events = [self.add(irradiation_event(r, e, subject, study, modality)) for e in r.events if unique.get(e.uid) is e]
        performer = persons[0] if persons else None  # practitioners() puts the authorizing person (113850) first
        summary = dose_summary(r, subject, study, order, modality, performer, events)
        self.entries.insert(len(self.entries) - len(events), self.entry(summary))
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}

    def add(self, resource: dict, update: Optional[bool] = None) -> dict:
        entry = self.entry(resource, update)
        self.entries.append(entry)
        return {"reference": entry["fullUrl"], "type": resource["resourceType"]}

    def entry(self, resource: dict, update: Optional[bool] = None) -> dict:
        rtype, key = resource["resourceType"], resource["identifier"][0]
        query = identifier_criterion(key["system"], key["value"])
        put = self.update if update is None else update
        request = {"method": "PUT", "url": f"{rtype}?{query}"} if put else {"method": "POST", "url": rtype, "ifNoneExist": query}
        return {"fullUrl": full_url(key["system"], key["value"], rtype), "resource": resource, "request": request}
