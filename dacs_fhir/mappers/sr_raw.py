"""Raw reader of sequence values (PS3.5 7.5 Nesting of Data Sets) for the SR content tree.

Turns the bytes of a sequence element, as pydicom keeps them unparsed, into
``{tag: bytes | items}`` dicts without converting any value: the content tree
needs a few attributes of each item, which :mod:`.sr_tree` decodes on demand.
Each distinct element header is decoded once per process, and each distinct small
sequence (concept names, units, measured values recur byte for byte in every
irradiation event) is parsed once per document.
"""
from __future__ import annotations

from struct import Struct, error as StructError
from typing import Optional, Union

# Sequences of an SR content tree (PS3.6): in implicit VR the raw bytes do not say which elements are
# sequences. Concept Name Code, Concept Code, Content, Measured Value, Measurement Units Code, Numeric Value
# Qualifier Code, Content Template, Referenced SOP, Referenced Request, Current Requested Procedure Evidence,
# Pertinent Other Evidence, Coding Scheme Identification.
SEQUENCE_TAGS = frozenset((0x0040A043, 0x0040A168, 0x0040A730, 0x0040A300, 0x004008EA, 0x0040A301, 0x0040A504,
                           0x00081199, 0x0040A370, 0x0040A375, 0x0040A385, 0x00080220))
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"))
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


# A parsed sequence value: its only item itself, else a tuple of items. Most content-tree sequences hold
# one item; a tree of fewer (and immutable) containers keeps the garbage collector's passes over it short.
RawItems = Union[dict, tuple]


class RawFormatError(ValueError):
    """Sequence bytes that do not follow PS3.5 encoding."""


def parse_sequence(value: bytes, implicit: bool, little: bool) -> RawItems:
    """The items of one sequence value as ``{tag: bytes | RawItems}`` dicts, element values left undecoded.

    Raises :class:`RawFormatError` (or ``struct.error`` for cut-short bytes) when the bytes are malformed.
    """
    items, _ = _parse_items(value, 0, len(value), implicit, little, {})
    return items


def parse_items_at(buf: bytes, pos: int, implicit: bool) -> tuple[RawItems, Optional[int]]:
    """The items of a little endian sequence of undefined length whose first item is at ``pos`` of a
    whole data set ``buf``, and the position just past its Sequence Delimitation Item (None when the
    bytes end before it). The same items as :func:`parse_sequence` of the value's bytes."""
    items, after = _parse_items(buf, pos, len(buf), implicit, True, {})
    # the parse stops just past the delimiter, or where fewer than 8 bytes are left (an item of
    # undefined length cut short fails before that)
    delimited = after - 8 >= pos and buf[after - 8:after] == _SEQ_END_LE
    return items, after if delimited else None


_SEQ_END_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0


def _parse_items(buf: bytes, pos: int, end: int, implicit: bool, little: bool, seen: dict) -> tuple[RawItems, int]:
    """Items of a sequence value (PS3.5 7.5) as ``{tag: bytes | RawItems}`` dicts; returns (items, end position).

    ``seen`` holds the sequences parsed so far in the document (see :func:`_parse_sequence`).
    """
    head = _HEAD[little].unpack_from
    items: list[dict] = []
    while pos + 8 <= end:
        group, element, length = head(buf, pos)
        pos += 8
        tag = group << 16 | element
        if tag == _SEQ_END:
            break
        if tag != _ITEM:
            raise RawFormatError(f"expected an item tag at byte {pos - 8}")
        if length == _UNDEFINED:
            item, pos = _parse_dataset(buf, pos, end, implicit, little, True, seen)
        else:
            item, _ = _parse_dataset(buf, pos, pos + length, implicit, little, False, seen)
            pos += length
        items.append(item)
    return (items[0] if len(items) == 1 else tuple(items)), pos


_HEAD = {True: Struct("<HHI"), False: Struct(">HHI")}  # tag + 32-bit length (implicit VR, items)
_EXPLICIT = {True: Struct("<HH2sH"), False: Struct(">HH2sH")}  # tag + VR + 16-bit length
_LONG = {True: Struct("<I"), False: Struct(">I")}

# What an 8-byte element header means, per (implicit, little) encoding. Headers repeat all through a content
# tree (same tag, VR and length), so each is decoded once: plain values to (tag, length) in _VALUES, the
# rest (sequences, 32-bit lengths, item ends) to (tag, action, length, sub_implicit, sub_little) in _OTHERS.
_SEQUENCE, _LONG_VALUE, _LONG_SEQUENCE, _END = range(4)
_ENCODINGS = [(i, le) for i in (True, False) for le in (True, False)]
_VALUES: dict[tuple[bool, bool], dict[bytes, tuple[int, int]]] = {e: {} for e in _ENCODINGS}
_OTHERS: dict[tuple[bool, bool], dict[bytes, tuple]] = {e: {} for e in _ENCODINGS}
_HEADERS_MAX = 8192


def _learn(key: bytes, implicit: bool, little: bool) -> None:
    """Decode one element header (PS3.5 7.1.2 explicit, 7.1.3 implicit VR) into _VALUES or _OTHERS."""
    values, others = _VALUES[implicit, little], _OTHERS[implicit, little]
    if len(values) + len(others) >= _HEADERS_MAX:
        values.clear()
        others.clear()
    if implicit:
        group, element, length = _HEAD[little].unpack(key)
        tag = group << 16 | element
        if tag == _ITEM_END:
            others[key] = (tag, _END, 0, True, True)
        elif tag in SEQUENCE_TAGS or length == _UNDEFINED:
            others[key] = (tag, _SEQUENCE, length, True, True)
        else:
            values[key] = (tag, length)
        return
    group, element, vr, length = _EXPLICIT[little].unpack(key)
    tag = group << 16 | element
    if tag == _ITEM_END:
        others[key] = (tag, _END, 0, False, little)
    elif vr in _LONG_VRS:  # 32-bit length in the next 4 bytes
        # UN with undefined length holds an implicit VR little endian sequence (PS3.5 6.2.2)
        sub_implicit = vr == b"UN"
        others[key] = (tag, _LONG_SEQUENCE if vr == b"SQ" else _LONG_VALUE, 0, sub_implicit, sub_implicit or little)
    else:
        values[key] = (tag, length)


def _parse_dataset(buf: bytes, pos: int, end: int, implicit: bool, little: bool, delimited: bool,
                   seen: dict) -> tuple[dict, int]:
    """Elements of one item, without any value conversion."""
    values = _VALUES[implicit, little]
    out: dict = {}
    last = end - 8
    while pos <= last:
        plain = values.get(buf[pos:pos + 8])
        if plain is not None:
            tag, length = plain
            start = pos + 8
            pos = start + length
            if pos > end:
                raise RawFormatError("element value runs past the end of its item")
            out[tag] = buf[start:pos]
            continue
        key = buf[pos:pos + 8]
        other = _OTHERS[implicit, little].get(key)
        if other is None:
            if len(key) < 8:  # truncated value: fail as struct does
                (_HEAD if implicit else _EXPLICIT)[little].unpack_from(buf, pos)
            _learn(key, implicit, little)
            continue
        tag, action, length, sub_implicit, sub_little = other
        if action == _END:
            return out, pos + 8
        if action == _SEQUENCE:
            pos += 8
        else:
            length = _LONG[little].unpack_from(buf, pos + 8)[0]
            pos += 12
            if action == _LONG_VALUE and length != _UNDEFINED:
                if pos + length > end:
                    raise RawFormatError("element value runs past the end of its item")
                out[tag] = buf[pos:pos + length]
                pos += length
                continue
        out[tag], pos = _parse_sequence(buf, pos, end, length, sub_implicit, sub_little, seen)
    if delimited:
        raise RawFormatError("item without delimiter")
    return out, pos


# Concept names, units, measured values: the same small sequences recur all through a document, byte for
# byte. The items parsed from given bytes are a function of those bytes alone, so a repeat reuses them.
_REUSE_MAX = 1024  # bytes of a sequence value worth remembering
_REUSE_PROBE = 32  # bytes telling apart the candidates for an undefined-length sequence
_REUSE_CANDIDATES = 8


def _parse_sequence(buf: bytes, pos: int, end: int, length: int, implicit: bool, little: bool,
                    seen: dict) -> tuple[RawItems, int]:
    """A sequence value at ``pos`` of ``length`` bytes, or of undefined length within ``end`` (PS3.5 7.5.2).

    Returns (items, end position); ``seen`` maps the bytes of sequences parsed before to their items.
    """
    if length != _UNDEFINED:
        # the parser may read a 32-bit length up to 4 bytes past a defined length: those bytes count too
        key = (implicit, little, length, buf[pos:pos + length + 4]) if length <= _REUSE_MAX else None
        if key is not None and len(key[3]) == length + 4:
            items = seen.get(key)
            if items is not None:
                return items, pos + length
            try:  # the value on its own: what parses there reads nothing outside these bytes
                items, _ = _parse_items(key[3], 0, length, implicit, little, seen)
            except (RawFormatError, StructError):
                pass  # items that overrun the value: parsed in place below, failing as the document makes them
            else:
                seen[key] = items
                return items, pos + length
        items, _ = _parse_items(buf, pos, pos + length, implicit, little, seen)
        return items, pos + length
    probe = (implicit, little, _UNDEFINED, buf[pos:pos + _REUSE_PROBE])
    candidates = seen.get(probe)
    if candidates is not None:
        for raw, items in candidates:
            if buf.startswith(raw, pos) and pos + len(raw) <= end:
                return items, pos + len(raw)
    items, after = _parse_items(buf, pos, end, implicit, little, seen)
    # A sequence that ended at its delimiter read nothing past it (nor failed a bound check): the same bytes
    # anywhere with room for them parse the same. One that ran out of room depends on ``end``: not kept.
    if after + 8 <= end and after - pos <= _REUSE_MAX:
        if candidates is None:
            candidates = seen[probe] = []
        if len(candidates) < _REUSE_CANDIDATES:
            candidates.append((buf[pos:after], items))
    return items, after
