"""Projection X-ray and mammography dose from image headers, laid out as TID 10003 Irradiation Events.

PS3.3 C.8.7.8 X-Ray Acquisition Dose (DAP 0018,115E in dGy.cm2, Entrance Dose in mGy 0040,8302,
Organ Dose 0040,0316 in dGy, technique factors, Exposure Index), C.8.7.10 X-Ray Filtration and
C.4.16 Radiation Dose (Total Time of Fluoroscopy 0040,0300), for DX, CR, MG, XA, RF and the like.
"""
from __future__ import annotations

from typing import Optional

from .. import codes as c
from ..domain import PROJECTION, Concept, IrradiationEvent, Measurement, Quantity, XRayFilter
from ..units import UnitError, normalise, parse_decimal
from . import image_quirks as quirk
from .dicom_header import text
from .image_values import ImageHeader, adder, code, decimals, has, lenient_text, meaning, nth, positive, raw

SINGLE_PLANE = Concept("DCM", c.SINGLE_PLANE, "Single Plane")
STATIONARY = Concept("DCM", c.STATIONARY_ACQUISITION, "Stationary Acquisition")
FLUOROSCOPY = Concept("SCT", c.FLUOROSCOPY[1], "Fluoroscopy")
MATERIALS = {term: Concept(*coded) for term, coded in c.MATERIAL_TERMS.items()}
FILTER_TYPES = {term: Concept(*coded) for term, coded in c.FILTER_TYPE_TERMS.items()}
BREAST = {"L": Concept("SCT", c.LEFT_BREAST[1], "Left breast"), "R": Concept("SCT", c.RIGHT_BREAST[1], "Right breast")}
SIDE = {"L": Concept("SCT", "7771000", "Left"), "R": Concept("SCT", "24028007", "Right"), "B": Concept("SCT", "51440002", "Right and left")}
ANODE = Concept("DCM", c.ANODE_TARGET_MATERIAL, "Anode Target Material")


def projection_event(h: ImageHeader, sop_uid: str, modality: str) -> IrradiationEvent:
    """TID 10003 Irradiation Event X-Ray Data from the X-Ray Acquisition Dose module of one image."""
    ds = h.ds
    m: list[Measurement] = []
    add = adder(m)
    add(c.DAP, "Dose Area Product", h.quantity(ds, "ImageAndFluoroscopyAreaDoseProduct", "dGy.cm2"))
    entrance = h.quantity(ds, "EntranceDoseInmGy", "mGy")
    if entrance is None and positive(ds, "EntranceDose"):
        entrance = h.quantity(ds, "EntranceDose", "dGy")
    elif entrance is not None and has(ds, "EntranceDose") and not positive(ds, "EntranceDose"):
        h.quirks.append(quirk.ENTRANCE_DOSE_ZERO.name)
    add(c.ENTRANCE_EXPOSURE_AT_RP, "Entrance Exposure at RP", entrance)
    mammography = modality == "MG" or text(ds, "OrganExposed").upper() == "BREAST"
    if mammography:
        add(c.AGD, "Average Glandular Dose", h.quantity(ds, "OrganDose", "dGy"))
        add(c.COMPRESSION_THICKNESS, "Compression Thickness", h.quantity(ds, "BodyPartThickness", "mm"))
        force = raw(ds, "CompressionForce")
        if force is not None:
            try:
                add(c.COMPRESSION_FORCE, "Compression Force", Quantity(float(parse_decimal(force)), "N"))
            except UnitError:
                pass
    add(c.KVP, "KVP", h.quantity(ds, "KVP", "kV"))
    add(c.TUBE_CURRENT, "X-Ray Tube Current", h.first(ds, ("XRayTubeCurrentInuA", "uA"), ("XRayTubeCurrentInmA", "mA"), ("XRayTubeCurrent", "mA")))
    add(c.EXPOSURE, "Exposure", h.first(ds, ("ExposureInuAs", "uA.s"), ("ExposureInmAs", "mA.s"), ("Exposure", "mA.s")))
    add(
        c.EXPOSURE_TIME_PROJECTION,
        "Exposure Time",
        h.first(ds, ("ExposureTimeInuS", "us"), ("ExposureTimeInms", "ms"), ("ExposureTime", "ms")),
    )
    add(c.EXPOSURE_INDEX, "Exposure Index", h.quantity(ds, "ExposureIndex", "1"))
    add(c.TARGET_EXPOSURE_INDEX, "Target Exposure Index", h.quantity(ds, "TargetExposureIndex", "1"))
    add(c.DEVIATION_INDEX, "Deviation Index", h.quantity(ds, "DeviationIndex", "1"))
    add(c.DISTANCE_SOURCE_TO_DETECTOR, "Distance Source to Detector", _source_to_detector(h))
    add(c.HALF_VALUE_LAYER, "Half Value Layer", h.quantity(ds, "HalfValueLayer", "mm"))
    if modality in ("XA", "RF"):
        add(c.POSITIONER_PRIMARY_ANGLE, "Positioner Primary Angle", h.quantity(ds, "PositionerPrimaryAngle", "deg"))
        add(c.POSITIONER_SECONDARY_ANGLE, "Positioner Secondary Angle", h.quantity(ds, "PositionerSecondaryAngle", "deg"))
        add(c.NUMBER_OF_PULSES, "Number of Pulses", h.quantity(ds, "NumberOfFrames", "1"))
    codes = []
    anode = MATERIALS.get(text(ds, "AnodeTargetMaterial").upper())
    if anode is not None:
        codes.append((ANODE, anode))
    fluoro = text(ds, "RadiationSetting").upper() == "SC"
    return IrradiationEvent(
        uid=h.event_uid(sop_uid),
        kind=PROJECTION,
        started=h.acquired(),
        plane=SINGLE_PLANE,
        event_type=FLUOROSCOPY if fluoro else STATIONARY,
        protocol=text(ds, "ProtocolName") or text(ds, "SeriesDescription") or meaning(ds.get("PerformedProtocolCodeSequence")),
        target_region=code(ds.get("AnatomicRegionSequence")),
        laterality=_laterality(h, mammography),
        measurements=tuple(m),
        filters=_filters(h),
        codes=tuple(codes),
    )


def report_level(h: ImageHeader) -> tuple[Measurement, ...]:
    """Procedure-step values of the Radiation Dose module (C.4.16) that belong to no single event."""
    q = h.quantity(h.ds, "TotalTimeOfFluoroscopy", "s")
    return (Measurement(Concept("DCM", c.TOTAL_FLUORO_TIME, "Total Fluoro Time"), q),) if q is not None else ()


def _source_to_detector(h: ImageHeader) -> Optional[Quantity]:
    value = raw(h.ds, "DistanceSourceToDetector")
    if value is None:
        return None
    try:
        number = parse_decimal(value)
    except UnitError:
        return None
    if quirk.sid_in_decimetres(h.device, number):
        h.quirks.append(quirk.KODAK_SID_DECIMETRES.name)
        return normalise(number, "dm")
    return normalise(number, "mm")


def _laterality(h: ImageHeader, mammography: bool) -> Optional[Concept]:
    side = (text(h.ds, "ImageLaterality") or text(h.ds, "Laterality")).upper()[:1]
    return (BREAST if mammography else SIDE).get(side)


def _filters(h: ImageHeader) -> tuple[XRayFilter, ...]:
    """X-Ray Filters (TID 10003A 113771) from Filter Type / Material / Thickness (C.8.7.10)."""
    ds = h.ds
    ftype = FILTER_TYPES.get(text(ds, "FilterType").upper())
    materials = [s.strip().upper() for s in lenient_text(ds, "FilterMaterial").replace(",", "\\").split("\\") if s.strip()]
    lows, highs = decimals(ds, "FilterThicknessMinimum"), decimals(ds, "FilterThicknessMaximum")
    coded = quirk.filter_in_type(text(ds, "FilterType")) if not materials else None
    if coded is not None:
        h.quirks.append(quirk.SIEMENS_FILTER_TYPE.name)
        materials, lows, highs, ftype = [coded[0]], [coded[1]], [coded[1]], FILTER_TYPES["FLAT"]
    if not materials:
        return (XRayFilter(type=ftype),) if ftype is not None and ftype.code == "111609" else ()
    out = []
    for n, name in enumerate(materials):
        low, high = nth(lows, n), nth(highs, n)
        if low is not None and high is not None and low > high:
            low, high = high, low
            h.quirks.append(quirk.FILTER_THICKNESS_SWAPPED.name)
        out.append(
            XRayFilter(
                type=ftype,
                material=MATERIALS.get(name) or Concept("99DACS", name, name.title()),
                thickness_min=normalise(low, "mm") if low is not None else None,
                thickness_max=normalise(high, "mm") if high is not None else None,
            )
        )
    return tuple(out)
