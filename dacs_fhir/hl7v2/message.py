"""An inbound HL7 v2 message: bytes as real feeds send them, decoded and split into fields.

Real feeds send LF or CRLF instead of CR between segments, a UTF-8 byte order
mark, a character set in MSH-18 (HL7 table 0211) or none, and a version in
MSH-12 that does not always match the fields they fill. Decoding is done here,
once; the rest of the package reads fields through :meth:`Inbound.value`
(escape sequences resolved with python-hl7's ``hl7.util.unescape``, HL7 v2.5.1 §2.7).

Segments are split into fields once; repetitions, components and subcomponents
are split only when a value is read (HL7 v2.5.1 §2.5). A handler reads a few dozen
values of a message, so this costs a small part of building python-hl7's full
container tree, which was the largest single cost of an ADT on the listener.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Iterator, Optional

from hl7.util import unescape

from .errors import DATA_TYPE_ERROR, SEGMENT_SEQUENCE_ERROR, UNSUPPORTED_VERSION_ID, Location, MessageRejected

BOM = b"\xef\xbb\xbf"

# HL7 table 0211 (MSH-18) and spellings seen in the field -> Python codec
CHARSETS = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "ISO_IR 100": "latin-1",
    "ISO-8859-1": "latin-1",
    "8859/2": "iso8859_2",
    "8859/3": "iso8859_3",
    "8859/4": "iso8859_4",
    "8859/5": "iso8859_5",
    "8859/6": "iso8859_6",
    "8859/7": "iso8859_7",
    "8859/8": "iso8859_8",
    "8859/9": "iso8859_9",
    "8859/15": "iso8859_15",
    "ISO IR14": "shift_jis",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "CNS 11643-1992": "big5",
    "BIG-5": "big5",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "ISO IR192": "utf-8",
    "WINDOWS-1252": "cp1252",
    "CP1252": "cp1252",
}

_CONTROL_ID = re.compile(rb"^MSH(.)[^\r\n]*", re.M)

# One segment: its fields, item 0 the segment id. In MSH, item 1 is the field separator and item 2 the
# encoding characters, so that item n is SEG-n in every segment (HL7 v2.5.1 §2.5.3).
Segment = list


@dataclass
class Inbound:
    """One decoded, parsed message with the header values every handler needs."""

    raw: bytes
    text: str
    msg: list[Segment]  # the segments in message order
    encoding: str
    notes: list[str] = field(default_factory=list)  # tolerated deviations (bom, lf, charset fallback)
    separators: str = "\r|~^&"  # segment, field, repetition, component, subcomponent (python-hl7 order)
    esc: str = "\\"

    # ---- header (HL7 v2.5.1 MSH)
    @property
    def message_code(self) -> str:
        return self.value("MSH", 9, comp=1).upper()

    @property
    def trigger(self) -> str:
        """MSH-9.2, else EVN-1 (v2.1-2.2 style headers that carry only the message code)."""
        return (self.value("MSH", 9, comp=2) or self.value("EVN", 1)).upper()

    @property
    def structure(self) -> str:
        return self.value("MSH", 9, comp=3).upper()

    @property
    def message_type(self) -> str:
        return f"{self.message_code}^{self.trigger}"

    @property
    def control_id(self) -> str:
        return self.value("MSH", 10)

    @property
    def version(self) -> str:
        return self.value("MSH", 12, comp=1)

    @property
    def charset(self) -> str:
        return self.value("MSH", 18).strip()

    # ---- field access
    def segments(self, seg_id: str) -> list[Segment]:
        return [s for s in self.msg if s[0] == seg_id]

    def segment(self, seg_id: str) -> Optional[Segment]:
        for s in self.msg:
            if s[0] == seg_id:
                return s
        return None

    def value(self, seg: str | Segment | None, fld: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """The unescaped leaf value at SEG-fld(rep).comp.sub, "" when absent (MSH-1 and MSH-2 as sent)."""
        segment = self.segment(seg) if isinstance(seg, str) else seg
        if segment is None or fld >= len(segment) or fld < 1:
            return ""
        text = segment[fld]
        if fld <= 2 and segment[0] == "MSH":
            return text
        seps = self.separators
        for n, sep in ((rep, seps[2]), (comp, seps[3]), (sub, seps[4])):
            if sep in text:
                parts = text.split(sep)
                text = parts[n - 1] if 0 < n <= len(parts) else ""
            elif n != 1:
                return ""
        if self.esc and self.esc in text:
            text = unescape(self._escapes, text)
        return text.strip()

    @property
    def _escapes(self) -> SimpleNamespace:
        """What ``hl7.util.unescape`` reads of a python-hl7 container: the separators and escape character."""
        return SimpleNamespace(separators=self.separators, esc=self.esc)

    def repetitions(self, segment: Segment, fld: int) -> int:
        """How many repetitions field ``fld`` has (0 when empty)."""
        if fld >= len(segment) or not segment[fld]:
            return 0
        return segment[fld].count(self.separators[2]) + 1

    def iter_reps(self, segment: Segment, fld: int) -> Iterator[int]:
        return iter(range(1, self.repetitions(segment, fld) + 1))

    def segment_sequence(self, segment: Segment) -> int:
        """1-based position of ``segment`` among segments with its id (ERR-2.2)."""
        n = 0
        for s in self.msg:
            if s[0] == segment[0]:
                n += 1
                if s is segment:
                    return n
        return 1


def _codec(charset: str) -> Optional[str]:
    name = charset.strip().upper()
    if not name:
        return None
    return CHARSETS.get(name) or CHARSETS.get(name.replace("_", " "))


def header_fields(raw: bytes) -> list[bytes]:
    """The MSH fields split on the bytes alone (MSH-n is item n-1), before any decoding."""
    m = _CONTROL_ID.search(raw[:4096])
    if not m:
        return []
    return m.group(0).split(m.group(1))


def sniff_control_id(raw: bytes) -> str:
    """MSH-10 read from the bytes alone, for the ACK of a message that cannot be parsed."""
    f = header_fields(raw)
    return f[9].decode("latin-1").split("^")[0][:50] if len(f) > 9 else ""


def decode(raw: bytes) -> Inbound:
    """Decode and parse one message (MLLP frame content); :class:`MessageRejected` when impossible."""
    notes: list[str] = []
    data = raw
    if data.startswith(BOM):
        data, encoding = data[len(BOM):], "utf-8"
        notes.append("bom")
    else:
        fields = header_fields(data)
        declared = fields[17].decode("ascii", "replace").split("~")[0] if len(fields) > 17 else ""
        encoding = _codec(declared) or "utf-8"
        if declared.strip() and not _codec(declared):
            notes.append("charset-unknown")
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        # mislabelled feeds: UTF-8 sent as 8859/1 or the reverse; latin-1 never fails
        encoding = "utf-8" if encoding != "utf-8" else "latin-1"
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            encoding, text = "latin-1", data.decode("latin-1")
        notes.append(f"charset-fallback:{encoding}")
    if "\n" in text:
        notes.append("lf")
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    text = text.strip().strip("\x0b\x1c")
    segments = [s for s in text.split("\r") if s.strip()]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise MessageRejected("no MSH segment at the start of the message", SEGMENT_SEQUENCE_ERROR, Location("MSH"))
    text = "\r".join(segments)
    fs, enc = text[3], text[4:].split(text[3], 1)[0]
    if len(enc) < 4 or fs in enc or fs.isalnum() or len(set(enc[:4])) < 4:
        raise MessageRejected("unparseable message: MSH-1/MSH-2 separators", DATA_TYPE_ERROR, Location("MSH", 1, 2))
    msg = [s.split(fs) for s in segments]
    msg[0][1:1] = [fs]  # MSH-1 is the field separator itself
    inbound = Inbound(raw=raw, text=text, msg=msg, encoding=encoding, notes=notes,
                      separators=f"\r{fs}{enc[1]}{enc[0]}{enc[3]}", esc=enc[2])
    version = inbound.version
    if version and not re.match(r"^2\.\d", version):
        raise MessageRejected(f"unsupported HL7 version {version[:10]!r}", UNSUPPORTED_VERSION_ID, Location("MSH", 1, 12))
    return inbound
