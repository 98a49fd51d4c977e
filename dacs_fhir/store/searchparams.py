"""Search parameter definitions (FHIR R4 searchparameter-registry) and their index values.

Each parameter names FHIRPath-like element paths (``effective[x]`` for choice types); the
extractor turns the elements it finds into the rows of one index table per parameter type.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Optional

from . import dates
from .quantities import canonical_float

MAX_VALUE = 512  # longer index values are cut: a b-tree key must stay small


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str  # token | string | date | reference | quantity | uri | composite
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()  # reference: resource types kept (empty: any)
    # searched on the index rows of other parameters (e.g. patient = subject rows of type Patient),
    # so the same value is not indexed twice; ``kind`` is then the index table holding them
    stored_as: tuple[str, ...] = ()
    kind: str = ""
    single: bool = False  # one index row per resource at most (a date element of cardinality 0..1)

    @property
    def table_kind(self) -> str:
        return self.kind or self.type

    @property
    def index_names(self) -> tuple[str, ...]:
        return self.stored_as or (self.name,)


def _p(name: str, type_: str, *paths: str, targets: tuple[str, ...] = (), stored_as: tuple[str, ...] = (),
       kind: str = "", single: bool = False) -> SearchParam:
    return SearchParam(name, type_, paths, targets, stored_as, kind, single)


COMMON = {p.name: p for p in (
    _p("_profile", "uri", "meta.profile"),
    _p("_tag", "token", "meta.tag"),
    _p("_security", "token", "meta.security"),
)}
# _id and _lastUpdated are columns of the resource table (see query.py)
RESOURCE_COLUMNS = {"_id": "token", "_lastUpdated": "date"}

PARAMS: dict[str, dict[str, SearchParam]] = {rtype: {p.name: p for p in params} for rtype, params in {
    "Observation": [
        _p("identifier", "token", "identifier"),
        _p("code", "token", "code"),
        _p("patient", "reference", "subject", targets=("Patient",), stored_as=("subject",)),
        _p("subject", "reference", "subject"),
        _p("device", "reference", "device"),
        _p("part-of", "reference", "partOf"),
        _p("focus", "reference", "focus"),
        _p("has-member", "reference", "hasMember"),
        _p("derived-from", "reference", "derivedFrom"),
        _p("date", "date", "effective[x]", single=True),
        _p("category", "token", "category"),
        _p("status", "token", "status"),
        _p("code-value-quantity", "composite", "code$valueQuantity"),
        _p("component-code-value-quantity", "composite", "component.code$valueQuantity"),
        _p("combo-code-value-quantity", "composite", "code$valueQuantity", "component.code$valueQuantity",
           stored_as=("code-value-quantity", "component-code-value-quantity")),
        _p("value-quantity", "quantity", "valueQuantity", stored_as=("code-value-quantity",), kind="composite"),
        _p("component-value-quantity", "quantity", "component.valueQuantity",
           stored_as=("component-code-value-quantity",), kind="composite"),
    ],
    "Patient": [
        _p("identifier", "token", "identifier"),
        _p("family", "string", "name.family"),
        _p("given", "string", "name.given"),
        _p("name", "string", "name"),
        _p("birthdate", "date", "birthDate", single=True),
        _p("gender", "token", "gender"),
        _p("link", "reference", "link.other"),
    ],
    "ImagingStudy": [
        _p("identifier", "token", "identifier"),
        _p("patient", "reference", "subject", targets=("Patient",), stored_as=("subject",)),
        _p("subject", "reference", "subject"),
        _p("started", "date", "started", single=True),
        _p("modality", "token", "series.modality"),
        _p("basedon", "reference", "basedOn"),
    ],
    "Device": [
        _p("identifier", "token", "identifier"),
        _p("type", "token", "type"),
        _p("manufacturer", "string", "manufacturer"),
        _p("model", "string", "modelNumber", "deviceName.name"),
    ],
    "Practitioner": [
        _p("identifier", "token", "identifier"),
        _p("family", "string", "name.family"),
        _p("given", "string", "name.given"),
        _p("name", "string", "name"),
    ],
    "ServiceRequest": [
        _p("identifier", "token", "identifier"),
        _p("patient", "reference", "subject", targets=("Patient",), stored_as=("subject",)),
        _p("subject", "reference", "subject"),
    ],
}.items()}


def param(rtype: str, name: str) -> Optional[SearchParam]:
    """The definition of ``name`` on ``rtype`` (common parameters included), or None."""
    return PARAMS.get(rtype, {}).get(name) or COMMON.get(name)


def known(rtype: str, name: str) -> SearchParam:
    """The definition of a parameter the query has already found on ``rtype``."""
    p = param(rtype, name)
    if p is None:
        raise KeyError(f"{name!r} is not a search parameter of {rtype}")
    return p


def params_of(rtype: str) -> dict[str, SearchParam]:
    return {**COMMON, **PARAMS.get(rtype, {})}


@lru_cache(maxsize=None)
def index_kinds(rtype: str) -> tuple[str, ...]:
    """The index tables (keys of models.INDEX_TABLES) that ``extract`` can fill for ``rtype``."""
    return tuple(sorted({p.type for p in params_of(rtype).values() if not p.stored_as}))


# ---- element access
def elements(node, path: str) -> Iterator:
    """Values at a dotted ``path`` below ``node`` (lists flattened; ``x[x]`` matches choice types)."""
    nodes = [node]
    for step in path.split("."):
        found = []
        for n in nodes:
            if not isinstance(n, dict):
                continue
            if step.endswith("[x]"):
                stem = step[:-3]
                values = [v for k, v in n.items() if k.startswith(stem) and k[len(stem):len(stem) + 1].isupper()]
            else:
                values = [n[step]] if step in n else []
            for v in values:
                found.extend(v if isinstance(v, list) else [v])
        nodes = found
    return iter(nodes)


def normalise_text(text: str) -> str:
    """Case- and accent-insensitive form of a string (R4 search.html#string)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()[:MAX_VALUE]


# ---- value extraction per type
def tokens(value) -> Iterator[tuple[Optional[str], Optional[str]]]:
    """(system, code) pairs of a code, Coding, CodeableConcept, Identifier, ContactPoint or boolean."""
    if type(value) is dict and "coding" in value:  # CodeableConcept: most tokens
        for coding in value["coding"] or ():
            if type(coding) is dict and "coding" not in coding and "code" in coding:
                yield coding.get("system"), str(coding["code"])[:MAX_VALUE]
            else:
                yield from tokens(coding)
    elif isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, str):
        yield None, value[:MAX_VALUE]
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value.get("coding") or []:
                yield from tokens(coding)
        elif "code" in value:
            yield value.get("system"), str(value["code"])[:MAX_VALUE]
        elif "value" in value:  # Identifier, ContactPoint
            yield value.get("system"), str(value["value"])[:MAX_VALUE]


def strings(value) -> Iterator[str]:
    """Searchable texts of a string, HumanName or Address."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in ("text", "family", "given", "prefix", "suffix", "line", "city", "district", "state",
                    "postalCode", "country"):
            part = value.get(key)
            for text in part if isinstance(part, list) else [part]:
                if isinstance(text, str):
                    yield text


def references(value, targets: tuple[str, ...]) -> Iterator[tuple[Optional[str], Optional[str], str]]:
    """(type, id, url) of a Reference; references to other types than ``targets`` are skipped."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return
    url = value["reference"]
    rtype, rid = split_reference(url)
    if rtype is None and value.get("type"):
        rtype = value["type"]
    if targets and rtype not in targets:
        return
    yield rtype, rid, url[:MAX_VALUE]


def split_reference(url: str) -> tuple[Optional[str], Optional[str]]:
    """``Patient/1``, ``http://x/fhir/Patient/1/_history/2`` -> (Patient, 1); other forms -> (None, None)."""
    if url.startswith(("urn:", "#")) or "?" in url:
        return None, None
    parts = url.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) >= 2 and parts[-2][:1].isupper() and parts[-2].isalpha():
        return parts[-2], parts[-1]
    return None, None


def quantities(value) -> Iterator[tuple[float, Optional[str], Optional[str]]]:
    """(value, system, code) of a Quantity, with the unit text as code when no code is given."""
    found = _quantity(value)
    if found is not None:
        yield found


def _quantity(value) -> Optional[tuple[float, Optional[str], Optional[str]]]:
    if isinstance(value, dict) and isinstance(value.get("value"), (int, float)) and not isinstance(value["value"], bool):
        system, code = value.get("system"), value.get("code") or value.get("unit")
        number, code = canonical_float(float(value["value"]), system, code)
        return number, system, code
    return None


def extract(rtype: str, resource: dict, /, **columns) -> dict[str, list[dict]]:
    """Index rows of ``resource`` by parameter type (keys of models.INDEX_TABLES); each row starts
    with ``columns`` (e.g. the resource's key), then its parameter's name and values."""
    rows: dict[str, list[dict]] = {}
    for name, kind, steps, code_steps, value_steps in _plan(rtype):
        if kind == "composite":
            for holder in _at(resource, steps) if steps else (resource,):
                found = [q for q in map(_quantity, _at(holder, value_steps)) if q is not None]
                if not found:
                    continue
                pairs = [(s, c) for cc in _at(holder, code_steps) for s, c in tokens(cc) if c]
                rows.setdefault("composite", []).extend(
                    {**columns, "param": name, "system": system, "code": code, "value": value,
                     "unit_system": usys, "unit_code": ucode}
                    for value, usys, ucode in found for system, code in pairs)
            continue
        values = _at(resource, steps)
        if not values:
            continue
        out = rows.setdefault(kind, [])
        for value in values:
            if kind == "token":
                out.extend({**columns, "param": name, "system": system, "code": code} for system, code in tokens(value))
            elif kind == "string":
                out.extend({**columns, "param": name, "norm": normalise_text(text), "exact": text[:MAX_VALUE]}
                           for text in strings(value))
            elif kind == "date":
                span = dates.element_range(value)
                if span:
                    out.append({**columns, "param": name, "low": span[0], "high": span[1],
                                "wide": span[1] - span[0] > dates.NARROW})
            elif kind == "reference":
                out.extend({**columns, "param": name, "target_type": target_type, "target_id": target_id, "url": url}
                           for target_type, target_id, url in references(value, targets_of(rtype, name)))
            elif kind == "quantity":
                out.extend({**columns, "param": name, "value": number, "system": system, "code": code}
                           for number, system, code in quantities(value))
            elif kind == "uri" and isinstance(value, str):
                out.append({**columns, "param": name, "uri": value[:MAX_VALUE]})
        if not out:
            del rows[kind]
    return rows


@lru_cache(maxsize=None)
def _plan(rtype: str) -> tuple[tuple, ...]:
    """What ``extract`` reads of ``rtype``: (parameter, type, path steps, code steps, value steps) per
    indexed path, the paths split once (a composite ``a.code$valueQuantity``: holder ``a``, code and
    value paths below it)."""
    plan = []
    for p in params_of(rtype).values():
        if p.stored_as:
            continue
        for path in p.paths:
            if p.type == "composite":
                left, right = path.split("$")
                parent, _, code_el = left.rpartition(".")
                plan.append((p.name, p.type, _steps(parent) if parent else (), _steps(code_el), _steps(right)))
            else:
                plan.append((p.name, p.type, _steps(path), (), ()))
    return tuple(plan)


@lru_cache(maxsize=None)
def targets_of(rtype: str, name: str) -> tuple[str, ...]:
    return params_of(rtype)[name].targets


def _steps(path: str) -> tuple[tuple[str, bool], ...]:
    """A dotted path as (element, is a choice type ``x[x]``) steps."""
    return tuple((step[:-3], True) if step.endswith("[x]") else (step, False) for step in path.split("."))


def _at(node, steps) -> list:
    """:func:`elements` along pre-split steps, as a list (absent and null elements skipped); for one
    step, the resource's own list when the element is one (to read, never to change)."""
    if len(steps) == 1 and not steps[0][1]:  # one plain element: most paths
        value = node.get(steps[0][0]) if isinstance(node, dict) else None
        if value is None:
            return []
        return value if isinstance(value, list) else [value]
    nodes = [node]
    for name, choice in steps:
        found = []
        for n in nodes:
            if not isinstance(n, dict):
                continue
            if choice:
                values = [v for k, v in n.items() if k.startswith(name) and k[len(name):len(name) + 1].isupper()]
            else:
                value = n.get(name)
                if value is None:
                    continue
                values = [value]
            for v in values:
                if isinstance(v, list):
                    found.extend(v)
                else:
                    found.append(v)
        nodes = found
        if not nodes:
            break
    return nodes
