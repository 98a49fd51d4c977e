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
    if isinstance(value, bool):
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
    if isinstance(value, dict) and isinstance(value.get("value"), (int, float)) and not isinstance(value["value"], bool):
        system, code = value.get("system"), value.get("code") or value.get("unit")
        number, code = canonical_float(float(value["value"]), system, code)
        yield number, system, code


def extract(rtype: str, resource: dict) -> dict[str, list[dict]]:
    """Index rows of ``resource`` by parameter type (keys of models.INDEX_TABLES)."""
    rows: dict[str, list[dict]] = {}

    def add(kind: str, **values) -> None:
        rows.setdefault(kind, []).append(values)

    for p in params_of(rtype).values():
        if p.stored_as:
            continue
        for path in p.paths:
            if p.type == "composite":
                left, right = path.split("$")
                parent, _, code_el = left.rpartition(".")
                holders = list(elements(resource, parent)) if parent else [resource]
                for holder in holders:
                    pairs = [(s, c) for cc in elements(holder, code_el) for s, c in tokens(cc) if c]
                    for q in elements(holder, right):
                        for value, usys, ucode in quantities(q):
                            for system, code in pairs:
                                add("composite", param=p.name, system=system, code=code, value=value,
                                    unit_system=usys, unit_code=ucode)
                continue
            for value in elements(resource, path):
                if p.type == "token":
                    for system, code in tokens(value):
                        add("token", param=p.name, system=system, code=code)
                elif p.type == "string":
                    for text in strings(value):
                        add("string", param=p.name, norm=normalise_text(text), exact=text[:MAX_VALUE])
                elif p.type == "date":
                    span = dates.element_range(value)
                    if span:
                        add("date", param=p.name, low=span[0], high=span[1], wide=span[1] - span[0] > dates.NARROW)
                elif p.type == "reference":
                    for target_type, target_id, url in references(value, p.targets):
                        add("reference", param=p.name, target_type=target_type, target_id=target_id, url=url)
                elif p.type == "quantity":
                    for number, system, code in quantities(value):
                        add("quantity", param=p.name, value=number, system=system, code=code)
                elif p.type == "uri" and isinstance(value, str):
                    add("uri", param=p.name, uri=value[:MAX_VALUE])
    return rows
