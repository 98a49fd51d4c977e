"""Named fixes for vendor deviations in the dose attributes of image headers.

Each fix names the vendor/model it was seen on and is applied by
:mod:`.dicom_image`, which records the fix's name in ``DoseReport.quirks``. They are
registered in the same :data:`.quirks.QUIRKS` list as the SR fixes.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Optional

from pydicom.dataset import Dataset

from ..domain import Device
from .quirks import QUIRKS, Quirk

PHILIPS_PRIVATE_DLP = Quirk(
    "philips-dose-info-private-dlp",
    "Philips Brilliance 16P CT 'DOSE_INFO' Secondary Capture",
    "DLP per acquisition and in total only in private (00E1,1021) of creator ELSCINT1",
)
KODAK_SID_DECIMETRES = Quirk(
    "kodak-dr7500-sid-decimetres",
    "KODAK / Carestream DR 7500 CR images",
    "Distance Source to Detector (0018,1110) coded in dm (11.5), not mm: multiplied by 100",
)
FILTER_THICKNESS_SWAPPED = Quirk(
    "filter-thickness-swapped",
    "KODAK DR 7500 CR images",
    "Filter Thickness Minimum (0018,7052) larger than Maximum (0018,7054): the two are swapped",
)
ENTRANCE_DOSE_ZERO = Quirk(
    "entrance-dose-zero-placeholder",
    "GE Senographe DS, Hologic Selenia Dimensions MG images",
    "Entrance Dose (0040,0302, dGy, US) coded 0 beside Entrance Dose in mGy (0040,8302): the 0 is ignored",
)

ACTIVITY_UNIT_MISMATCH = Quirk(
    "radionuclide-total-dose-unit",
    "guard, not yet seen in the corpus: NM and PET images code (0018,1074) in different units",
    "NM Isotope (C.8.4.10) codes MBq and PET Isotope (C.8.9.2) Bq; a value only plausible in the other unit "
    "(>= 1e5 'MBq', < 1e5 'Bq') is read in that unit",
)

SIEMENS_FILTER_TYPE = Quirk(
    "siemens-filter-in-filter-type",
    "Siemens DX images (Filter Type 'CU_0.1_MM' … without Filter Material; listed by OpenREM)",
    "copper filtration read from the Filter Type string as material and thickness",
)

IMAGE_QUIRKS = (SIEMENS_FILTER_TYPE, PHILIPS_PRIVATE_DLP, KODAK_SID_DECIMETRES, FILTER_THICKNESS_SWAPPED, ENTRANCE_DOSE_ZERO, ACTIVITY_UNIT_MISMATCH)
QUIRKS.update((q.name, q) for q in IMAGE_QUIRKS)

_ELSCINT = "ELSCINT1"
_PHILIPS_DLP_GROUP, _PHILIPS_DLP_OFFSET = 0x00E1, 0x21


def philips_private_dlp(ds: Dataset) -> Optional[str]:
    """DLP (mGy.cm) of a Philips dose-info object or one of its Exposure Dose Sequence items, or None."""
    try:
        elem = ds.private_block(_PHILIPS_DLP_GROUP, _ELSCINT)[_PHILIPS_DLP_OFFSET]
    except (KeyError, ValueError):
        return None
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    value = str(value if value is not None else "").strip()
    return value or None


def sid_in_decimetres(device: Device, value: Decimal) -> bool:
    """True for a KODAK/Carestream DR 7500 SID coded in dm (no radiographic SID is under 100 mm)."""
    maker = device.manufacturer.lower()
    return ("kodak" in maker or "carestream" in maker) and "dr 7500" in device.model.lower() and value < 100


NM_IMAGE_CLASSES = frozenset(("1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.5"))  # NM, NM (retired)
# Administered activities lie between ~1 MBq and ~1e4 MBq, i.e. 1e6..1e10 Bq: the ranges do not meet.
_ACTIVITY_SPLIT = Decimal(100000)


def activity_unit(sop_class: str, value: Decimal) -> tuple[str, bool]:
    """The unit of Radionuclide Total Dose for this IOD, and whether the value forced the other unit."""
    unit = "MBq" if sop_class in NM_IMAGE_CLASSES else "Bq"
    plausible = "Bq" if value >= _ACTIVITY_SPLIT else "MBq"
    return plausible, plausible != unit


_FILTER_IN_TYPE = re.compile(r"^(CU|AL|MO|RH|AG)_(\d+(?:\.\d+)?)_?MM$")
_ELEMENTS = {"CU": "COPPER", "AL": "ALUMINUM", "MO": "MOLYBDENUM", "RH": "RHODIUM", "AG": "SILVER"}


def filter_in_type(filter_type: str) -> Optional[tuple[str, Decimal]]:
    """(material defined term, thickness in mm) coded in a Siemens Filter Type such as 'CU_0.1_MM'."""
    m = _FILTER_IN_TYPE.match(filter_type.strip().upper())
    return (_ELEMENTS[m.group(1)], Decimal(m.group(2))) if m else None
