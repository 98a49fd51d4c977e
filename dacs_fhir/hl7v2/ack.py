"""The one place where the outcome of an inbound message becomes an ACK (HL7 v2.5.1 §2.9.2, §2.15.5 ERR).

AA when the message was applied; AE with an ERR segment (location ERR-2, HL7
table 0357 code ERR-3, severity ERR-4, reason ERR-8) when its content is wrong;
AR when its type, event or version is not supported or it cannot be parsed.
Versions before 2.5 get the older ERR-1 (ELD) form instead of ERR-2..8.
"""
from __future__ import annotations

import itertools
import logging
import time
from typing import Callable, Optional

from .errors import APPLICATION_INTERNAL_ERROR, CODE_TEXT, Hl7Error, Location
from .message import Inbound, decode, sniff_control_id

log = logging.getLogger(__name__)

SENDING_APPLICATION = "DACS"
_counter = itertools.count(1)


def new_control_id() -> str:
    """A unique MSH-10 of at most 20 characters (the ST length of v2.3-2.4)."""
    return f"D{int(time.time() * 1000) % 10**11:011d}{next(_counter) % 10**8:08d}"


def escape(text: str, enc: str = "^~\\&", fs: str = "|") -> str:
    """Escape delimiters in a value we write (HL7 v2.5.1 §2.7.1)."""
    comp, rep, esc, sub = tuple((enc + "^~\\&")[:4])
    out = text.replace(esc, f"{esc}E{esc}")
    for ch, code in ((fs, "F"), (comp, "S"), (rep, "R"), (sub, "T")):
        out = out.replace(ch, f"{esc}{code}{esc}")
    return out.replace("\r", " ").replace("\n", " ")


def accept_ack_type(raw: bytes) -> str:
    """MSH-15 Accept Acknowledgment Type (HL7 table 0155: AL, NE, ER, SU) read from the bytes; "" for
    original mode, or for a value that is not in the table."""
    from .message import header_fields

    fields = header_fields(raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw)
    value = fields[14].decode("latin-1").strip().upper() if len(fields) > 14 else ""
    return value if value in ("AL", "NE", "ER", "SU") else ""


def _older_than_25(version: str) -> bool:
    parts = version.split(".")
    try:
        return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) < (2, 5)
    except ValueError:
        return False


def build_ack(inbound: Optional[Inbound], code: str, error: Optional[Hl7Error] = None, raw: bytes = b"") -> str:
    """The ACK text (segments separated by CR) for ``inbound`` (None when it could not be parsed)."""
    if inbound is not None:
        fs = inbound.text[3]
        enc = inbound.value("MSH", 2) or "^~\\&"
        v = inbound.value
        sender = v("MSH", 5) or SENDING_APPLICATION
        sender_fac = v("MSH", 6)
        receiver, receiver_fac = v("MSH", 3), v("MSH", 4)
        trigger, control = inbound.trigger, inbound.control_id
        processing = v("MSH", 11) or "P"
        version = inbound.version or "2.5.1"
        charset = inbound.value("MSH", 18)
    else:
        fs, enc = "|", "^~\\&"
        sender, sender_fac, receiver, receiver_fac = SENDING_APPLICATION, "", "", ""
        trigger, control, processing, version, charset = "", sniff_control_id(raw), "P", "2.5.1", ""
    e = lambda s: escape(s, enc, fs)  # noqa: E731
    c, r, _esc, s = tuple(enc[:4] if len(enc) >= 4 else "^~\\&")
    msh = [
        "MSH", enc, e(sender), e(sender_fac), e(receiver), e(receiver_fac), time.strftime("%Y%m%d%H%M%S"), "",
        f"ACK{c}{e(trigger)}{c}ACK" if trigger else "ACK", new_control_id(), e(processing), e(version),
    ]
    if charset:
        msh += ["", "", "", "", "", e(charset)]
    segments = [fs.join(msh)]
    msa = ["MSA", code, e(control)]
    if error is not None:
        msa.append(e(error.reason[:80]))
    segments.append(fs.join(msa))
    if error is not None:
        segments.append(_err_segment(error, version, fs, c, s, e))
    return "\r".join(segments) + "\r"


def _err_segment(error: Hl7Error, version: str, fs: str, c: str, s: str, e) -> str:
    loc = error.location or Location("")
    text = CODE_TEXT.get(error.code, "")
    if _older_than_25(version):
        # v2.3/2.4 ERR-1 ELD: segment^sequence^field^code&text&HL70357
        eld = c.join([loc.segment, str(loc.sequence) if loc.segment else "", str(loc.field or ""), s.join([error.code, e(text), "HL70357"])])
        return fs.join(["ERR", eld])
    erl = c.join(
        [loc.segment, str(loc.sequence) if loc.segment else "", str(loc.field or ""), str(loc.repetition or (1 if loc.field else "")), str(loc.component or "")]
    ).rstrip(c)
    severity = "E"
    return fs.join(["ERR", "", erl, c.join([error.code, e(text), "HL70357"]), severity, "", "", "", e(error.reason[:200])])


def acknowledge(raw: bytes, apply: Callable[[Inbound], None]) -> tuple[str, Optional[Inbound], Optional[Hl7Error]]:
    """Decode ``raw``, run ``apply`` on it and return (ACK text, inbound, error); never raises."""
    try:
        inbound = decode(raw)
    except Hl7Error as err:
        return build_ack(None, err.ack_code, err, raw=raw), None, err
    try:
        apply(inbound)
    except Hl7Error as err:
        return build_ack(inbound, err.ack_code, err), inbound, err
    except Exception as exc:  # noqa: BLE001 - every failure must become a reply, never a dropped connection
        log.exception("HL7 %s control id %s failed", inbound.message_type, inbound.control_id)
        error = Hl7Error(f"internal error: {type(exc).__name__}", APPLICATION_INTERNAL_ERROR)
        return build_ack(inbound, "AE", error), inbound, error
    return build_ack(inbound, "AA"), inbound, None


def encode_ack(ack: str, inbound: Optional[Inbound]) -> bytes:
    """ACK bytes in the character set of the message it answers."""
    encoding = inbound.encoding if inbound is not None else "ascii"
    return ack.encode(encoding, errors="replace")
