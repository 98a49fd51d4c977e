"""FHIR date, dateTime and instant values as half-open UTC ranges [low, high) (R4 search.html#date)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Optional

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2})(?::(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?)?)?$"
)
NARROW = timedelta(days=1)  # widest range of a "narrow" date index row
MIN = datetime(1, 1, 1)
MAX = datetime(9999, 12, 31, 23, 59, 59)


def parse_range(text: str) -> tuple[datetime, datetime]:
    """[low, high) covered by a (partial) date/dateTime/instant; ValueError when malformed."""
    m = _DATE.match(text.strip())
    if not m:
        raise ValueError(f"not a FHIR date: {text!r}")
    y, mo, d = int(m["y"]), int(m["m"] or 1), int(m["d"] or 1)
    if m["m"] is None:
        return datetime(y, 1, 1), datetime(y + 1, 1, 1)
    if m["d"] is None:
        return datetime(y, mo, 1), (datetime(y + 1, 1, 1) if mo == 12 else datetime(y, mo + 1, 1))
    if m["H"] is None:
        low = datetime(y, mo, d)
        return low, low + timedelta(days=1)
    hour, minute, second = int(m["H"]), int(m["M"] or 0), int(m["S"] or 0)
    micro = int((m["f"] or "0")[:6].ljust(6, "0"))
    low = datetime(y, mo, d, hour, minute, second, micro)
    if m["f"]:
        step = timedelta(microseconds=10 ** (6 - min(len(m["f"]), 6)))
    elif m["S"] is not None:
        step = timedelta(seconds=1)
    elif m["M"] is not None:
        step = timedelta(minutes=1)
    else:
        step = timedelta(hours=1)
    if m["tz"]:
        low = to_utc_naive(low.replace(tzinfo=_zone(m["tz"])))
    return low, low + step


def _zone(tz: str) -> timezone:
    if tz == "Z":
        return timezone.utc
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def to_utc_naive(value: datetime) -> datetime:
    """UTC without tzinfo, the form kept in the database (times without zone are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def element_range(value) -> Optional[tuple[datetime, datetime]]:
    """Range of a date/dateTime/instant string or a Period (open ends unbounded); None otherwise."""
    try:
        if isinstance(value, str):
            return parse_range(value)
        if isinstance(value, dict) and ("start" in value or "end" in value):
            low = parse_range(value["start"])[0] if value.get("start") else MIN
            high = parse_range(value["end"])[1] if value.get("end") else MAX
            return low, high
    except (ValueError, TypeError):
        return None
    return None


def instant(value: datetime) -> str:
    """A FHIR instant (millisecond precision, UTC) for meta.lastUpdated."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+00:00"
