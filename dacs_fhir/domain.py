"""Dose domain model: what a dose report says, independent of DICOM and of FHIR.

Mappers go from DICOM to these dataclasses (``mappers/dicom_sr.py``,
``mappers/dicom_image.py``) and from them to FHIR, HL7 v2 and PDF. Every quantity
is a :class:`Quantity` already normalised to the canonical UCUM unit of its
dimension (see ``units.py``): mGy, mGy.cm, mGy.cm2 (DAP), s, mm, kV, mA, uA.s,
MBq, mSv.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Iterable, Optional


@dataclass(frozen=True, slots=True)
class Concept:
    """A coded concept: coding scheme designator (DCM, SCT, SRT, LN, 99XYZ …), code, meaning."""

    scheme: str
    code: str
    meaning: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.scheme, self.code)

    def __eq__(self, other: object) -> bool:  # meaning is display text, never identity
        return isinstance(other, Concept) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def same_code(a: str, b: str) -> bool:
    """True for equal codes, or the SNOMED RT and SNOMED CT forms of one concept (PS3.16 Annex O)."""
    from .codes import SCT_TO_SRT, SRT_TO_SCT

    return a == b or SRT_TO_SCT.get(a) == b or SCT_TO_SRT.get(a) == b


@dataclass(frozen=True, slots=True)
class Quantity:
    """A value in a canonical UCUM unit (``unit`` is the UCUM code)."""

    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class Measurement:
    """One numeric content item (DICOM NUM) keyed by its concept.

    ``qualifier`` carries the concept modifier that scopes the value, e.g. the
    laterality of a mammography AGD (TID 10005) or the organ of an organ dose.
    """

    concept: Concept
    quantity: Quantity
    qualifier: Optional[Concept] = None


class Measured:
    """Mixin for containers that hold measurements by concept code."""

    __slots__ = ()
    measurements: tuple[Measurement, ...]

    def get(self, code: str, scheme: str = "DCM", qualifier: Optional[str] = None) -> Optional[Quantity]:
        """The first quantity of concept ``scheme:code`` (optionally with a qualifier code)."""
        for m in self.measurements:
            if m.concept.code == code and m.concept.scheme == scheme:
                if qualifier is None or (m.qualifier is not None and same_code(m.qualifier.code, qualifier)):
                    return m.quantity
        return None

    def all(self, code: str, scheme: str = "DCM") -> list[Measurement]:
        return [m for m in self.measurements if m.concept.code == code and m.concept.scheme == scheme]


@dataclass(frozen=True, slots=True)
class PersonName:
    family: str = ""
    given: tuple[str, ...] = ()
    prefix: str = ""
    suffix: str = ""

    @property
    def text(self) -> str:
        return " ".join(p for p in (self.prefix, *self.given, self.family, self.suffix) if p)

    def __bool__(self) -> bool:
        return bool(self.family or self.given)


@dataclass(frozen=True, slots=True)
class Patient:
    """Patient module (PS3.3 C.7.1.1) and Patient Study module (C.7.2.2) values."""

    id: str = ""
    issuer: str = ""
    name: PersonName = field(default_factory=PersonName)
    birth_date: Optional[date] = None
    sex: str = ""  # DICOM code: M, F, O or ""
    age: str = ""  # DICOM AS, e.g. "067Y"
    weight: Optional[Quantity] = None  # kg
    height: Optional[Quantity] = None  # m


@dataclass(frozen=True, slots=True)
class Study:
    instance_uid: str
    accession_number: str = ""
    accession_issuer: str = ""
    started: Optional[datetime] = None
    description: str = ""
    referring_physician: PersonName = field(default_factory=PersonName)
    institution: str = ""
    modalities: tuple[str, ...] = ()  # modalities of the imaging, not "SR"
    procedure_code: Optional[Concept] = None


@dataclass(frozen=True, slots=True)
class Device:
    """The irradiating device (DICOM General Equipment / TID 1004 Device Observer)."""

    manufacturer: str = ""
    model: str = ""
    serial_number: str = ""
    station_name: str = ""
    observer_uid: str = ""
    software_versions: str = ""
    name: str = ""

    @property
    def key(self) -> str:
        """Stable identity: the Device Observer UID, else manufacturer/model/serial/station."""
        return self.observer_uid or "|".join((self.manufacturer, self.model, self.serial_number, self.station_name))


@dataclass(frozen=True, slots=True)
class Person:
    """Person participant (TID 1020), e.g. Irradiation Authorizing (DCM 113850)."""

    name: PersonName
    role: Optional[Concept] = None
    id: str = ""
    organization: str = ""


@dataclass(frozen=True, slots=True)
class XRayFilter:
    """TID 10003 X-Ray Filters (113771)."""

    type: Optional[Concept] = None
    material: Optional[Concept] = None
    thickness_min: Optional[Quantity] = None
    thickness_max: Optional[Quantity] = None


@dataclass(frozen=True, slots=True)
class XRaySource(Measured):
    """TID 10013 CT X-Ray Source Parameters (113831)."""

    identification: str = ""
    measurements: tuple[Measurement, ...] = ()


@dataclass(frozen=True, slots=True)
class DoseCheck(Measured):
    """TID 10015 CT Dose Check Details: alert (113900) and notification (113908) values."""

    dlp_alert_configured: Optional[bool] = None
    ctdivol_alert_configured: Optional[bool] = None
    dlp_notification_configured: Optional[bool] = None
    ctdivol_notification_configured: Optional[bool] = None
    measurements: tuple[Measurement, ...] = ()
    reasons: tuple[str, ...] = ()
    persons: tuple[Person, ...] = ()


@dataclass(frozen=True, slots=True)
class IrradiationEvent(Measured):
    """One irradiation event: TID 10013 CT Acquisition or TID 10003 Irradiation Event X-Ray Data."""

    uid: str
    kind: str  # "CT" | "PROJECTION"
    started: Optional[datetime] = None
    plane: Optional[Concept] = None  # 113764 Acquisition Plane
    event_type: Optional[Concept] = None  # 113721 Irradiation Event Type / 113820 CT Acquisition Type
    protocol: str = ""  # 125203 Acquisition Protocol
    target_region: Optional[Concept] = None  # 123014
    laterality: Optional[Concept] = None  # G-C171 / 272741003
    phantom: Optional[Concept] = None  # 113835 CTDIw Phantom Type
    reference_point_definition: str = ""
    fluoro_mode: Optional[Concept] = None
    procedure_context: Optional[Concept] = None
    comment: str = ""
    measurements: tuple[Measurement, ...] = ()
    filters: tuple[XRayFilter, ...] = ()
    sources: tuple[XRaySource, ...] = ()
    dose_check: Optional[DoseCheck] = None
    codes: tuple[tuple[Concept, Concept], ...] = ()  # other CODE items: (concept, value)


@dataclass(frozen=True, slots=True)
class AccumulatedDose(Measured):
    """TID 10012 CT Accumulated Dose Data, or TID 10002 Accumulated X-Ray Dose (one per plane)."""

    plane: Optional[Concept] = None
    reference_point_definition: str = ""
    measurements: tuple[Measurement, ...] = ()


@dataclass(frozen=True, slots=True)
class OrganDose:
    """TID 10023 Organ Dose (radiopharmaceutical) or image-header organ dose."""

    organ: Optional[Concept]
    dose: Quantity
    laterality: Optional[Concept] = None
    mass: Optional[Quantity] = None
    method: str = ""
    reference_authority: str = ""


@dataclass(frozen=True, slots=True)
class RadiopharmaceuticalAdministration(Measured):
    """TID 10022 Radiopharmaceutical Administration."""

    uid: str = ""  # 113503 Radiopharmaceutical Administration Event UID
    agent: Optional[Concept] = None
    agent_text: str = ""
    radionuclide: Optional[Concept] = None
    half_life: Optional[Quantity] = None
    started: Optional[datetime] = None
    ended: Optional[datetime] = None
    route: Optional[Concept] = None
    site: Optional[Concept] = None
    activity: Optional[Quantity] = None  # 113507 Administered activity, MBq
    effective_dose: Optional[Quantity] = None  # 113839, mSv
    organ_doses: tuple[OrganDose, ...] = ()
    persons: tuple[Person, ...] = ()
    measurements: tuple[Measurement, ...] = ()


# Report kinds
CT = "CT"
PROJECTION = "PROJECTION"  # TID 10001: XA, RF, DX, CR, MG, PX
RADIOPHARMACEUTICAL = "RADIOPHARMACEUTICAL"

# Report sources
SOURCE_RDSR = "RDSR"  # a dose SR following the PS3.16 templates
SOURCE_PRIVATE_SR = "PRIVATE_SR"  # a dose SR with private/non-template content
SOURCE_IMAGE = "IMAGE_HEADER"  # dose attributes of image headers


@dataclass(frozen=True, slots=True)
class DoseReport(Measured):
    """One dose report: an RDSR, or the dose attributes of one or more images of a study."""

    sop_instance_uid: str
    sop_class_uid: str
    kind: str  # CT | PROJECTION | RADIOPHARMACEUTICAL
    source: str  # RDSR | PRIVATE_SR | IMAGE_HEADER
    study: Study
    patient: Patient = field(default_factory=Patient)
    device: Device = field(default_factory=Device)
    modality: str = ""  # modality of the imaging (CT, XA, RF, DX, MG, NM, PT …)
    template: str = ""  # PS3.16 TID of the root, when known
    procedure_reported: Optional[Concept] = None  # 121058
    intent: Optional[Concept] = None  # G-C0E8 Has Intent
    started: Optional[datetime] = None  # 113809 Start of X-Ray Irradiation
    ended: Optional[datetime] = None  # 113810 End of X-Ray Irradiation
    content_datetime: Optional[datetime] = None
    scope: Optional[Concept] = None  # 113705 Scope of Accumulation
    source_of_dose_information: tuple[Concept, ...] = ()  # 113854
    persons: tuple[Person, ...] = ()
    accumulated: tuple[AccumulatedDose, ...] = ()
    events: tuple[IrradiationEvent, ...] = ()
    administrations: tuple[RadiopharmaceuticalAdministration, ...] = ()
    measurements: tuple[Measurement, ...] = ()  # report-level items outside containers (private SRs)
    source_instances: tuple[str, ...] = ()  # SOP Instance UIDs this report was built from
    quirks: tuple[str, ...] = ()  # names of quirk fixes applied

    def total(self, code: str, scheme: str = "DCM", qualifier: Optional[str] = None) -> Optional[Quantity]:
        """A study total: summed over accumulated containers (planes), else report-level items."""
        found = [q for a in self.accumulated if (q := a.get(code, scheme, qualifier)) is not None]
        if not found:
            return self.get(code, scheme, qualifier)
        return Quantity(_exact_sum(q.value for q in found), found[0].unit)

    def with_(self, **changes) -> "DoseReport":
        return replace(self, **changes)


def _exact_sum(values: Iterable[float]) -> float:
    from decimal import Decimal

    return float(sum((Decimal(repr(v)) for v in values), Decimal(0)))
