"""Quantity values in canonical UCUM units, so `gt0.5|http://unitsofmeasure.org|Gy.cm` finds 500 mGy.cm."""
from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Optional

from .. import units
from ..codes import SYS_UCUM


@lru_cache(maxsize=512)
def _factor(code: str) -> Optional[tuple[Decimal, str]]:
    try:
        target = units.canonical_unit(code)
        return Decimal(repr(units.convert(1, code, target).value)), target
    except Exception:  # not a UCUM unit we know: kept as written
        return None


def canonical(value: Decimal, system: Optional[str], code: Optional[str]) -> tuple[Decimal, Optional[str]]:
    """(factor to apply to ``value``'s number, canonical code) for a UCUM code; (1, code) otherwise."""
    if not code or (system and system != SYS_UCUM):
        return Decimal(1), code
    found = _factor(code)
    if found is None:
        return Decimal(1), code
    return found[0] * value, found[1]


def canonical_float(value: float, system: Optional[str], code: Optional[str]) -> tuple[float, Optional[str]]:
    """A stored quantity in its canonical UCUM unit."""
    if not code or (system and system != SYS_UCUM):
        return value, code
    found = _factor(code)
    if found is None:
        return value, code
    if found[0] == 1:  # already canonical (mGy, mGy.cm, s): the product would be the value itself
        return value, found[1]
    return float(Decimal(repr(value)) * found[0]), found[1]
