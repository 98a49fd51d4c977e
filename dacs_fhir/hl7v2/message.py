"""An inbound HL7 v2 message: bytes as real feeds send them, decoded and parsed with python-hl7.

Real feeds send LF or CRLF instead of CR between segments, a UTF-8 byte order
mark, a character set in MSH-18 (HL7 table 0211) or none, and a version in
MSH-12 that does not always match the fields they fill. Decoding is done here,
once; the rest of the package reads fields through :meth:`Inbound.value`
(escape sequences resolved, HL7 v2.5.1 §2.7).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Optional

import hl7
from hl7.exceptions import ParseException

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


@dataclass
class Inbound:
    """One decoded, parsed message with the header values every handler needs."""

    raw: bytes
    text: str
    msg: hl7.Message
    encoding: str
    notes: list[str] = field(default_factory=list)  # tolerated deviations (bom, lf, charset fallback)

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
    def segments(self, seg_id: str) -> list[hl7.Segment]:
        return [s for s in self.msg if str(s[0]) == seg_id]

    def segment(self, seg_id: str) -> Optional[hl7.Segment]:
        for s in self.msg:
            if str(s[0]) == seg_id:
                return s
        return None

    def value(self, seg: str | hl7.Segment | None, fld: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """The unescaped leaf value at SEG-fld(rep).comp.sub, "" when absent."""
        segment = self.segment(seg) if isinstance(seg, str) else seg
        if segment is None:
            return ""
        try:
            if fld >= len(segment):
                return ""
            out = segment.extract_field(1, fld, rep, comp, sub)
        except (IndexError, KeyError, ValueError):
            return ""
        return out.strip() if isinstance(out, str) else str(out)

    def repetitions(self, segment: hl7.Segment, fld: int) -> int:
        """How many repetitions field ``fld`` has (0 when empty)."""
        if fld >= len(segment):
            return 0
        f = segment[fld]
        if isinstance(f, hl7.Field) and f and isinstance(f[0], hl7.Repetition):
            return sum(1 for _ in f)
        return 1 if str(f) else 0

    def iter_reps(self, segment: hl7.Segment, fld: int) -> Iterator[int]:
        return iter(range(1, self.repetitions(segment, fld) + 1))

    def segment_sequence(self, segment: hl7.Segment) -> int:
        """1-based position of ``segment`` among segments with its id (ERR-2.2)."""
        seg_id = str(segment[0])
        n = 0
        for s in self.msg:
            if str(s[0]) == seg_id:
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
    try:
        msg = hl7.parse(text)
    except (ParseException, ValueError, IndexError) as exc:
        raise MessageRejected(f"unparseable message: {type(exc).__name__}", DATA_TYPE_ERROR, Location("MSH")) from None
    inbound = Inbound(raw=raw, text=text, msg=msg, encoding=encoding, notes=notes)
    version = inbound.version
    if version and not re.match(r"^2\.\d", version):
        raise MessageRejected(f"unsupported HL7 version {version[:10]!r}", UNSUPPORTED_VERSION_ID, Location("MSH", 1, 12))
    return inbound
