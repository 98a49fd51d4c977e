"""Entry point of DICOM mapping: any DICOM object in, one :class:`DoseReport` out.

Dispatches on what the object is: a dose SR (PS3.16 TID 10001 / 10011 / 10021 /
10030, or a known private dose SR) goes to :mod:`.dicom_sr`; an image whose
header carries dose attributes goes to :mod:`.dicom_image`; anything else is a
:class:`NotADoseObject`.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Union

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..domain import DoseReport
from ..errors import CorruptObject, DacsError, NotADoseObject

Source = Union[str, Path, bytes, BinaryIO, Dataset]

# Pixel data and big image payloads are never needed for dose mapping.
_STOP_BEFORE = (0x7FE0, 0x0010)


def read_dataset(source: Source) -> Dataset:
    """Read a DICOM object without its pixel data; raises :class:`CorruptObject`."""
    from .dicom_fast import fast_read

    if isinstance(source, Dataset):
        return source
    if isinstance(source, (str, Path)):
        source = Path(source).read_bytes()  # FileNotFoundError is the caller's
    elif hasattr(source, "read"):
        source = source.read()
    ds = fast_read(bytes(source))  # sequences left raw; None: pydicom reads it (other syntaxes, odd files)
    if ds is not None:
        return ds
    source = io.BytesIO(bytes(source))
    try:
        return pydicom.dcmread(source, force=False, stop_before_pixels=True)
    except InvalidDicomError:
        # objects without the 128-byte preamble / DICM prefix (older modalities, raw dumps)
        try:
            if hasattr(source, "seek"):
                source.seek(0)
            ds = pydicom.dcmread(source, force=True, stop_before_pixels=True)
        except Exception as exc:
            raise CorruptObject(f"not a DICOM object ({type(exc).__name__})") from None
        if "SOPClassUID" not in ds:
            raise CorruptObject("not a DICOM object (no SOP Class UID)") from None
        return ds
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CorruptObject(f"unreadable DICOM object ({type(exc).__name__}: {str(exc)[:120]})") from None


def parse(source: Source) -> DoseReport:
    """Map one DICOM object to a :class:`DoseReport`.

    Raises :class:`NotADoseObject` or :class:`CorruptObject` (one-line reasons);
    never lets a pydicom exception escape.
    """
    from . import dicom_image, dicom_sr

    ds = read_dataset(source)
    try:
        if dicom_sr.is_sr(ds):
            return dicom_sr.parse_sr(ds)
        return dicom_image.parse_image(ds)
    except DacsError:
        raise
    except Exception as exc:  # a malformed element deep inside the object
        raise CorruptObject(f"malformed dose object ({type(exc).__name__}: {str(exc)[:160]})") from None


__all__ = ["parse", "read_dataset", "NotADoseObject", "CorruptObject"]
