"""Dose from image headers of objects without an RDSR (legacy extraction).

PS3.3 attributes read: C.8.7.8 X-Ray Acquisition Dose (DAP 0018,115E in dGy.cm2, Entrance Dose
in mGy 0040,8302, Organ Dose 0040,0316 in dGy, technique factors, filters, Exposure Index),
C.8.15.2 CT Image (CTDIvol 0018,9345), C.4.16 Radiation Dose (Exposure Dose Sequence 0040,030E,
Total Time of Fluoroscopy 0040,0300), C.8.4.10 / C.8.22.6 Radiopharmaceutical Information
(0054,0016). One image becomes one :class:`DoseReport` (source IMAGE_HEADER) whose events and
totals are laid out as the PS3.16 templates would have them (TID 10013, TID 10003, TID 10022).

The kind of report is decided here; the readers per modality family are :mod:`.image_ct`,
:mod:`.image_projection` and :mod:`.image_radiopharmaceutical`, on :mod:`.image_values`.
"""
from __future__ import annotations

from typing import Optional

from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary

from .. import codes as c
from ..aggregate import totals_from_events, with_total
from ..domain import (
    CT,
    PROJECTION,
    RADIOPHARMACEUTICAL,
    SOURCE_IMAGE,
    Concept,
    DoseReport,
    IrradiationEvent,
    Measurement,
    RadiopharmaceuticalAdministration,
)
from ..errors import MappingError, NotADoseObject
from .dicom_header import parse_datetime, patient_from, study_from, text
from .image_ct import ct_events, enhanced_ct
from .image_projection import projection_event, report_level
from .image_radiopharmaceutical import administrations as rp_administrations
from .image_values import ImageHeader, derived_uid, has, positive

__all__ = ["parse_image", "derived_uid"]

PROJECTION_MODALITIES = frozenset(("DX", "CR", "PX", "XA", "RF", "MG", "IO", "DR", "DF"))
RP_MODALITIES = frozenset(("PT", "NM"))

COPIED_FROM_IMAGE = Concept("DCM", c.COPIED_FROM_IMAGE_ATTRIBUTES, "Copied From Image Attributes")
PROCEDURES = {
    CT: Concept("SCT", c.CT_PROCEDURE[1], "Computed Tomography X-Ray"),
    PROJECTION: Concept("DCM", c.PROJECTION_PROCEDURE, "Projection X-Ray"),
    "MG": Concept("SCT", c.MAMMOGRAPHY_PROCEDURE[1], "Mammography"),
}


def parse_image(ds: Dataset) -> DoseReport:
    """One image header to a :class:`DoseReport`; raises :class:`NotADoseObject` without dose attributes."""
    sop_class = text(ds, "SOPClassUID")
    info = UID_dictionary.get(sop_class)
    if info is not None and "Image" not in info[0]:
        raise NotADoseObject(f"{info[0]} object is neither a dose SR nor an image")
    sop_uid = text(ds, "SOPInstanceUID")
    modality = text(ds, "Modality").upper()
    header = ImageHeader(ds)
    kind = _kind(ds, modality)
    if kind is None:
        raise NotADoseObject(f"{modality or 'untyped'} image carries no dose attributes")
    if not sop_uid or not text(ds, "StudyInstanceUID"):
        raise MappingError("image without SOP Instance UID or Study Instance UID")
    events: tuple[IrradiationEvent, ...] = ()
    administrations: tuple[RadiopharmaceuticalAdministration, ...] = ()
    measurements: tuple[Measurement, ...] = ()
    vendor_dlp_total = None
    if kind == CT:
        events, vendor_dlp_total = ct_events(header, sop_uid)
    elif kind == PROJECTION:
        events = (projection_event(header, sop_uid, modality),)
        measurements = report_level(header)
    else:
        administrations = rp_administrations(header)
    accumulated = totals_from_events(kind, events, measurements)
    if vendor_dlp_total is not None:
        # the device's own total (Philips dose info) rather than the sum of its rounded event values
        accumulated = with_total(accumulated, Measurement(Concept("DCM", c.CT_DLP_TOTAL, "CT Dose Length Product Total"), vendor_dlp_total))
    started = [e.started for e in events if e.started] or [a.started for a in administrations if a.started]
    return DoseReport(
        sop_instance_uid=sop_uid,
        sop_class_uid=sop_class,
        kind=kind,
        source=SOURCE_IMAGE,
        study=study_from(ds, (modality,) if modality else ()),
        patient=patient_from(ds),
        device=header.device,
        modality=modality,
        procedure_reported=PROCEDURES.get("MG" if modality == "MG" else kind),
        started=min(started, key=lambda d: d.replace(tzinfo=None)) if started else None,
        content_datetime=parse_datetime(ds.get("ContentDate"), ds.get("ContentTime", "")),
        source_of_dose_information=(COPIED_FROM_IMAGE,) if kind != RADIOPHARMACEUTICAL else (),
        accumulated=accumulated,
        events=events,
        administrations=administrations,
        measurements=measurements,
        source_instances=(sop_uid,),
        quirks=tuple(dict.fromkeys(header.quirks)),
    )


def _kind(ds: Dataset, modality: str) -> Optional[str]:
    """CT, PROJECTION or RADIOPHARMACEUTICAL from the dose attributes present (modality breaks ties)."""
    exposures = ds.get("ExposureDoseSequence") or ()
    ct = has(ds, "CTDIvol") or any(has(i, "CTDIvol") for i in exposures) or enhanced_ct(ds) is not None
    projection = any(has(ds, k) for k in ("ImageAndFluoroscopyAreaDoseProduct", "EntranceDoseInmGy", "OrganDose"))
    projection = projection or positive(ds, "EntranceDose")
    rp = any(has(item, "RadionuclideTotalDose") for item in ds.get("RadiopharmaceuticalInformationSequence") or ())
    if modality in RP_MODALITIES and rp:
        return RADIOPHARMACEUTICAL
    if modality == "CT" and ct:
        return CT
    if modality in PROJECTION_MODALITIES and projection:
        return PROJECTION
    return CT if ct else PROJECTION if projection else RADIOPHARMACEUTICAL if rp else None
