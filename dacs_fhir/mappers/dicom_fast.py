"""Top-level read of a DICOM Part 10 object that leaves every sequence unparsed (PS3.5 7.1, 7.5).

pydicom parses a sequence of undefined length item by item while reading the file, because only
the parse finds where it ends; many modalities write their SR content tree that way, and a
fluoroscopy RDSR then costs tens of milliseconds to read before any mapping starts. Here such a
sequence is only *skipped* (its delimiters followed, nothing decoded) and kept as raw bytes, like
a sequence of defined length: pydicom decodes it when it is accessed, and the SR tree reader
(:mod:`.sr_raw`) parses the content tree from those bytes itself. The Content Sequence, most of an
SR, is parsed by that reader right away instead of skipped (one pass over its bytes, not two).

Little endian transfer syntaxes only (implicit and explicit VR, and the compressed image syntaxes,
whose data set is explicit VR little endian); anything else is left to ``pydicom.dcmread``.
"""
from __future__ import annotations

import io
from struct import Struct
from typing import Optional

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.tag import Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

_TAG_LEN = Struct("<HHL")  # group, element, 32-bit length (implicit VR; item and delimiter headers)
_TAG_VR = Struct("<HH2s")
_SHORT_LEN = Struct("<H")
_LONG_LEN = Struct("<L")
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"))
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXELS = 0x7FE00008  # Float / Double Float / Pixel Data (7FE0,0008-0010): never needed for dose


class _Malformed(Exception):
    """Bytes this reader does not follow; the caller falls back to pydicom."""


def fast_read(data: bytes) -> Optional[FileDataset]:
    """The object without pixel data, sequences kept raw; None when it is not a little endian Part 10 file."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    fp = io.BytesIO(data)
    try:
        preamble = read_preamble(fp, False)
        file_meta = _read_file_meta_info(fp)
    except Exception:
        return None
    syntax = UID(str(file_meta.get("TransferSyntaxUID", "")))
    if not syntax or syntax in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        return None
    if syntax != ImplicitVRLittleEndian and not (syntax.is_transfer_syntax and syntax.is_little_endian):
        return None
    implicit = syntax == ImplicitVRLittleEndian
    parsed: dict = {}
    try:
        elements = _top_level(data, fp.tell(), implicit, parsed)
    except Exception:  # malformed or cut short (struct.error, _Malformed): pydicom reports it properly
        return None
    dataset = Dataset(elements)
    ds = FileDataset(fp, dataset, preamble, file_meta, implicit, True)
    ds.set_original_encoding(implicit, True, dataset._character_set)
    if parsed:
        object.__setattr__(ds, PARSED, parsed)  # beside pydicom's attributes, not a DICOM keyword
    return ds


# Attribute of a dataset read here: {tag: items} of the top-level sequences already parsed by the
# SR tree reader (sr_raw) while reading, for read_tree to take instead of parsing their bytes again.
PARSED = "_dacs_parsed_sequences"
_CONTENT = 0x0040A730  # Content Sequence (PS3.3 C.17.3): most of an SR, often of undefined length


def parsed_sequences(ds: Dataset) -> dict:
    """The sequences of ``ds`` parsed while it was read (see ``PARSED``); {} for any other dataset."""
    return ds.__dict__.get(PARSED) or {}


def _top_level(buf: bytes, pos: int, implicit: bool, parsed: dict) -> dict:
    """The top-level elements from ``pos``; an undefined-length Content Sequence is parsed into
    ``parsed`` by the SR tree reader, which finds its end as a skip would (one pass, not two)."""
    out = {}
    end = len(buf)
    while pos + 8 <= end:
        if implicit:
            group, element, length = _TAG_LEN.unpack_from(buf, pos)
            vr, header = None, 8
        else:
            group, element, vr_bytes = _TAG_VR.unpack_from(buf, pos)
            if vr_bytes in _LONG_VRS:
                (length,) = _LONG_LEN.unpack_from(buf, pos + 8)
                header = 12
            else:
                (length,) = _SHORT_LEN.unpack_from(buf, pos + 6)
                header = 8
            vr = vr_bytes.decode("ascii")
        tag = group << 16 | element
        if tag >= _PIXELS:
            break
        start = pos + header
        if length == _UNDEFINED:
            if vr not in (None, "SQ"):  # UN of undefined length holds implicit VR items (CP-246): pydicom's
                raise _Malformed(f"undefined length on VR {vr}")
            stop = _content_items(buf, start, implicit, parsed) if tag == _CONTENT else None
            if stop is None:
                stop = _skip_items(buf, start, implicit)  # just past the Sequence Delimitation Item
            value, length, vr = buf[start:stop - 8], stop - 8 - start, "SQ"
            pos = stop
        else:
            pos = start + length
            if pos > end:
                raise _Malformed("value runs past the end")
            value = buf[start:pos]
        out[Tag(tag)] = RawDataElement(Tag(tag), vr, length, value, start, implicit, True)
    return out


def _content_items(buf: bytes, pos: int, implicit: bool, parsed: dict) -> Optional[int]:
    """Parse the Content Sequence's items at ``pos`` into ``parsed``; the position just past its
    Sequence Delimitation Item, or None when the SR reader does not take it (then skipped, and its
    bytes parsed, or refused with the reason, when the tree is read)."""
    from .sr_raw import parse_items_at

    try:
        items, stop = parse_items_at(buf, pos, implicit)
    except Exception:
        return None
    if stop is None:
        return None
    parsed[_CONTENT] = items
    return stop


def _skip_items(buf: bytes, pos: int, implicit: bool) -> int:
    """Position just past the Sequence Delimitation Item of the sequence whose items start at ``pos``."""
    while True:
        group, element, length = _TAG_LEN.unpack_from(buf, pos)
        tag = group << 16 | element
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Malformed("expected an item")
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _skip_elements(buf, pos, implicit)


def _skip_elements(buf: bytes, pos: int, implicit: bool) -> int:
    """Position just past the Item Delimitation Item of an item of undefined length."""
    while True:
        if implicit:
            group, element, length = _TAG_LEN.unpack_from(buf, pos)
            header = 8
        else:
            group, element, vr = _TAG_VR.unpack_from(buf, pos)
            if group == 0xFFFE:  # delimiters carry no VR
                (length,), header = _LONG_LEN.unpack_from(buf, pos + 4), 8
            elif vr in _LONG_VRS:
                (length,), header = _LONG_LEN.unpack_from(buf, pos + 8), 12
            else:
                (length,), header = _SHORT_LEN.unpack_from(buf, pos + 6), 8
        tag = group << 16 | element
        pos += header
        if tag == _ITEM_END:
            return pos
        if length == _UNDEFINED:
            pos = _skip_items(buf, pos, implicit)
        else:
            pos += length
        if pos > len(buf):
            raise _Malformed("value runs past the end")
