"""Radiopharmaceutical administrations from NM / PET image headers, laid out as TID 10022.

PS3.3 C.8.4.10 (NM) / C.8.22.6 (PET) Radiopharmaceutical Information Sequence (0054,0016):
agent, radionuclide, route, start / stop time and Radionuclide Total Dose (MBq in NM, Bq in PET).
"""
from __future__ import annotations

from typing import Optional

from pydicom.dataset import Dataset

from ..domain import Quantity, RadiopharmaceuticalAdministration
from ..units import UnitError, normalise, parse_decimal
from . import image_quirks as quirk
from .dicom_header import parse_datetime, text
from .image_values import ImageHeader, code, derived_uid, has, raw


def administrations(h: ImageHeader) -> tuple[RadiopharmaceuticalAdministration, ...]:
    """One administration per Radiopharmaceutical Information item with a Radionuclide Total Dose."""
    ds = h.ds
    out = []
    for item in ds.get("RadiopharmaceuticalInformationSequence") or ():
        activity = _activity(h, item)
        if activity is None:
            continue
        started = _rp_time(ds, item, "RadiopharmaceuticalStartDateTime", "RadiopharmaceuticalStartTime")
        ended = _rp_time(ds, item, "RadiopharmaceuticalStopDateTime", "RadiopharmaceuticalStopTime")
        agent = code(item.get("RadiopharmaceuticalCodeSequence"))
        nuclide = code(item.get("RadionuclideCodeSequence"))
        # every image of the study repeats the injection: identify it by content, not by image
        uid = derived_uid(text(ds, "StudyInstanceUID"), "administration", started.isoformat() if started else "", str(activity.value), nuclide.code if nuclide else "")
        out.append(
            RadiopharmaceuticalAdministration(
                uid=uid,
                agent=agent,
                agent_text=text(item, "Radiopharmaceutical"),
                radionuclide=nuclide,
                half_life=h.quantity(item, "RadionuclideHalfLife", "s"),
                started=started,
                ended=ended,
                route=code(item.get("AdministrationRouteCodeSequence")),
                activity=activity,
            )
        )
    return tuple(out)


def _activity(h: ImageHeader, item: Dataset) -> Optional[Quantity]:
    """Radionuclide Total Dose: MBq in NM images (C.8.4.10), Bq in PET images (C.8.9.2)."""
    value = raw(item, "RadionuclideTotalDose")
    try:
        number = parse_decimal(value) if value is not None else None
    except UnitError:
        return None
    if number is None or number <= 0:
        return None
    unit, repaired = quirk.activity_unit(text(h.ds, "SOPClassUID"), number)
    if repaired:
        h.quirks.append(quirk.ACTIVITY_UNIT_MISMATCH.name)
    return normalise(number, unit)


def _rp_time(ds: Dataset, item: Dataset, dt_keyword: str, tm_keyword: str):
    """Radiopharmaceutical start/stop: the DT attribute, else Study Date plus the TM attribute."""
    if has(item, dt_keyword):
        return parse_datetime(item.get(dt_keyword))
    if has(item, tm_keyword):
        return parse_datetime(ds.get("StudyDate"), item.get(tm_keyword))
    return None
