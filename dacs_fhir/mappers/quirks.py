"""Named repairs of vendor deviations from PS3.16 / PS3.5, each saying where it was seen.

The SR parser calls these while it reads content items; every fix that changes
something returns its name, and the parser records it in ``DoseReport.quirks``.
:data:`QUIRKS` lists them all (name -> where seen, what it does).
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TypeVar

from ..units import UNIT_SPELLING_FIXES, UnitError, fix_spelling, parse_unit


@dataclass(frozen=True, slots=True)
class Quirk:
    name: str
    seen_on: str
    does: str


QUIRKS: dict[str, Quirk] = {}
F = TypeVar("F", bound=Callable)


def quirk(name: str, seen_on: str, does: str) -> Callable[[F], F]:
    """Register a fix under ``name``; the function's ``quirk`` attribute is its record."""

    def register(fn: F) -> F:
        QUIRKS[name] = Quirk(name, seen_on, does)
        fn.quirk = QUIRKS[name]  # type: ignore[attr-defined]
        return fn

    return register


# Named quirks without a value repair: the parser applies them structurally and records the name.
EMPTY_NUMERIC = "empty-numeric"
MISSING_TEMPLATE_ID = "missing-template-id"
EMPTY_CODE = "empty-code"
DEVICE_UID_AS_TEXT = "device-observer-uid-as-text"
PRIVATE_EFFECTIVE_DOSE = "private-container:99SHS-effective-dose"
NON_NUMERIC = "non-numeric-value"
UNKNOWN_UNIT = "unit-unknown"
QUIRKS[EMPTY_NUMERIC] = Quirk(EMPTY_NUMERIC, "GE OEC Super-C (angles 'Value unknown'), Siemens ARCADIS Varic (air kerma not attempted)",
                              "NUM without a measured value is skipped, never read as 0")
QUIRKS[MISSING_TEMPLATE_ID] = Quirk(MISSING_TEMPLATE_ID, "dose SRs without Content Template Sequence (older modalities, converters)",
                                    "template inferred from the root concept and its containers")
QUIRKS[EMPTY_CODE] = Quirk(EMPTY_CODE, "GE LightSpeed RT16 via PixelMed (Target Region without a code)", "empty CODE item ignored")
QUIRKS[DEVICE_UID_AS_TEXT] = Quirk(DEVICE_UID_AS_TEXT, "GE OEC Super-C", "Device Observer UID coded as TEXT instead of UIDREF is accepted")
QUIRKS[PRIVATE_EFFECTIVE_DOSE] = Quirk(PRIVATE_EFFECTIVE_DOSE, "Siemens Biograph Vision RRDSR (99SHS 220001 'Effective Dose Information')",
                                       "Effective Dose (113839) read from inside the private container")
QUIRKS[NON_NUMERIC] = Quirk(NON_NUMERIC, "corrupt or hand-edited dose SRs", "a Numeric Value that is no number is skipped")
QUIRKS[UNKNOWN_UNIT] = Quirk(UNKNOWN_UNIT, "vendor units outside UCUM's dose subset", "value kept in the coded unit, unconverted")
QUIRKS["unit-spelling"] = Quirk("unit-spelling", "vendor units with '*', ' ', '^', '\u00b5' or '\u00b2' (e.g. 'Gy m2', 'cm^2')",
                                "product and exponent notation rewritten as UCUM ('Gy.m2', 'cm2')")
for _bad, _fix in UNIT_SPELLING_FIXES.items():
    QUIRKS[f"unit-spelling:{_bad}"] = Quirk(f"unit-spelling:{_bad}", _fix.seen_on, f"unit {_bad!r} read as UCUM {_fix.ucum!r}")


def describe(name: str) -> Optional[Quirk]:
    """The registered quirk for a recorded name ('private-codes:99PHI…' -> 'private-codes')."""
    return QUIRKS.get(name) or QUIRKS.get(name.split(":", 1)[0])


_WORD_UNIT = re.compile(r"^[A-Za-z][A-Za-z \-_]*[A-Za-z]$")
_SEPARATORS = str.maketrans({"*": ".", " ": ".", "\u00b7": ".", "^": None, "\u00b2": "2", "\u00b3": "3", "\u00b5": "u", "\u03bc": "u"})


@quirk("unit-annotation", "GE Optima CT660 ('X-ray sources'), GE OEC / Philips ('pulse/s')",
       "a count written as a bare word is read as a UCUM annotation ({X-ray sources}, {pulse}/s)")
def fix_unit(unit: str) -> tuple[str, Optional[str]]:
    """The UCUM code for a coded unit, and the quirk name when it had to be repaired.

    Known vendor spellings come from ``units.UNIT_SPELLING_FIXES``; other spellings
    whose only fault is the product sign or exponent notation ('Gy m2', 'mGy*cm',
    'cm^2', 'µGy') are repaired under the same ``unit-spelling:<x>`` name.
    """
    ucum, fixed = fix_spelling(unit)
    if fixed:
        return ucum, fixed
    if _is_ucum(ucum):
        return ucum, None
    respelled = ucum.strip().translate(_SEPARATORS)
    if respelled != ucum and _is_ucum(respelled):
        return respelled, f"unit-spelling:{unit}"
    num, slash, den = ucum.partition("/")
    if _WORD_UNIT.match(num) and (not slash or _is_ucum(den)):
        return f"{{{num}}}{slash}{den}", f"unit-annotation:{unit}"
    return ucum, None


def _is_ucum(code: str) -> bool:
    try:
        parse_unit(code)
        return True
    except UnitError:
        return False


_SPACES = re.compile(r"\s+")


@quirk("numeric-format", "hand-keyed and converted dose SRs (e.g. '12,5', '1 250')",
       "a Numeric Value with inner spaces or a decimal comma is read as the number it means")
def fix_numeric_text(value: str) -> tuple[str, Optional[str]]:
    """A DS string PS3.5 accepts, and the quirk name when it had to be repaired."""
    s = value.strip()
    fixed = _SPACES.sub("", s)
    if "," in fixed and "." not in fixed and fixed.count(",") == 1:
        fixed = fixed.replace(",", ".")
    return fixed, ("numeric-format" if fixed != s else None)


_LATIN1_SETS = {"iso8859", "latin_1", "iso_ir_100", "iso-8859-1", "iso8859-1"}


@quirk("utf8-as-latin1", "Siemens SOMATOM Definition Flash (syngo CT 2011A): protocol 'testÃ¦Ã¸Ã¥'",
       "text that is UTF-8 bytes under ISO_IR 100 (or no character set) is decoded as UTF-8")
def repair_mojibake(text: str, encodings: Sequence[str]) -> tuple[str, Optional[str]]:
    """Undo UTF-8 read as Latin-1 (only where the object claims Latin-1 or the default repertoire)."""
    if text.isascii() or not encodings or any(e.lower() not in _LATIN1_SETS for e in encodings):
        return text, None
    try:
        fixed = text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text, None
    return (fixed, "utf8-as-latin1") if fixed != text else (text, None)


T = TypeVar("T")


@quirk("duplicate-events", "Siemens SOMATOM Confidence cumulative RDSRs; modalities re-sending a study's earlier events",
       "events repeated inside one report (same Irradiation Event UID, same content) are kept once, first occurrence")
def dedup_by_uid(items: list[T], uid: Callable[[T], str], same: Callable[[T, T], bool] = lambda a, b: a == b,
                 renew: Optional[Callable[[T, int], T]] = None) -> tuple[list[T], list[str]]:
    """Drop repeats of an event; an event that reuses another's UID with other content is kept (renewed UID)."""
    first: dict[str, T] = {}
    kept: list[T] = []
    names: list[str] = []
    for position, item in enumerate(items):
        key = uid(item)
        if key not in first:
            first[key] = item
            kept.append(item)
        elif same(first[key], item):
            names.append("duplicate-events")
        else:
            kept.append(renew(item, position) if renew else item)
            names.append("reused-event-uid")
    return kept, names


QUIRKS["reused-event-uid"] = Quirk("reused-event-uid", "modalities that give several different events one Irradiation Event UID",
                                   "a later event with a reused UID but other values is kept, with a synthesized UID")


@quirk("synthesized-event-uid", "irradiation events without Irradiation Event UID (113769), e.g. converted dose screens",
       "a deterministic UID 2.25.<uuid5(SOP Instance UID, position)> is given to the event")
def synthesize_uid(sop_instance_uid: str, kind: str, position: int) -> str:
    """Deterministic UID (PS3.5 B.2 UUID-derived) for an event of this object at this position."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, f"{sop_instance_uid}/{kind}/{position}").int)


# Siemens ARCADIS Varic private "Radiation Summary Report" (99SMS_RADSUM C-10): private code -> DCM equivalent
SIEMENS_RADSUM_SCHEME = "99SMS_RADSUM"
SIEMENS_RADSUM_ROOT = "C-10"
SIEMENS_RADSUM_NUM = {
    "C-202": ("113730", "Total Fluoro Time"),
    "C-204": ("113722", "Dose Area Product Total"),
    "C-210": ("113725", "Dose (RP) Total"),  # cumulative air kerma at the reference point
}
SIEMENS_RADSUM_START, SIEMENS_RADSUM_END = "C-206", "C-208"
QUIRKS["siemens-radiation-summary"] = Quirk(
    "siemens-radiation-summary",
    "Siemens ARCADIS Varic (Enhanced SR 'Radiation Summary Report', 99SMS_RADSUM)",
    "private totals mapped to TID 10002 equivalents: C-202 -> 113730, C-204 -> 113722, C-210 -> 113725, C-206/C-208 -> start/end",
)


@quirk("coding-scheme:SNM3", "Carestream DRX-Evolution, Hologic Selenia Dimensions (SNOMED 3 designator)",
       "SNM3 codes are matched as SNOMED (same codes as SRT)")
def snomed_scheme(scheme: str) -> tuple[str, Optional[str]]:
    return ("SRT", "coding-scheme:SNM3") if scheme == "SNM3" else (scheme, None)


def private_scheme(scheme: str) -> bool:
    """Private coding schemes (PS3.16 8.2: designators starting with 99) carry no standard meaning."""
    return scheme.startswith("99")


QUIRKS["private-codes"] = Quirk("private-codes", "Philips Allura (99PHI-IXR-XPER), Toshiba (99TOSHIBA-TMSC), Hologic (99HOLX)",
                                "content items with private concept names are ignored unless mapped here")
