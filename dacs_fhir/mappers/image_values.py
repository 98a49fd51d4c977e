"""Value readers of image-header dose attributes, and the per-image state the modality readers share.

Attribute values are read leniently (a value that breaks its VR is taken as written; a malformed
number in an optional attribute is skipped, not fatal) and normalised to canonical UCUM units.
One :class:`ImageHeader` per image carries the dataset, its device and the named quirk fixes
applied (they end up in ``DoseReport.quirks``).
"""
from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Optional

from pydicom.dataset import Dataset

from ..domain import Concept, Device, Measurement, Quantity
from ..units import UnitError, normalise, parse_decimal
from .dicom_header import device_from, parse_datetime, text


def derived_uid(*parts: str) -> str:
    """A deterministic UID (PS3.5 B.2, 2.25 + UUID v5) for an item the header does not identify."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(parts)).int)


def has(ds: Dataset, keyword: str) -> bool:
    """True when the attribute is present with a non-empty value."""
    value = ds.get(keyword)
    return value is not None and value != "" and value != b""


def positive(ds: Dataset, keyword: str) -> bool:
    """True when the attribute holds a number above zero."""
    try:
        return has(ds, keyword) and float(ds.get(keyword)) > 0
    except (TypeError, ValueError):
        return False


def raw(ds: Dataset, keyword: str) -> Optional[str]:
    """The first value of an attribute as stripped text, or None; a value that breaks its VR as written."""
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


def lenient_quantity(value: Optional[str], unit: str) -> Optional[Quantity]:
    """A number in ``unit`` normalised to canonical units; None when absent or malformed."""
    if value is None:
        return None
    try:
        return normalise(value, unit)
    except UnitError:
        return None  # a malformed number in an optional attribute is not worth rejecting the image


def lenient_text(ds: Dataset, keyword: str) -> str:
    """A string attribute even when its value breaks its VR (e.g. '0.1,1.0' in a DS)."""
    try:
        return text(ds, keyword)
    except (ValueError, TypeError):
        value = ds.get_item(keyword).value
        return (value.decode("latin-1") if isinstance(value, bytes) else str(value)).strip(" \x00")


def decimals(ds: Dataset, keyword: str) -> list:
    """Every value of a multi-valued number attribute ('\\' or ',' separated), None where malformed."""
    text_value = lenient_text(ds, keyword)
    out: list[Optional[Decimal]] = []
    for part in text_value.replace(",", "\\").split("\\"):
        try:
            out.append(parse_decimal(part))
        except UnitError:
            out.append(None)
    return out if text_value else []


def nth(values: list, n: int):
    """The n-th value; a single value stands for all."""
    return values[n] if n < len(values) else (values[-1] if len(values) == 1 else None)


def code(seq) -> Optional[Concept]:
    """The first item of a Code Sequence macro (PS3.3 8.8) as a Concept."""
    if not seq:
        return None
    item = seq[0]
    value = text(item, "CodeValue") or text(item, "LongCodeValue") or text(item, "URNCodeValue")
    if not value:
        return None
    return Concept(text(item, "CodingSchemeDesignator"), value, text(item, "CodeMeaning"))


def meaning(seq) -> str:
    """Code Meaning of the first item of a Code Sequence, or ''."""
    concept = code(seq)
    return concept.meaning if concept is not None else ""


def adder(items: list[Measurement]):
    """A function appending a DCM-coded measurement to ``items`` when its quantity is not None."""
    def add(code_value: str, meaning_text: str, q: Optional[Quantity]) -> None:
        if q is not None:
            items.append(Measurement(Concept("DCM", code_value, meaning_text), q))

    return add


class ImageHeader:
    """Reads the dose attributes of one image, collecting the quirk fixes it applies."""

    def __init__(self, ds: Dataset):
        self.ds = ds
        self.device: Device = device_from(ds)
        self.quirks: list[str] = []

    def quantity(self, ds: Dataset, keyword: str, unit: str) -> Optional[Quantity]:
        """The attribute of ``ds`` (this image or one of its items) in canonical units, or None."""
        return lenient_quantity(raw(ds, keyword), unit)

    def first(self, ds: Dataset, *options: tuple[str, str]) -> Optional[Quantity]:
        """The first present of several (keyword, unit) alternatives, e.g. uA before mA."""
        for keyword, unit in options:
            q = self.quantity(ds, keyword, unit)
            if q is not None:
                return q
        return None

    def event_uid(self, sop_uid: str) -> str:
        """(0008,3010) Irradiation Event UID; else one per acquisition of a series, else per image."""
        ds = self.ds
        uid = raw(ds, "IrradiationEventUID")
        if uid:
            return uid
        series, acquisition = text(ds, "SeriesInstanceUID"), raw(ds, "AcquisitionNumber")
        # every slice of a CT series carries the CTDIvol of its acquisition: one event, not one per slice
        if text(ds, "Modality").upper() == "CT" and series and acquisition:
            return derived_uid(series, "acquisition", acquisition)
        return derived_uid(sop_uid)

    def acquired(self):
        """Acquisition date/time of the image, else its content date/time."""
        ds = self.ds
        return (
            parse_datetime(ds.get("AcquisitionDateTime"))
            or parse_datetime(ds.get("AcquisitionDate"), ds.get("AcquisitionTime", ""))
            or parse_datetime(ds.get("ContentDate"), ds.get("ContentTime", ""))
        )
