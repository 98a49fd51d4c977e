"""CT dose from image headers, laid out as TID 10013 CT Irradiation Events.

PS3.3 C.8.15.2 CT Image (CTDIvol 0018,9345), the Enhanced CT shared functional groups (C.8.15.3)
and C.4.16 Exposure Dose Sequence (0040,030E) items, with the Philips private DLP where present.
"""
from __future__ import annotations

from typing import Optional

from pydicom.dataset import Dataset

from .. import codes as c
from ..domain import CT, Concept, IrradiationEvent, Measurement, Quantity, XRaySource
from . import image_quirks as quirk
from .dicom_header import parse_datetime, text
from .image_values import ImageHeader, adder, code, derived_uid, has, lenient_quantity, raw

CT_ACQUISITION_TYPES = {term: Concept(*coded) for term, coded in c.CT_ACQUISITION_TYPE_TERMS.items()}


def enhanced_ct(ds: Dataset) -> Optional[Dataset]:
    """The shared CT Exposure, X-Ray Details and Acquisition Type macros (C.8.15.3) of an Enhanced CT image."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if not shared:
        return None
    exposure = (shared[0].get("CTExposureSequence") or [None])[0]
    if exposure is None or not has(exposure, "CTDIvol"):
        return None
    view = Dataset()
    for keyword in ("CTAcquisitionTypeSequence", "CTXRayDetailsSequence"):
        for item in (shared[0].get(keyword) or ())[:1]:
            view.update(item)
    view.update(exposure)
    return view


def ct_events(h: ImageHeader, sop_uid: str) -> tuple[tuple[IrradiationEvent, ...], Optional[Quantity]]:
    """The CT events of one image, and the device's own DLP total when it codes one (Philips dose info)."""
    ds = h.ds
    items = [i for i in ds.get("ExposureDoseSequence") or () if has(i, "CTDIvol") or has(i, "AcquisitionType")]
    if items:
        vendor_dlp_total = None
        dlp = quirk.philips_private_dlp(ds)
        if dlp is not None or any(quirk.philips_private_dlp(i) is not None for i in items):
            h.quirks.append(quirk.PHILIPS_PRIVATE_DLP.name)
            if dlp is not None:
                vendor_dlp_total = lenient_quantity(dlp, "mGy.cm")
        events = tuple(_ct_event(h, item, derived_uid(sop_uid, str(n)), in_sequence=True) for n, item in enumerate(items, 1))
        return events, vendor_dlp_total
    return (_ct_event(h, enhanced_ct(ds) or ds, h.event_uid(sop_uid), in_sequence=False),), None


def _ct_event(h: ImageHeader, item: Dataset, uid: str, in_sequence: bool) -> IrradiationEvent:
    """TID 10013 from an Exposure Dose Sequence item, a CT Exposure macro or the image itself."""
    top = h.ds
    m: list[Measurement] = []
    add = adder(m)
    add(c.MEAN_CTDIVOL, "Mean CTDIvol", h.quantity(item, "CTDIvol", "mGy"))
    dlp = lenient_quantity(quirk.philips_private_dlp(item), "mGy.cm") if in_sequence else None
    add(c.DLP, "DLP", dlp)
    add(c.EXPOSURE_TIME, "Exposure Time", h.first(item, ("ExposureTimeInms", "ms"), ("ExposureTime", "ms")))
    add(c.SCANNING_LENGTH, "Scanning Length", h.quantity(item, "ScanLength", "mm"))
    add(c.NOMINAL_SINGLE_COLLIMATION, "Nominal Single Collimation Width", h.quantity(item, "SingleCollimationWidth", "mm"))
    add(c.NOMINAL_TOTAL_COLLIMATION, "Nominal Total Collimation Width", h.quantity(item, "TotalCollimationWidth", "mm"))
    add(c.PITCH_FACTOR, "Pitch Factor", h.quantity(item, "SpiralPitchFactor", "{ratio}"))
    source: list[Measurement] = []
    add_source = adder(source)
    add_source(c.KVP, "KVP", h.quantity(item, "KVP", "kV") or h.quantity(top, "KVP", "kV"))
    current = h.first(item, ("XRayTubeCurrentInuA", "uA"), ("XRayTubeCurrentInmA", "mA"), ("XRayTubeCurrent", "mA"))
    add_source(c.TUBE_CURRENT, "X-Ray Tube Current", current)
    add_source("113834", "Exposure Time per Rotation", h.quantity(item, "RevolutionTime", "s"))
    acq_type = raw(item, "AcquisitionType") or raw(top, "AcquisitionType")
    protocol = raw(item, "SeriesDescription") if in_sequence else None
    return IrradiationEvent(
        uid=uid,
        kind=CT,
        started=parse_datetime(item.get("AcquisitionDateTime")) if in_sequence else h.acquired(),
        event_type=CT_ACQUISITION_TYPES.get((acq_type or "").upper()),
        protocol=protocol or text(top, "ProtocolName") or text(top, "SeriesDescription"),
        target_region=code(top.get("AnatomicRegionSequence")),
        # one X-ray source: its values are event values too (the SR parser's convention)
        measurements=tuple(m + source),
        sources=(XRaySource(measurements=tuple(source)),) if source else (),
    )
