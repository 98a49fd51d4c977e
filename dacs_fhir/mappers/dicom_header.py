"""Patient, study and equipment from a DICOM header (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2, C.7.5.1).

Shared by the SR parser and the image-header parser. Values are read with
``Dataset.get`` once each; DICOM DA/TM/DT strings become ``date``/``datetime``
(tolerating the truncated and malformed forms modalities send).
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Optional

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from ..domain import Device, Patient, PersonName, Quantity, Study
from ..units import UnitError, normalise

# string VRs whose value pydicom gives as str (or a list of str) with no number conversion
_ASCII_TEXT_VRS = frozenset(("AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UI"))
_TAGS: dict[str, Optional[BaseTag]] = {}


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return ""


_DT = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,6}))?(?P<tz>[+-]\d{4})?$"
)


def text(ds: Dataset, keyword: str) -> str:
    """A string attribute, stripped ('' when absent or empty).

    An element still raw (as read, not yet converted by pydicom) of a string VR and plain ASCII
    bytes is read from its bytes: what pydicom's conversion gives for them (PS3.5 6.1.2: ASCII is
    the same in every character set; values split at backslashes), at a tenth of the cost. Header
    attributes are read some forty times per object."""
    tag = _TAGS.get(keyword)
    if tag is None:
        found = tag_for_keyword(keyword)
        tag = _TAGS[keyword] = BaseTag(found) if found is not None else None
    elem = ds._dict.get(tag) if tag is not None else None
    if elem is not None and type(elem) is RawDataElement:
        raw = elem.value
        vr = elem.VR or _dictionary_vr(elem.tag)
        if vr in _ASCII_TEXT_VRS and raw is not None and raw.isascii() and b"\x1b" not in raw:
            if not raw:
                return ""
            return "\\".join(v.strip(" \x00").strip() for v in raw.decode("ascii").split("\\")) if b"\\" in raw \
                else raw.decode("ascii").strip(" \x00").strip()
    return converted_text(ds.get(keyword))


def converted_text(value) -> str:
    """:func:`text` of a value pydicom has converted (str, a MultiValue of them, None)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def parse_date(value) -> Optional[date]:
    """DICOM DA (``YYYYMMDD``, also the ACR-NEMA ``YYYY.MM.DD``) to a date; None when invalid."""
    s = str(value or "").strip().replace(".", "").replace("-", "")
    if len(s) != 8 or not s.isdigit():
        return None
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def parse_datetime(value, tm=None) -> Optional[datetime]:
    """DICOM DT, or DA plus TM, to a datetime (naive unless an offset is coded); None when invalid."""
    s = str(value or "").strip()
    if tm is not None:
        t = str(tm or "").strip().replace(":", "")
        s = s.replace(".", "").replace("-", "") + (t if t else "")
    m = _DT.match(s)
    if not m:
        return None
    g = m.groupdict()
    try:
        frac = g["f"] or ""
        result = datetime(
            int(g["y"]),
            int(g["mo"] or 1),
            int(g["d"] or 1),
            int(g["h"] or 0),
            int(g["mi"] or 0),
            min(int(g["s"] or 0), 59),  # leap second "60"
            int(frac.ljust(6, "0")) if frac else 0,
        )
    except ValueError:
        return None
    if g["tz"]:
        sign = 1 if g["tz"][0] == "+" else -1
        offset = timedelta(hours=int(g["tz"][1:3]), minutes=int(g["tz"][3:5]))
        result = result.replace(tzinfo=timezone(sign * offset))
    return result


def person_name(value) -> PersonName:
    """DICOM PN (``family^given^middle^prefix^suffix``, alphabetic group) to a PersonName."""
    s = str(value or "").split("=")[0].strip()
    if not s:
        return PersonName()
    parts = (s.split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (p.strip() for p in parts)
    return PersonName(
        family=family,
        given=tuple(g for g in (given, middle) if g),
        prefix=prefix,
        suffix=suffix,
    )


def _quantity(ds: Dataset, keyword: str, unit: str) -> Optional[Quantity]:
    value = ds.get(keyword)
    if value in (None, ""):
        return None
    try:
        q = normalise(str(value), unit)
    except UnitError:
        return None
    return q if q.value > 0 else None


def patient_from(ds: Dataset) -> Patient:
    """Patient (C.7.1.1) and Patient Study (C.7.2.2) modules."""
    sex = text(ds, "PatientSex").upper()[:1]
    height = _quantity(ds, "PatientSize", "m")  # PatientSize is in metres
    return Patient(
        id=text(ds, "PatientID"),
        issuer=text(ds, "IssuerOfPatientID"),
        name=person_name(ds.get("PatientName")),
        birth_date=parse_date(ds.get("PatientBirthDate")),
        sex=sex if sex in ("M", "F", "O") else "",
        age=text(ds, "PatientAge"),
        weight=_quantity(ds, "PatientWeight", "kg"),
        height=Quantity(height.value / 1000.0, "m") if height else None,  # normalise() gives mm
    )


def study_from(ds: Dataset, modalities: tuple[str, ...] = ()) -> Study:
    """General Study module (C.7.2.1)."""
    return Study(
        instance_uid=text(ds, "StudyInstanceUID"),
        accession_number=text(ds, "AccessionNumber"),
        accession_issuer=_accession_issuer(ds),
        started=parse_datetime(ds.get("StudyDate"), ds.get("StudyTime", "")),
        description=text(ds, "StudyDescription"),
        referring_physician=person_name(ds.get("ReferringPhysicianName")),
        institution=text(ds, "InstitutionName"),
        modalities=modalities,
    )


def _accession_issuer(ds: Dataset) -> str:
    seq = ds.get("IssuerOfAccessionNumberSequence")
    if seq:
        item = seq[0]
        return text(item, "LocalNamespaceEntityID") or text(item, "UniversalEntityID")
    return ""


def device_from(ds: Dataset) -> Device:
    """General Equipment module (C.7.5.1)."""
    return Device(
        manufacturer=text(ds, "Manufacturer"),
        model=text(ds, "ManufacturerModelName"),
        serial_number=text(ds, "DeviceSerialNumber"),
        station_name=text(ds, "StationName"),
        software_versions=text(ds, "SoftwareVersions"),
        observer_uid=text(ds, "DeviceUID"),
    )
