"""StructureDefinition differentials compiled into trees of element rules (FHIR R4 profiling).

Each element of a differential becomes a :class:`Node` (cardinality, fixed / pattern values,
choice types, reference targets, required bindings, slicing); a derived profile starts from a
copy of its base's tree. Slices told apart by one pattern at one path get a lookup index, and a
code-sliced component that only constrains its value gets a ``fast`` form the checker uses
without walking the tree. Also here: the FHIR pattern and primitive-type semantics the rules use.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Optional

_DATETIME = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$")
PRIMITIVE_CHECKS: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str) and v != "",
    "code": lambda v: isinstance(v, str) and v.strip() != "",
    "uri": lambda v: isinstance(v, str) and " " not in v and v != "",
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "decimal": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "dateTime": lambda v: isinstance(v, str) and _DATETIME.match(v) is not None,
}
_TARGETS = {"modality-device": "Device", "radiation-dose-summary": "Observation", "irradiation-event": "Observation",
            "dose-summary": "Observation"}


@dataclass(slots=True)
class Node:
    """Rules for one element (or one slice of it), and for its children."""

    min: int = 0
    max: Optional[int] = None  # None: unbounded
    types: Optional[frozenset] = None  # allowed type codes of a choice / restricted element
    targets: Optional[frozenset] = None  # allowed Reference target resource types
    type_profiles: tuple = ()  # profiles an Extension item must also meet
    fixed: object = None
    pattern: object = None
    binding: Optional[str] = None  # required value set URL
    slicing: tuple = ()  # ((discriminator type, path), ...)
    closed: bool = False
    slices: dict = field(default_factory=dict)  # slice name -> Node
    children: dict = field(default_factory=dict)  # element name -> Node
    per_type: dict = field(default_factory=dict)  # choice type code -> Node (type slices)
    index: Optional[dict] = None  # fast slice lookup: key -> slice name
    index_path: str = ""
    trivial: bool = False  # no rule on the item itself: only cardinality / slices
    fast: Optional[tuple] = None  # (value[x] min, allowed types, per-type patterns) of a code-sliced component
    required: tuple = ()  # names of slices with min > 0


@dataclass(slots=True)
class Profile:
    url: str
    type: str
    base: Optional[str]
    root: Node


# ---------------------------------------------------------------------------- compiling


def compile_profiles(definitions: dict) -> dict[str, Profile]:
    """Every StructureDefinition (by canonical URL) compiled, bases before the profiles derived from them."""
    profiles: dict[str, Profile] = {}
    for url in definitions:
        _compile(definitions, url, profiles)
    return profiles


def _compile(definitions: dict, url: str, profiles: dict) -> Profile:
    if url in profiles:
        return profiles[url]
    sd = definitions[url]
    base = sd.get("baseDefinition")
    root = copy.deepcopy(_compile(definitions, base, profiles).root) if base in definitions else Node(max=None)
    for element in sd["differential"]["element"]:
        _apply(root, element, sd["type"])
    _index_slices(root)
    profile = Profile(url, sd["type"], base if base in definitions else None, root)
    profiles[url] = profile
    return profile


def _steps(element_id: str, rtype: str) -> list[tuple[str, Optional[str]]]:
    parts = element_id.split(".")
    if parts[0].split(":")[0] != rtype:
        raise ValueError(f"element {element_id} is not on {rtype}")
    out = []
    for part in parts[1:]:
        name, _, slice_name = part.partition(":")
        out.append((name, slice_name or None))
    return out


def _apply(root: Node, element: dict, rtype: str) -> None:
    node = root
    for name, slice_name in _steps(element["id"], rtype):
        child = node.children.setdefault(name, Node())
        if slice_name and name.endswith("[x]") and slice_name.startswith(name[:-3]):
            node = child.per_type.setdefault(type_code(slice_name[len(name) - 3:]), Node())
        elif slice_name:
            node = child.slices.setdefault(slice_name, Node())
        else:
            node = child
    if "min" in element:
        node.min = element["min"]
    if "max" in element:
        node.max = None if element["max"] == "*" else int(element["max"])
    if "type" in element:
        node.types = frozenset(t["code"] for t in element["type"])
        targets = [p.rsplit("/", 1)[1] for t in element["type"] for p in t.get("targetProfile", ())]
        if targets:
            node.targets = frozenset(_target_type(t) for t in targets)
        node.type_profiles = tuple(p for t in element["type"] for p in t.get("profile", ()))
    for key, value in element.items():
        if key.startswith("fixed"):
            node.fixed = value
        elif key.startswith("pattern"):
            node.pattern = value
    binding = element.get("binding")
    if binding and binding.get("strength") == "required":
        node.binding = binding["valueSet"]
    if "slicing" in element:
        node.slicing = tuple((d["type"], d["path"]) for d in element["slicing"]["discriminator"])
        node.closed = element["slicing"].get("rules") == "closed"


def _target_type(name: str) -> str:
    return _TARGETS.get(name, name)


@lru_cache(maxsize=None)
def type_code(suffix: str) -> str:
    """``valueQuantity`` -> ``Quantity``; ``valueString`` -> ``string`` (primitive type codes are lower case)."""
    lower = suffix[0].lower() + suffix[1:]
    return lower if lower in PRIMITIVE_CHECKS or lower in ("time", "date", "instant", "period") else suffix


def _index_slices(node: Node) -> None:
    """Build a (system, code) / value lookup when every slice is told apart by one pattern at one path."""
    for child in (*node.children.values(), *node.slices.values(), *node.per_type.values()):
        _index_slices(child)
    node.index, node.index_path = None, ""  # a derived profile may have added slices to a copied base node
    for snode in node.slices.values():
        snode.fast = None
    node.required = tuple(name for name, snode in node.slices.items() if snode.min)
    node.trivial = not (node.children or node.type_profiles or node.types is not None or node.targets is not None
                        or node.fixed is not None or node.pattern is not None or node.binding is not None)
    if not node.slices or len(node.slicing) != 1 or node.slicing[0][0] not in ("pattern", "value"):
        return
    path = node.slicing[0][1]
    index: dict[object, str] = {}
    for name, snode in node.slices.items():
        constraint = constraint_at(snode, path)
        keys = slice_keys(constraint)
        if not keys:
            return
        for k in keys:
            index.setdefault(k, name)
    node.index, node.index_path = index, path
    for snode in node.slices.values():
        snode.fast = _fast_form(snode, path)


def _fast_form(snode: Node, path: str) -> Optional[tuple]:
    """A slice that only says "this code, a value of these types / patterns" is checked without the tree walk."""
    value = snode.children.get("value[x]")
    rest = set(snode.children) - {path, "value[x]"}
    if rest or value is None or snode.slices or snode.type_profiles or snode.fixed is not None or snode.pattern is not None:
        return None
    if value.children or value.slices or value.binding or value.fixed is not None or value.pattern is not None:
        return None
    if any(not t.trivial and (t.children or t.binding or t.slices) for t in value.per_type.values()):
        return None
    return (value.min, value.types, {k: t.pattern for k, t in value.per_type.items() if t.pattern is not None},
            {k: tuple(t.pattern.items()) for k, t in value.per_type.items()
             if isinstance(t.pattern, dict) and not any(isinstance(v, (dict, list)) for v in t.pattern.values())})


# ---------------------------------------------------------------------------- discriminating values


def constraint_at(node: Node, path: str):
    """The fixed or pattern value a slice sets at a discriminator path, or None."""
    for step in path.split("."):
        child = node.children.get(step)
        if child is None:
            return None
        node = child
    return node.fixed if node.fixed is not None else node.pattern


def slice_keys(value) -> list:
    """Index keys of a discriminating value: codings as (system, code), primitives as themselves."""
    if isinstance(value, dict):
        if "coding" in value:
            return [(c.get("system"), c.get("code")) for c in value["coding"] if c.get("code")]
        if "code" in value:
            return [(value.get("system"), value.get("code"))]
        return []
    if isinstance(value, list):
        return [k for v in value for k in slice_keys(v)]
    return [value] if value is not None else []


def values_at(item, path: str) -> list:
    """The values at a FHIRPath-like discriminator path (``code``, ``$this``, ``valueQuantity.code``)."""
    values = [item]
    for step in path.split("."):
        if step == "$this":
            continue
        nxt = []
        for v in values:
            if isinstance(v, dict) and step in v:
                got = v[step]
                nxt.extend(got if isinstance(got, list) else [got])
        values = nxt
    return values


def matches(pattern, value) -> bool:
    """FHIR pattern semantics: every property of the pattern is present with a matching value."""
    if isinstance(pattern, dict):
        if isinstance(value, list):
            return any(matches(pattern, v) for v in value)
        return isinstance(value, dict) and all(matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        values = value if isinstance(value, list) else [value]
        return all(any(matches(p, v) for v in values) for p in pattern)
    return pattern == value
