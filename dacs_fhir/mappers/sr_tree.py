"""A lean reader of DICOM SR content trees (PS3.3 C.17.3 SR Document Content module).

Each content item is read once into a :class:`Node` holding its value type,
relationship and concept name code; values are decoded only when the mapping
asks for them. Plain ASCII attributes (CS, UI, DS, DT, SH codes) are taken
straight from the raw bytes pydicom keeps, text attributes are decoded with the
object's Specific Character Set, so a walk costs far less than converting every
element through pydicom.

The raw sequence reader decodes each distinct element header once, and parses
each distinct small sequence (concept names, units, measured values, which recur
byte for byte in every irradiation event) once per document.
"""
from __future__ import annotations

import typing
from struct import unpack_from
from typing import Iterator, Optional

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import PN_DELIMS, TEXT_VR_DELIMS

from ..domain import Concept
from .dicom_fast import parsed_sequences
from .sr_raw import SEQUENCE_TAGS, RawFormatError, parse_sequence  # noqa: F401  (RawFormatError: raised by read_tree)

# PS3.6 tags of the SR Document Content module and the Code Sequence macro
T_VALUE_TYPE = 0x0040A040
T_RELATIONSHIP = 0x0040A010
T_CONCEPT_NAME = 0x0040A043
T_CONCEPT_CODE = 0x0040A168
T_CONTENT = 0x0040A730
T_MEASURED_VALUE = 0x0040A300
T_NUMERIC_VALUE = 0x0040A30A
T_FLOAT_VALUE = 0x0040A161
T_UNITS = 0x004008EA
T_NUMERIC_QUALIFIER = 0x0040A301
T_TEXT_VALUE = 0x0040A160
T_UID = 0x0040A124
T_DATETIME = 0x0040A120
T_DATE = 0x0040A121
T_TIME = 0x0040A122
T_PERSON_NAME = 0x0040A123
T_TEMPLATE = 0x0040A504
T_TEMPLATE_ID = 0x0040DB00
T_CODE_VALUE = 0x00080100
T_SCHEME = 0x00080102
T_MEANING = 0x00080104
T_LONG_CODE_VALUE = 0x00080119
T_URN_CODE_VALUE = 0x00080120
T_CHARSET = 0x00080005

SNOMED_SCHEMES = frozenset(("SRT", "SCT", "SNM3"))


_SQ_TAGS = SEQUENCE_TAGS


def _as_dict(item) -> dict:
    """A content item as ``{tag: bytes | str | list | RawItems}`` from a raw-parsed dict or a pydicom Dataset."""
    if isinstance(item, dict):
        return item
    out: dict = {}
    for tag, elem in item._dict.items():
        value = elem.value
        if isinstance(value, bytes) and (elem.VR == "SQ" or tag in _SQ_TAGS):
            out[tag] = parse_sequence(value, elem.is_implicit_VR, elem.is_little_endian)
        elif isinstance(value, Sequence):
            out[tag] = list(value)
        else:
            out[tag] = value
    return out


def _plain(value):
    """A sequence value as the list of items it stands for (anything else unchanged), for display."""
    if value.__class__ is dict:
        return [value]
    return list(value) if value.__class__ is tuple else value


def _ascii(d: dict, tag: int) -> str:
    """An ASCII-only attribute (CS, UI, DS, DT, DA, TM, SH code), without pydicom conversion."""
    value = d.get(tag)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    value = _plain(value)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _sequence(d: dict, tag: int) -> typing.Sequence[dict]:
    """The items of a sequence attribute as dicts ([] when absent or empty)."""
    value = d.get(tag)
    if value.__class__ is dict:
        return (value,)
    if not value:
        return []
    if not isinstance(value[0], dict):
        value = [_as_dict(v) for v in value]
        d[tag] = value
    return value


class Tree:
    """Decoding context of one SR document: character sets and coding schemes seen."""

    __slots__ = ("encodings", "schemes", "little", "_ascii")

    def __init__(self, ds: Dataset):
        raw = ds.get("SpecificCharacterSet")
        self.encodings = convert_encodings(raw or None)
        self.schemes: set[str] = set()
        self.little = ds.original_encoding[1] is not False
        self._ascii: dict[bytes, str] = {}  # codes, value types, units repeat all through a document

    def ascii(self, d: dict, tag: int) -> str:
        """:func:`_ascii`, decoding each distinct raw value once per document."""
        value = d.get(tag)
        if value.__class__ is not bytes:
            return _ascii(d, tag)
        text = self._ascii.get(value)
        if text is None:
            text = self._ascii[value] = value.decode("latin-1").strip(" \x00")
        return text

    def floating(self, d: dict, tag: int) -> str:
        """First value of an FD attribute as text ('' when absent)."""
        value = d.get(tag)
        if value is None or value == b"":
            return ""
        if isinstance(value, bytes):
            if len(value) < 8:
                return ""
            value = unpack_from("<d" if self.little else ">d", value, 0)[0]
        elif isinstance(value := _plain(value), (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]
        return repr(float(value))

    def text(self, d: dict, tag: int, delimiters=TEXT_VR_DELIMS) -> str:
        """A text attribute (LO, UT …) decoded with the document's character set."""
        value = d.get(tag)
        if value is None:
            return ""
        if isinstance(value, bytes):
            return decode_bytes(value, self.encodings, delimiters).strip(" \x00")
        return str(_plain(value)).strip()

    def code(self, d: dict, meaning: bool = True) -> Optional[Concept]:
        """A Code Sequence macro item as a Concept (None when it has no code value)."""
        value = self.ascii(d, T_CODE_VALUE) or _ascii(d, T_LONG_CODE_VALUE) or _ascii(d, T_URN_CODE_VALUE)
        if not value:
            return None
        scheme = self.ascii(d, T_SCHEME)
        self.schemes.add(scheme)
        return Concept(scheme, value, self.text(d, T_MEANING) if meaning else "")

    def first_code(self, d: dict, tag: int) -> Optional[Concept]:
        items = _sequence(d, tag)
        return self.code(items[0]) if items else None


class Node:
    """One SR content item; ``scheme``/``code`` are its concept name, values are read on demand."""

    __slots__ = ("vt", "rel", "scheme", "code", "children", "_d", "_tree")

    def __init__(self, d: dict, tree: Tree, vt: str, rel: str, scheme: str, code: str,
                 children: typing.Sequence["Node"]):
        self.vt = vt
        self.rel = rel
        self.scheme = scheme
        self.code = code
        self.children = children
        self._d = d
        self._tree = tree

    def __repr__(self) -> str:
        return f"<{self.rel} {self.vt} {self.scheme}:{self.code}>"

    def is_(self, code: str, scheme: str = "DCM") -> bool:
        return self.code == code and self.scheme == scheme

    def is_snomed(self, codes: tuple[str, ...]) -> bool:
        """True when the concept name is either SNOMED form (SRT/SNM3 or SCT) of ``codes``."""
        return self.code in codes and self.scheme in SNOMED_SCHEMES

    @property
    def concept(self) -> Concept:
        """The concept name with its meaning."""
        items = _sequence(self._d, T_CONCEPT_NAME)
        meaning = self._tree.text(items[0], T_MEANING) if items else ""
        return Concept(self.scheme, self.code, meaning)

    @property
    def template(self) -> str:
        """TID of a CONTAINER (Content Template Sequence), '' when not given."""
        items = _sequence(self._d, T_TEMPLATE)
        return _ascii(items[0], T_TEMPLATE_ID) if items else ""

    @property
    def coded(self) -> Optional[Concept]:
        """Value of a CODE item."""
        return self._tree.first_code(self._d, T_CONCEPT_CODE)

    @property
    def text(self) -> str:
        """Value of a TEXT, UIDREF, DATETIME, DATE, TIME, PNAME (or CODE meaning) item as a string."""
        vt = self.vt
        d = self._d
        if vt == "TEXT":
            return self._tree.text(d, T_TEXT_VALUE)
        if vt == "UIDREF":
            return _ascii(d, T_UID)
        if vt == "DATETIME":
            return _ascii(d, T_DATETIME)
        if vt == "DATE":
            return _ascii(d, T_DATE)
        if vt == "TIME":
            return _ascii(d, T_TIME)
        if vt == "PNAME":
            return self.person_name
        if vt == "CODE":
            c = self.coded
            return c.meaning if c else ""
        return ""

    @property
    def person_name(self) -> str:
        """Alphabetic component group of a PNAME value (``family^given…``)."""
        value = self._d.get(T_PERSON_NAME)
        if value is None:
            return ""
        if isinstance(value, bytes):
            return decode_bytes(value.split(b"=")[0], self._tree.encodings, PN_DELIMS).strip(" \x00")
        return str(_plain(value)).split("=")[0].strip()

    @property
    def numeric(self) -> tuple[Optional[str], str, Optional[Concept]]:
        """(numeric value text or None, unit code, Numeric Value Qualifier) of a NUM item."""
        d = self._d
        tree = self._tree
        qualifier = tree.first_code(d, T_NUMERIC_QUALIFIER) if T_NUMERIC_QUALIFIER in d else None
        measured = _sequence(d, T_MEASURED_VALUE)
        if not measured:
            return None, "", qualifier
        mv = measured[0]
        value = tree.ascii(mv, T_NUMERIC_VALUE).split("\\")[0]
        if not value.strip() and T_FLOAT_VALUE in mv:  # only the Floating Point Value is given
            value = tree.floating(mv, T_FLOAT_VALUE)
        units = _sequence(mv, T_UNITS)
        unit = (tree.ascii(units[0], T_CODE_VALUE) or _ascii(units[0], T_LONG_CODE_VALUE)) if units else ""
        return (value if value.strip() else None), unit, qualifier

    def find(self, code: str, scheme: str = "DCM") -> Optional["Node"]:
        """First child with concept ``scheme:code``."""
        for c in self.children:
            if c.code == code and c.scheme == scheme:
                return c
        return None

    def find_snomed(self, codes: tuple[str, ...]) -> Optional["Node"]:
        for c in self.children:
            if c.code in codes and c.scheme in SNOMED_SCHEMES:
                return c
        return None

    def iter(self) -> Iterator["Node"]:
        """Depth-first over all descendants."""
        for c in self.children:
            yield c
            yield from c.iter()


def _children(d: dict, tree: Tree) -> list[Node]:
    nodes = []
    ascii_ = tree.ascii
    add_scheme = tree.schemes.add
    for item in _sequence(d, T_CONTENT):
        name = item.get(T_CONCEPT_NAME)
        if name.__class__ is not dict:
            name = _sequence(item, T_CONCEPT_NAME)[0] if name else None
        if name is not None:
            code = ascii_(name, T_CODE_VALUE) or _ascii(name, T_LONG_CODE_VALUE) or _ascii(name, T_URN_CODE_VALUE)
            scheme = ascii_(name, T_SCHEME)
            add_scheme(scheme)
        else:
            code = scheme = ""
        kids = _children(item, tree) if T_CONTENT in item else ()
        nodes.append(Node(item, tree, ascii_(item, T_VALUE_TYPE), ascii_(item, T_RELATIONSHIP), scheme, code, kids))
    return nodes


_TOP_TAGS = tuple(BaseTag(t) for t in (T_CONCEPT_NAME, T_CONTENT, T_TEMPLATE, T_VALUE_TYPE))  # the dataset's keys


def read_tree(ds: Dataset) -> Node:
    """The document root (the dataset itself) with its whole content tree.

    Raises :class:`RawFormatError` when sequence bytes are malformed.
    """
    tree = Tree(ds)
    parsed = parsed_sequences(ds)  # the Content Sequence, when parsed while the object was read
    top = {tag: ds._dict[tag] for tag in _TOP_TAGS if tag in ds._dict and tag not in parsed}
    root = _as_dict(_Top(top))
    if T_CONTENT in parsed and T_CONTENT in ds._dict:
        root[T_CONTENT] = parsed[T_CONTENT]
    name = tree.first_code(root, T_CONCEPT_NAME)
    return Node(root, tree, _ascii(root, T_VALUE_TYPE) or "CONTAINER", "", name.scheme if name else "",
                name.code if name else "", _children(root, tree))


class _Top:
    """The root's content-tree elements, shaped like a Dataset for :func:`_as_dict`."""

    __slots__ = ("_dict",)

    def __init__(self, elements: dict):
        self._dict = elements


def tree_of(node: Node) -> Tree:
    """The decoding context a node belongs to."""
    return node._tree
