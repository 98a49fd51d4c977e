"""Dose from image headers of objects without an RDSR (legacy extraction).

PS3.3 attributes read: C.8.7.8 X-Ray Acquisition Dose (DAP 0018,115E in dGy.cm2, Entrance Dose
in mGy 0040,8302, Organ Dose 0040,0316 in dGy, technique factors, filters, Exposure Index),
C.8.15.2 CT Image (CTDIvol 0018,9345), C.4.16 Radiation Dose (Exposure Dose Sequence 0040,030E,
Total Time of Fluoroscopy 0040,0300), C.8.4.10 / C.8.22.6 Radiopharmaceutical Information
(0054,0016). One image becomes one :class:`DoseReport` (source IMAGE_HEADER) whose events and
totals are laid out as the PS3.16 templates would have them (TID 10013, TID 10003, TID 10022).
"""
from __future__ import annotations

import uuid
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
    Device,
    DoseReport,
    IrradiationEvent,
    Measurement,
    Quantity,
    RadiopharmaceuticalAdministration,
    XRayFilter,
    XRaySource,
)
from ..errors import MappingError, NotADoseObject
from ..units import UnitError, normalise, parse_decimal
from . import image_quirks as quirk
from .dicom_header import device_from, parse_datetime, patient_from, study_from, text

PROJECTION_MODALITIES = frozenset(("DX", "CR", "PX", "XA", "RF", "MG", "IO", "DR", "DF"))
RP_MODALITIES = frozenset(("PT", "NM"))

SINGLE_PLANE = Concept("DCM", c.SINGLE_PLANE, "Single Plane")
STATIONARY = Concept("DCM", c.STATIONARY_ACQUISITION, "Stationary Acquisition")
FLUOROSCOPY = Concept("SCT", c.FLUOROSCOPY[1], "Fluoroscopy")
COPIED_FROM_IMAGE = Concept("DCM", c.COPIED_FROM_IMAGE_ATTRIBUTES, "Copied From Image Attributes")
PROCEDURES = {
    CT: Concept("SCT", c.CT_PROCEDURE[1], "Computed Tomography X-Ray"),
    PROJECTION: Concept("DCM", c.PROJECTION_PROCEDURE, "Projection X-Ray"),
    "MG": Concept("SCT", c.MAMMOGRAPHY_PROCEDURE[1], "Mammography"),
}
CT_ACQUISITION_TYPES = {term: Concept(*coded) for term, coded in c.CT_ACQUISITION_TYPE_TERMS.items()}
MATERIALS = {term: Concept(*coded) for term, coded in c.MATERIAL_TERMS.items()}
FILTER_TYPES = {term: Concept(*coded) for term, coded in c.FILTER_TYPE_TERMS.items()}
BREAST = {"L": Concept("SCT", c.LEFT_BREAST[1], "Left breast"), "R": Concept("SCT", c.RIGHT_BREAST[1], "Right breast")}
SIDE = {"L": Concept("SCT", "7771000", "Left"), "R": Concept("SCT", "24028007", "Right"), "B": Concept("SCT", "51440002", "Right and left")}
ANODE = Concept("DCM", c.ANODE_TARGET_MATERIAL, "Anode Target Material")


def parse_image(ds: Dataset) -> DoseReport:
    """One image header to a :class:`DoseReport`; raises :class:`NotADoseObject` without dose attributes."""
    sop_class = text(ds, "SOPClassUID")
    info = UID_dictionary.get(sop_class)
    if info is not None and "Image" not in info[0]:
        raise NotADoseObject(f"{info[0]} object is neither a dose SR nor an image")
    sop_uid = text(ds, "SOPInstanceUID")
    modality = text(ds, "Modality").upper()
    header = _Header(ds)
    kind = _kind(ds, modality)
    if kind is None:
        raise NotADoseObject(f"{modality or 'untyped'} image carries no dose attributes")
    if not sop_uid or not text(ds, "StudyInstanceUID"):
        raise MappingError("image without SOP Instance UID or Study Instance UID")
    events: tuple[IrradiationEvent, ...] = ()
    administrations: tuple[RadiopharmaceuticalAdministration, ...] = ()
    measurements: tuple[Measurement, ...] = ()
    if kind == CT:
        events = header.ct_events(sop_uid)
    elif kind == PROJECTION:
        events = (header.projection_event(sop_uid, modality),)
        measurements = header.report_level()
    else:
        administrations = header.administrations()
    accumulated = totals_from_events(kind, events, measurements)
    if kind == CT and header.vendor_dlp_total is not None:
        # the device's own total (Philips dose info) rather than the sum of its rounded event values
        accumulated = with_total(accumulated, Measurement(Concept("DCM", c.CT_DLP_TOTAL, "CT Dose Length Product Total"), header.vendor_dlp_total))
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


def derived_uid(*parts: str) -> str:
    """A deterministic UID (PS3.5 B.2, 2.25 + UUID v5) for an item the header does not identify."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(parts)).int)


def _has(ds: Dataset, keyword: str) -> bool:
    value = ds.get(keyword)
    return value is not None and value != "" and value != b""


def _kind(ds: Dataset, modality: str) -> Optional[str]:
    """CT, PROJECTION or RADIOPHARMACEUTICAL from the dose attributes present (modality breaks ties)."""
    exposures = ds.get("ExposureDoseSequence") or ()
    ct = _has(ds, "CTDIvol") or any(_has(i, "CTDIvol") for i in exposures) or _enhanced_ct(ds) is not None
    projection = any(_has(ds, k) for k in ("ImageAndFluoroscopyAreaDoseProduct", "EntranceDoseInmGy", "OrganDose"))
    projection = projection or _positive(ds, "EntranceDose")
    rp = any(_has(item, "RadionuclideTotalDose") for item in ds.get("RadiopharmaceuticalInformationSequence") or ())
    if modality in RP_MODALITIES and rp:
        return RADIOPHARMACEUTICAL
    if modality == "CT" and ct:
        return CT
    if modality in PROJECTION_MODALITIES and projection:
        return PROJECTION
    return CT if ct else PROJECTION if projection else RADIOPHARMACEUTICAL if rp else None


def _positive(ds: Dataset, keyword: str) -> bool:
    try:
        return _has(ds, keyword) and float(ds.get(keyword)) > 0
    except (TypeError, ValueError):
        return False


def _enhanced_ct(ds: Dataset) -> Optional[Dataset]:
    """The shared CT Exposure, X-Ray Details and Acquisition Type macros (C.8.15.3) of an Enhanced CT image."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if not shared:
        return None
    exposure = (shared[0].get("CTExposureSequence") or [None])[0]
    if exposure is None or not _has(exposure, "CTDIvol"):
        return None
    view = Dataset()
    for keyword in ("CTAcquisitionTypeSequence", "CTXRayDetailsSequence"):
        for item in (shared[0].get(keyword) or ())[:1]:
            view.update(item)
    view.update(exposure)
    return view


def _raw(ds: Dataset, keyword: str) -> Optional[str]:
    try:
        value = ds.get(keyword)
    except (ValueError, TypeError):  # a value that breaks its VR: take the bytes as written
        value = ds.get_item(keyword).value
    if value is None or value == "" or value == b"":
        return None
    if type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)):
        value = value[0] if len(value) else None
        if value is None:
            return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    value = str(value).strip()
    return value or None


class _Header:
    """Reads the dose attributes of one image, collecting the quirk fixes it applies."""

    def __init__(self, ds: Dataset):
        self.ds = ds
        self.device: Device = device_from(ds)
        self.quirks: list[str] = []
        self.vendor_dlp_total: Optional[Quantity] = None

    # -- value helpers
    def quantity(self, ds: Dataset, keyword: str, unit: str) -> Optional[Quantity]:
        raw = _raw(ds, keyword)
        if raw is None:
            return None
        try:
            return normalise(raw, unit)
        except UnitError:
            return None  # a malformed number in an optional attribute is not worth rejecting the image

    def first(self, ds: Dataset, *options: tuple[str, str]) -> Optional[Quantity]:
        for keyword, unit in options:
            q = self.quantity(ds, keyword, unit)
            if q is not None:
                return q
        return None

    # -- CT (TID 10013 layout)
    def ct_events(self, sop_uid: str) -> tuple[IrradiationEvent, ...]:
        ds = self.ds
        items = [i for i in ds.get("ExposureDoseSequence") or () if _has(i, "CTDIvol") or _has(i, "AcquisitionType")]
        if items:
            dlp = quirk.philips_private_dlp(ds)
            if dlp is not None or any(quirk.philips_private_dlp(i) is not None for i in items):
                self.quirks.append(quirk.PHILIPS_PRIVATE_DLP.name)
                if dlp is not None:
                    self.vendor_dlp_total = self.private_dlp(dlp)
            return tuple(self.ct_event(item, derived_uid(sop_uid, str(n)), in_sequence=True) for n, item in enumerate(items, 1))
        return (self.ct_event(_enhanced_ct(ds) or ds, self.image_event_uid(sop_uid), in_sequence=False),)

    def private_dlp(self, raw: Optional[str]) -> Optional[Quantity]:
        if raw is None:
            return None
        try:
            return normalise(raw, "mGy.cm")
        except UnitError:
            return None

    def image_event_uid(self, sop_uid: str) -> str:
        """(0008,3010) Irradiation Event UID; else one per acquisition of a series, else per image."""
        ds = self.ds
        uid = _raw(ds, "IrradiationEventUID")
        if uid:
            return uid
        series, acquisition = text(ds, "SeriesInstanceUID"), _raw(ds, "AcquisitionNumber")
        # every slice of a CT series carries the CTDIvol of its acquisition: one event, not one per slice
        if text(ds, "Modality").upper() == "CT" and series and acquisition:
            return derived_uid(series, "acquisition", acquisition)
        return derived_uid(sop_uid)

    def ct_event(self, item: Dataset, uid: str, in_sequence: bool) -> IrradiationEvent:
        """TID 10013 from an Exposure Dose Sequence item, a CT Exposure macro or the image itself."""
        top = self.ds
        m: list[Measurement] = []
        add = _adder(m)
        add(c.MEAN_CTDIVOL, "Mean CTDIvol", self.quantity(item, "CTDIvol", "mGy"))
        dlp = self.private_dlp(quirk.philips_private_dlp(item)) if in_sequence else None
        add(c.DLP, "DLP", dlp)
        add(c.EXPOSURE_TIME, "Exposure Time", self.first(item, ("ExposureTimeInms", "ms"), ("ExposureTime", "ms")))
        add(c.SCANNING_LENGTH, "Scanning Length", self.quantity(item, "ScanLength", "mm"))
        add(c.NOMINAL_SINGLE_COLLIMATION, "Nominal Single Collimation Width", self.quantity(item, "SingleCollimationWidth", "mm"))
        add(c.NOMINAL_TOTAL_COLLIMATION, "Nominal Total Collimation Width", self.quantity(item, "TotalCollimationWidth", "mm"))
        add(c.PITCH_FACTOR, "Pitch Factor", self.quantity(item, "SpiralPitchFactor", "{ratio}"))
        source: list[Measurement] = []
        add_source = _adder(source)
        add_source(c.KVP, "KVP", self.quantity(item, "KVP", "kV") or self.quantity(top, "KVP", "kV"))
        current = self.first(item, ("XRayTubeCurrentInuA", "uA"), ("XRayTubeCurrentInmA", "mA"), ("XRayTubeCurrent", "mA"))
        add_source(c.TUBE_CURRENT, "X-Ray Tube Current", current)
        add_source("113834", "Exposure Time per Rotation", self.quantity(item, "RevolutionTime", "s"))
        acq_type = _raw(item, "AcquisitionType") or _raw(top, "AcquisitionType")
        protocol = _raw(item, "SeriesDescription") if in_sequence else None
        return IrradiationEvent(
            uid=uid,
            kind=CT,
            started=parse_datetime(item.get("AcquisitionDateTime")) if in_sequence else self.acquired(),
            event_type=CT_ACQUISITION_TYPES.get((acq_type or "").upper()),
            protocol=protocol or text(top, "ProtocolName") or text(top, "SeriesDescription"),
            target_region=_code(top.get("AnatomicRegionSequence")),
            # one X-ray source: its values are event values too (the SR parser's convention)
            measurements=tuple(m + source),
            sources=(XRaySource(measurements=tuple(source)),) if source else (),
        )

    def acquired(self):
        ds = self.ds
        return (
            parse_datetime(ds.get("AcquisitionDateTime"))
            or parse_datetime(ds.get("AcquisitionDate"), ds.get("AcquisitionTime", ""))
            or parse_datetime(ds.get("ContentDate"), ds.get("ContentTime", ""))
        )

    # -- projection (TID 10003 layout)
    def projection_event(self, sop_uid: str, modality: str) -> IrradiationEvent:
        ds = self.ds
        m: list[Measurement] = []
        add = _adder(m)
        add(c.DAP, "Dose Area Product", self.quantity(ds, "ImageAndFluoroscopyAreaDoseProduct", "dGy.cm2"))
        entrance = self.quantity(ds, "EntranceDoseInmGy", "mGy")
        if entrance is None and _positive(ds, "EntranceDose"):
            entrance = self.quantity(ds, "EntranceDose", "dGy")
        elif entrance is not None and _has(ds, "EntranceDose") and not _positive(ds, "EntranceDose"):
            self.quirks.append(quirk.ENTRANCE_DOSE_ZERO.name)
        add(c.ENTRANCE_EXPOSURE_AT_RP, "Entrance Exposure at RP", entrance)
        mammography = modality == "MG" or text(ds, "OrganExposed").upper() == "BREAST"
        if mammography:
            add(c.AGD, "Average Glandular Dose", self.quantity(ds, "OrganDose", "dGy"))
            add(c.COMPRESSION_THICKNESS, "Compression Thickness", self.quantity(ds, "BodyPartThickness", "mm"))
            force = _raw(ds, "CompressionForce")
            if force is not None:
                try:
                    add(c.COMPRESSION_FORCE, "Compression Force", Quantity(float(parse_decimal(force)), "N"))
                except UnitError:
                    pass
        add(c.KVP, "KVP", self.quantity(ds, "KVP", "kV"))
        add(c.TUBE_CURRENT, "X-Ray Tube Current", self.first(ds, ("XRayTubeCurrentInuA", "uA"), ("XRayTubeCurrentInmA", "mA"), ("XRayTubeCurrent", "mA")))
        add(c.EXPOSURE, "Exposure", self.first(ds, ("ExposureInuAs", "uA.s"), ("ExposureInmAs", "mA.s"), ("Exposure", "mA.s")))
        add(
            c.EXPOSURE_TIME_PROJECTION,
            "Exposure Time",
            self.first(ds, ("ExposureTimeInuS", "us"), ("ExposureTimeInms", "ms"), ("ExposureTime", "ms")),
        )
        add(c.EXPOSURE_INDEX, "Exposure Index", self.quantity(ds, "ExposureIndex", "1"))
        add(c.TARGET_EXPOSURE_INDEX, "Target Exposure Index", self.quantity(ds, "TargetExposureIndex", "1"))
        add(c.DEVIATION_INDEX, "Deviation Index", self.quantity(ds, "DeviationIndex", "1"))
        add(c.DISTANCE_SOURCE_TO_DETECTOR, "Distance Source to Detector", self.source_to_detector())
        add(c.HALF_VALUE_LAYER, "Half Value Layer", self.quantity(ds, "HalfValueLayer", "mm"))
        if modality in ("XA", "RF"):
            add(c.POSITIONER_PRIMARY_ANGLE, "Positioner Primary Angle", self.quantity(ds, "PositionerPrimaryAngle", "deg"))
            add(c.POSITIONER_SECONDARY_ANGLE, "Positioner Secondary Angle", self.quantity(ds, "PositionerSecondaryAngle", "deg"))
            add(c.NUMBER_OF_PULSES, "Number of Pulses", self.quantity(ds, "NumberOfFrames", "1"))
        codes = []
        anode = MATERIALS.get(text(ds, "AnodeTargetMaterial").upper())
        if anode is not None:
            codes.append((ANODE, anode))
        fluoro = text(ds, "RadiationSetting").upper() == "SC"
        return IrradiationEvent(
            uid=self.image_event_uid(sop_uid),
            kind=PROJECTION,
            started=self.acquired(),
            plane=SINGLE_PLANE,
            event_type=FLUOROSCOPY if fluoro else STATIONARY,
            protocol=text(ds, "ProtocolName") or text(ds, "SeriesDescription") or _meaning(ds.get("PerformedProtocolCodeSequence")),
            target_region=_code(ds.get("AnatomicRegionSequence")),
            laterality=self.laterality(mammography),
            measurements=tuple(m),
            filters=self.filters(),
            codes=tuple(codes),
        )

    def report_level(self) -> tuple[Measurement, ...]:
        """Procedure-step values of the Radiation Dose module (C.4.16) that belong to no single event."""
        q = self.quantity(self.ds, "TotalTimeOfFluoroscopy", "s")
        return (Measurement(Concept("DCM", c.TOTAL_FLUORO_TIME, "Total Fluoro Time"), q),) if q is not None else ()

    def source_to_detector(self) -> Optional[Quantity]:
        raw = _raw(self.ds, "DistanceSourceToDetector")
        if raw is None:
            return None
        try:
            value = parse_decimal(raw)
        except UnitError:
            return None
        if quirk.sid_in_decimetres(self.device, value):
            self.quirks.append(quirk.KODAK_SID_DECIMETRES.name)
            return normalise(value, "dm")
        return normalise(value, "mm")

    def laterality(self, mammography: bool) -> Optional[Concept]:
        side = (text(self.ds, "ImageLaterality") or text(self.ds, "Laterality")).upper()[:1]
        return (BREAST if mammography else SIDE).get(side)

    def filters(self) -> tuple[XRayFilter, ...]:
        """X-Ray Filters (TID 10003A 113771) from Filter Type / Material / Thickness (C.8.7.10)."""
        ds = self.ds
        ftype = FILTER_TYPES.get(text(ds, "FilterType").upper())
        materials = [s.strip().upper() for s in _lenient_text(ds, "FilterMaterial").replace(",", "\\").split("\\") if s.strip()]
        lows, highs = _values(ds, "FilterThicknessMinimum"), _values(ds, "FilterThicknessMaximum")
        coded = quirk.filter_in_type(text(ds, "FilterType")) if not materials else None
        if coded is not None:
            self.quirks.append(quirk.SIEMENS_FILTER_TYPE.name)
            materials, lows, highs, ftype = [coded[0]], [coded[1]], [coded[1]], FILTER_TYPES["FLAT"]
        if not materials:
            return (XRayFilter(type=ftype),) if ftype is not None and ftype.code == "111609" else ()
        out = []
        for n, name in enumerate(materials):
            low, high = _at(lows, n), _at(highs, n)
            if low is not None and high is not None and low > high:
                low, high = high, low
                self.quirks.append(quirk.FILTER_THICKNESS_SWAPPED.name)
            out.append(
                XRayFilter(
                    type=ftype,
                    material=MATERIALS.get(name) or Concept("99DACS", name, name.title()),
                    thickness_min=normalise(low, "mm") if low is not None else None,
                    thickness_max=normalise(high, "mm") if high is not None else None,
                )
            )
        return tuple(out)

    # -- radiopharmaceutical (TID 10022 layout)
    def activity(self, item: Dataset) -> Optional[Quantity]:
        """Radionuclide Total Dose: MBq in NM images (C.8.4.10), Bq in PET images (C.8.9.2)."""
        raw = _raw(item, "RadionuclideTotalDose")
        try:
            value = parse_decimal(raw) if raw is not None else None
        except UnitError:
            return None
        if value is None or value <= 0:
            return None
        unit, repaired = quirk.activity_unit(text(self.ds, "SOPClassUID"), value)
        if repaired:
            self.quirks.append(quirk.ACTIVITY_UNIT_MISMATCH.name)
        return normalise(value, unit)

    def administrations(self) -> tuple[RadiopharmaceuticalAdministration, ...]:
        ds = self.ds
        out = []
        for item in ds.get("RadiopharmaceuticalInformationSequence") or ():
            activity = self.activity(item)
            if activity is None:
                continue
            started = _rp_time(ds, item, "RadiopharmaceuticalStartDateTime", "RadiopharmaceuticalStartTime")
            ended = _rp_time(ds, item, "RadiopharmaceuticalStopDateTime", "RadiopharmaceuticalStopTime")
            agent = _code(item.get("RadiopharmaceuticalCodeSequence"))
            nuclide = _code(item.get("RadionuclideCodeSequence"))
            # every image of the study repeats the injection: identify it by content, not by image
            uid = derived_uid(text(ds, "StudyInstanceUID"), "administration", started.isoformat() if started else "", str(activity.value), nuclide.code if nuclide else "")
            out.append(
                RadiopharmaceuticalAdministration(
                    uid=uid,
                    agent=agent,
                    agent_text=text(item, "Radiopharmaceutical"),
                    radionuclide=nuclide,
                    half_life=self.quantity(item, "RadionuclideHalfLife", "s"),
                    started=started,
                    ended=ended,
                    route=_code(item.get("AdministrationRouteCodeSequence")),
                    activity=activity,
                )
            )
        return tuple(out)


def _rp_time(ds: Dataset, item: Dataset, dt_keyword: str, tm_keyword: str):
    """Radiopharmaceutical start/stop: the DT attribute, else Study Date plus the TM attribute."""
    if _has(item, dt_keyword):
        return parse_datetime(item.get(dt_keyword))
    if _has(item, tm_keyword):
        return parse_datetime(ds.get("StudyDate"), item.get(tm_keyword))
    return None


def _adder(items: list[Measurement]):
    def add(code: str, meaning: str, q: Optional[Quantity]) -> None:
        if q is not None:
            items.append(Measurement(Concept("DCM", code, meaning), q))

    return add


def _code(seq) -> Optional[Concept]:
    """The first item of a Code Sequence macro (PS3.3 8.8) as a Concept."""
    if not seq:
        return None
    item = seq[0]
    code = text(item, "CodeValue") or text(item, "LongCodeValue") or text(item, "URNCodeValue")
    if not code:
        return None
    return Concept(text(item, "CodingSchemeDesignator"), code, text(item, "CodeMeaning"))


def _meaning(seq) -> str:
    code = _code(seq)
    return code.meaning if code is not None else ""


def _lenient_text(ds: Dataset, keyword: str) -> str:
    """A string attribute even when its value breaks its VR (e.g. '0.1,1.0' in a DS)."""
    try:
        return text(ds, keyword)
    except (ValueError, TypeError):
        value = ds.get_item(keyword).value
        return (value.decode("latin-1") if isinstance(value, bytes) else str(value)).strip(" \x00")


def _values(ds: Dataset, keyword: str) -> list:
    raw = _lenient_text(ds, keyword)
    out = []
    for part in raw.replace(",", "\\").split("\\"):
        try:
            out.append(parse_decimal(part))
        except UnitError:
            out.append(None)
    return out if raw else []


def _at(values: list, n: int):
    return values[n] if n < len(values) else (values[-1] if len(values) == 1 else None)
