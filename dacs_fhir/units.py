"""UCUM unit normalisation for dose quantities.

Every quantity leaves the mappers in the canonical unit of its dimension:

==========================  ==========  ===========================================
dimension                   canonical   accepted (any SI prefix n u m c d k M G)
==========================  ==========  ===========================================
absorbed dose / air kerma   ``mGy``     Gy, mGy, uGy, dGy, cGy …
dose-length product         ``mGy.cm``  Gy.m, mGy.cm, mGy.mm …
dose-area product (DAP)     ``mGy.cm2`` Gy.m2, dGy.cm2, uGy.m2, Gy.cm2, cGy.cm2 …
dose rate                   ``mGy/s``   Gy/s, mGy/min …
effective / equiv. dose     ``mSv``     Sv, mSv, uSv
activity                    ``MBq``     Bq, kBq, GBq, mCi, uCi, Ci
time                        ``s``       s, ms, us, min, h
length                      ``mm``      m, cm, mm, um
area                        ``cm2``     m2, mm2, cm2
tube voltage                ``kV``      V, kV
tube current                ``mA``      A, mA, uA
tube current-time product   ``mA.s``    mA.s, uA.s, A.s
mass                        ``kg``      g, kg
plane angle                 ``deg``     deg
dimensionless               as coded    1, %, {ratio}, {events}, {X-Ray sources} …
==========================  ==========  ===========================================

DAP is carried in ``mGy.cm2`` (the unit of the HL7 RDS IG examples); the DICOM
templates code it in Gy.m2 (1 Gy.m2 = 10^7 mGy.cm2). Arithmetic is done in
``Decimal`` on the coded string so that ``1.6e-005 Gy.m2`` becomes exactly
``160 mGy.cm2``.

Vendor spellings that are not UCUM (``Gym2``, ``mGycm``, ``Gy.cm^2``, ``uAs`` …)
are repaired by the named fixes in :data:`UNIT_SPELLING_FIXES` before parsing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Optional

from .domain import Quantity


class UnitError(ValueError):
    """A unit that cannot be understood or converted."""


@dataclass(frozen=True, slots=True)
class UnitSpellingFix:
    """A named repair of a non-UCUM unit code seen in vendor data."""

    ucum: str
    seen_on: str


# Non-UCUM unit codes seen in real vendor dose objects, with where they were seen.
UNIT_SPELLING_FIXES: dict[str, UnitSpellingFix] = {
    "Gym2": UnitSpellingFix("Gy.m2", "Siemens AXIOM-Artis, Fluorospot Compact FD RDSR"),
    "Gy*m2": UnitSpellingFix("Gy.m2", "Siemens Luminos RDSR"),
    "mGycm": UnitSpellingFix("mGy.cm", "Siemens SOMATOM Definition Flash, GE Optima CT660 RDSR"),
    "mGy*cm": UnitSpellingFix("mGy.cm", "Siemens syngo CT RDSR"),
    "mGy cm": UnitSpellingFix("mGy.cm", "GE dose screen conversions"),
    "Gy.cm^2": UnitSpellingFix("Gy.cm2", "Siemens ARCADIS Varic private Enhanced SR"),
    "Gycm2": UnitSpellingFix("Gy.cm2", "Siemens ARCADIS private SR"),
    "dGycm2": UnitSpellingFix("dGy.cm2", "Canon / Toshiba Ultimax"),
    "cGycm2": UnitSpellingFix("cGy.cm2", "fluoroscopy dose screens"),
    "uGym2": UnitSpellingFix("uGy.m2", "Philips DuraDiagnost"),
    "uAs": UnitSpellingFix("uA.s", "Hologic Selenia Dimensions, Carestream DRX RDSR"),
    "mAs": UnitSpellingFix("mA.s", "mammography and DX RDSRs"),
    "As": UnitSpellingFix("A.s", "generic"),
    "sec": UnitSpellingFix("s", "generic"),
    "msec": UnitSpellingFix("ms", "generic"),
    "degree": UnitSpellingFix("deg", "generic"),
    "degrees": UnitSpellingFix("deg", "generic"),
    "KV": UnitSpellingFix("kV", "generic"),
    "kVp": UnitSpellingFix("kV", "generic"),
    "MA": UnitSpellingFix("mA", "generic"),
    "mCI": UnitSpellingFix("mCi", "generic"),
}

# Base dimensions: Gy, Sv, Bq, m, s, A, V, g, deg
_DIMS = ("Gy", "Sv", "Bq", "m", "s", "A", "V", "g", "deg")
_ATOMS: dict[str, tuple[Decimal, dict[str, int]]] = {
    "Gy": (Decimal(1), {"Gy": 1}),
    "Sv": (Decimal(1), {"Sv": 1}),
    "Bq": (Decimal(1), {"Bq": 1}),
    "Ci": (Decimal("3.7e10"), {"Bq": 1}),
    "m": (Decimal(1), {"m": 1}),
    "s": (Decimal(1), {"s": 1}),
    "min": (Decimal(60), {"s": 1}),
    "h": (Decimal(3600), {"s": 1}),
    "A": (Decimal(1), {"A": 1}),
    "V": (Decimal(1), {"V": 1}),
    "g": (Decimal(1), {"g": 1}),
    "deg": (Decimal(1), {"deg": 1}),
    "Hz": (Decimal(1), {"s": -1}),
}
_PREFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "c": Decimal("1e-2"),
    "d": Decimal("1e-1"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
}
_UNPREFIXED = {"min", "h", "deg"}  # "mh", "cdeg" are nonsense; "m" alone is metre

# canonical unit per dimension vector
_CANONICAL: dict[tuple[int, ...], str] = {}


def _vec(d: dict[str, int]) -> tuple[int, ...]:
    return tuple(d.get(k, 0) for k in _DIMS)


_TERM = re.compile(r"^(?P<atom>[A-Za-z]+)(?P<exp>-?\d+)?$")


@lru_cache(maxsize=512)
def parse_unit(ucum: str) -> tuple[Decimal, tuple[int, ...]]:
    """(factor to base units, dimension vector) of a UCUM code of the dose subset."""
    code = ucum.strip()
    if not code or code == "1" or code == "%" or (code.startswith("{") and code.endswith("}")):
        return (Decimal("0.01") if code == "%" else Decimal(1), _vec({}))
    factor = Decimal(1)
    dims: dict[str, int] = {}
    # "{pulse}/s": annotations are dimensionless factors of 1
    code = re.sub(r"\{[^}]*\}", "1", code)
    numerator, _, denominator = code.partition("/")
    for sign, part in ((1, numerator), (-1, denominator)):
        if not part:
            continue
        for term in part.split("."):
            if term == "1":
                continue
            m = _TERM.match(term)
            if not m:
                raise UnitError(f"unit {ucum!r} is not UCUM")
            atom, exp = m.group("atom"), int(m.group("exp") or 1) * sign
            f, d = _atom(atom, ucum)
            factor *= f**exp
            for k, v in d.items():
                dims[k] = dims.get(k, 0) + v * exp
    return factor, _vec(dims)


def _atom(atom: str, ucum: str) -> tuple[Decimal, dict[str, int]]:
    if atom in _ATOMS:
        return _ATOMS[atom]
    prefix, rest = atom[0], atom[1:]
    if prefix in _PREFIXES and rest in _ATOMS and rest not in _UNPREFIXED:
        f, d = _ATOMS[rest]
        return _PREFIXES[prefix] * f, d
    raise UnitError(f"unit {ucum!r} has unknown term {atom!r}")


for _canon in ("mGy", "mGy.cm", "mGy.cm2", "mGy/s", "mSv", "MBq", "s", "mm", "cm2", "kV", "mA", "mA.s", "kg", "deg", "/s"):
    _CANONICAL[parse_unit(_canon)[1]] = _canon


def fix_spelling(unit: str) -> tuple[str, Optional[str]]:
    """The UCUM code for a coded unit, and the name of the spelling fix applied (if any)."""
    u = unit.strip()
    fix = UNIT_SPELLING_FIXES.get(u)
    if fix is not None:
        return fix.ucum, f"unit-spelling:{u}"
    return u, None


def parse_decimal(text) -> Decimal:
    try:
        d = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise UnitError(f"numeric value {text!r} is not a number") from None
    if not d.is_finite():
        raise UnitError(f"numeric value {text!r} is not finite")
    return d


@lru_cache(maxsize=512)
def canonical_unit(ucum: str) -> str:
    """The canonical unit for the dimension of ``ucum`` (``ucum`` itself when dimensionless/unknown)."""
    _, dims = parse_unit(ucum)
    if not any(dims) or "{" in ucum:  # counts and annotated rates ({pulse}/s) stay as coded
        return ucum
    return _CANONICAL.get(dims, ucum)


def normalise(value, unit: str) -> Quantity:
    """A :class:`Quantity` in the canonical unit, from a coded value and a (UCUM or repaired) unit.

    Raises :class:`UnitError` for a non-numeric value or an unknown unit.
    """
    ucum, _ = fix_spelling(unit)
    number = value if isinstance(value, Decimal) else parse_decimal(value)
    return _convert(number, ucum, canonical_unit(ucum))


def convert(value, unit: str, target: str) -> Quantity:
    """Convert ``value unit`` to ``target``; raises :class:`UnitError` across dimensions."""
    ucum, _ = fix_spelling(unit)
    number = value if isinstance(value, Decimal) else parse_decimal(value)
    return _convert(number, ucum, target)


def _convert(number: Decimal, ucum: str, target: str) -> Quantity:
    if ucum == target:
        return Quantity(_to_float(number), target)
    f_from, f_to = _factors(ucum, target)
    return Quantity(_to_float(number * f_from / f_to), target)


@lru_cache(maxsize=512)
def _factors(ucum: str, target: str) -> tuple[Decimal, Decimal]:
    """(factor of ``ucum``, factor of ``target``) to base units; raises :class:`UnitError` across dimensions."""
    f_from, d_from = parse_unit(ucum)
    f_to, d_to = parse_unit(target)
    if d_from != d_to:
        raise UnitError(f"cannot convert {ucum!r} to {target!r}")
    return f_from, f_to


def _to_float(d: Decimal) -> float:
    # round to 12 significant digits: removes binary noise, keeps every coded digit
    return float(f"{d:.12g}") if d else 0.0
