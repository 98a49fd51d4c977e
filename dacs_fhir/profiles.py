"""Profile validation: resources checked against the StructureDefinitions shipped in ``dacs_fhir/data/profiles``.

The differentials are compiled once (:mod:`.profile_rules`) into a tree of element rules
(cardinality, fixed / pattern values, choice types, reference targets, required bindings to the
value sets shipped beside them, slicing by pattern / value / reference type), then checked here on
plain resource dicts. It covers what our profiles and the RDS IG 1.0.0 profiles use, not the whole
of FHIR profiling; the R4B models check the base resource structure. Paths in issues are
FHIRPath-like (``Observation.component[3].valueQuantity``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Callable, Iterable, Optional

from .profile_rules import (
    PRIMITIVE_CHECKS,
    Node,
    Profile,
    compile_profiles,
    constraint_at,
    matches,
    slice_keys,
    type_code,
    values_at,
)

__all__ = ["PROFILE_DIR", "Issue", "Node", "Profile", "ProfilesMissing", "Registry", "registry", "validate",
           "validate_bundle"]

# package data (the repository's top-level ``profiles/`` is a link to it), read through importlib.resources
# so that an installed wheel finds it as well as a checkout
PROFILE_DIR: Traversable = files("dacs_fhir") / "data" / "profiles"


class ProfilesMissing(RuntimeError):
    """No StructureDefinition could be loaded: validating would pass everything, so it is refused."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One profile violation: severity ("error" | "warning"), FHIRPath-like location and message."""

    severity: str
    path: str
    message: str
    profile: str = ""

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


# ---------------------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def registry() -> "Registry":
    """Profiles and value sets shipped in the package (loaded once per process); ProfilesMissing when none."""
    return Registry.load(PROFILE_DIR)


class Registry:
    """Compiled StructureDefinitions by canonical URL, and value set code sets."""

    def __init__(self, definitions: dict, valuesets: dict):
        self.definitions = definitions
        self.valuesets = valuesets
        self.profiles: dict[str, Profile] = compile_profiles(definitions)

    @classmethod
    def load(cls, folder: Traversable) -> "Registry":
        """The ``*.json`` StructureDefinitions and ValueSets of ``folder`` (a Path or package resource)."""
        definitions, valuesets = {}, {}
        names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json")) if folder.is_dir() else []
        for name in names:
            doc = json.loads((folder / name).read_text(encoding="utf-8"))
            if doc.get("resourceType") == "StructureDefinition":
                definitions[doc["url"]] = doc
            elif doc.get("resourceType") == "ValueSet":
                valuesets[doc["url"]] = frozenset(
                    (inc.get("system"), c["code"]) for inc in doc["compose"]["include"] for c in inc.get("concept", ())
                )
        if not definitions:
            raise ProfilesMissing(f"no StructureDefinition found in {folder}: the package data is missing "
                                  "(reinstall dacs-fhir); profile validation refuses to run without profiles")
        return cls(definitions, valuesets)

    def ancestors(self, url: str) -> set[str]:
        out, cur = set(), self.profiles[url].base
        while cur:
            out.add(cur)
            cur = self.profiles[cur].base
        return out


# ---------------------------------------------------------------------------- checking


class _Check:
    __slots__ = ("reg", "issues", "profile", "resolve")

    def __init__(self, reg: Registry, profile: str, resolve: Optional[Callable[[str], Optional[str]]]):
        self.reg, self.profile, self.resolve = reg, profile, resolve
        self.issues: list[Issue] = []

    def error(self, path: str, message: str) -> None:
        self.issues.append(Issue("error", path, message, self.profile))

    def elements(self, node: Node, item: dict, path: str, skip: str = "") -> None:
        """Check the children rules of ``node`` on one element value (a dict); ``skip``: a child already proven."""
        for name, child in node.children.items():
            if name == skip:
                continue
            if name.endswith("[x]"):
                stem = name[:-3]
                keys = [k for k in item if k.startswith(stem) and len(k) > len(stem) and k[len(stem)].isupper()]
                if not keys:
                    if child.min:
                        self.error(f"{path}.{name}", f"minimum required = {child.min}, but only found 0")
                    continue
                for key in keys:
                    code = type_code(key[len(stem):])
                    if child.max == 0:
                        self.error(f"{path}.{key}", "element is prohibited (max = 0)")
                        continue
                    if child.types is not None and code not in child.types:
                        self.error(f"{path}.{key}", f"type {code} not allowed here (allowed: {', '.join(sorted(child.types))})")
                        continue
                    self.values(child, item[key], f"{path}.{key}", code)
                    sub = child.per_type.get(code)
                    if sub is not None:
                        self.values(sub, item[key], f"{path}.{key}", code)
                continue
            raw = item.get(name)
            if raw is None and f"_{name}" in item:  # a primitive present only through its extensions
                if child.max == 0:
                    self.error(f"{path}.{name}", "element is prohibited (max = 0)")
                continue
            self.values(child, raw, f"{path}.{name}")

    def values(self, node: Node, raw, path: str, type_code: Optional[str] = None) -> None:
        """Cardinality, then per-item rules, then slices, for the value(s) of one element."""
        if raw is None:
            items, listed = [], False
        elif isinstance(raw, list):
            items, listed = raw, True
        else:
            items, listed = [raw], False
        n = len(items)
        if n < node.min:
            self.error(path, f"minimum required = {node.min}, but only found {n}")
        if node.max is not None and n > node.max:
            self.error(path, "element is prohibited (max = 0)" if node.max == 0 else f"maximum allowed = {node.max}, but found {n}")
        if not n:
            return
        if not node.trivial:
            for i, item in enumerate(items):
                self.item(node, item, f"{path}[{i}]" if listed else path, type_code)
        if node.slices:
            self.slices(node, items, path, listed)

    def item(self, node: Node, item, path: str, type_code: Optional[str] = None, skip: str = "") -> None:
        if type_code is None and node.types is not None and len(node.types) == 1:
            type_code = next(iter(node.types))
        check = PRIMITIVE_CHECKS.get(type_code or "")
        if check is not None and not check(item):
            self.error(path, f"value {item!r} is not a valid {type_code}")
            return
        if node.fixed is not None and item != node.fixed:
            self.error(path, f"value must be exactly {_show(node.fixed)}")
        if node.pattern is not None and not matches(node.pattern, item):
            self.error(path, f"value must match pattern {_show(node.pattern)}")
        if node.binding is not None and not self.bound(node.binding, item):
            self.error(path, f"code not in the required value set {node.binding}")
        if node.targets is not None and isinstance(item, dict):
            target = self.ref_type(item)
            if target is not None and target not in node.targets:
                self.error(path, f"reference to {target}, expected {' | '.join(sorted(node.targets))}")
        for url in node.type_profiles:
            profile = self.reg.profiles.get(url)
            if profile is not None and isinstance(item, dict):
                self.elements(profile.root, item, path)
        if node.children and isinstance(item, dict):
            self.elements(node, item, path, skip)

    def slices(self, node: Node, items: list, path: str, listed: bool) -> None:
        counts = dict.fromkeys(node.required, 0)  # slices with a minimum; others are counted when seen
        index, key_path = node.index, node.index_path
        by_code = index is not None and "." not in key_path  # the common case: components sliced on ``code``
        for i, item in enumerate(items):
            name = None
            if by_code and type(item) is dict:
                assert index is not None  # by_code holds only with an index
                value = item.get(key_path)
                if type(value) is dict:
                    for cd in value.get("coding", ()):
                        name = index.get((cd.get("system"), cd.get("code")))
                        if name is not None:
                            break
                    else:
                        name = index.get((value.get("system"), value.get("code"))) if "code" in value else None
                elif value is not None:
                    name = index.get(value)
            else:
                name = self.slice_of(node, item)
            if name is None:
                if node.closed:
                    self.error(f"{path}[{i}]" if listed else path, "does not match any slice of a closed slicing")
                continue
            counts[name] = counts.get(name, 0) + 1
            snode = node.slices[name]
            if snode.fast is not None and type(item) is dict:
                self.fast_value(snode.fast, item, path, i if listed else None)
                continue
            self.item(snode, item, f"{path}[{i}]" if listed else path, skip=key_path if by_code else "")
        for name, n in counts.items():
            snode = node.slices[name]
            if n < snode.min:
                self.error(f"{path}:{name}", f"minimum required = {snode.min}, but only found {n}")
            if snode.max is not None and n > snode.max:
                self.error(f"{path}:{name}", f"maximum allowed = {snode.max}, but found {n}")

    def fast_value(self, fast: tuple, item: dict, path: str, i: Optional[int]) -> None:
        minimum, types, patterns, flat = fast
        found = False
        for key, value in item.items():
            if key[:5] != "value" or len(key) < 6 or not key[5].isupper():
                continue
            found = True
            code = type_code(key[5:])
            pairs = flat.get(code)
            if pairs is not None and type(value) is dict and all(value.get(k) == v for k, v in pairs) \
                    and (types is None or code in types):
                continue  # the usual case: a Quantity in the expected unit
            here = f"{path}[{i}].{key}" if i is not None else f"{path}.{key}"
            if types is not None and code not in types:
                self.error(here, f"type {code} not allowed here (allowed: {', '.join(sorted(types))})")
                continue
            check = PRIMITIVE_CHECKS.get(code)
            if check is not None and not check(value):
                self.error(here, f"value {value!r} is not a valid {code}")
            pattern = patterns.get(code)
            if pattern is not None and not matches(pattern, value):
                self.error(here, f"value must match pattern {_show(pattern)}")
        if not found and minimum:
            self.error(f"{path}[{i}].value[x]" if i is not None else f"{path}.value[x]", f"minimum required = {minimum}, but only found 0")

    def slice_of(self, node: Node, item) -> Optional[str]:
        if node.index is not None:
            path = node.index_path
            values = [item.get(path)] if "." not in path and isinstance(item, dict) else values_at(item, path)
            for value in values:
                for k in slice_keys(value):
                    name = node.index.get(k)
                    if name is not None:
                        return name
            return None
        for name, snode in node.slices.items():
            if all(self.discriminates(snode, item, kind, p) for kind, p in node.slicing):
                return name
        return None

    def discriminates(self, snode: Node, item, kind: str, path: str) -> bool:
        if kind == "type":
            target = self.ref_type(item) if isinstance(item, dict) else None
            return snode.targets is None or target in snode.targets
        if kind in ("pattern", "value"):
            want = constraint_at(snode, path)
            return want is None or any(matches(want, v) for v in values_at(item, path))
        return True  # "profile" / "exists": not used to tell our slices apart

    def bound(self, valueset: str, item) -> bool:
        codes = self.reg.valuesets.get(valueset)
        if codes is None:
            return True  # value set not shipped: cannot check
        if isinstance(item, str):
            return any(code == item for _, code in codes)
        codings = item.get("coding", [item]) if isinstance(item, dict) else []
        return any((c.get("system"), c.get("code")) in codes for c in codings)

    def ref_type(self, ref: dict) -> Optional[str]:
        if ref.get("type"):
            return ref["type"]
        target = ref.get("reference") or ""
        if target.startswith("urn:"):
            return self.resolve(target) if self.resolve else None
        parts = target.split("?")[0].split("/")
        return parts[-2] if len(parts) >= 2 else None


def _show(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------- API


def validate(resource: dict, resolve: Optional[Callable[[str], Optional[str]]] = None) -> list[Issue]:
    """Issues of ``resource`` against every profile of ours in its ``meta.profile`` (ancestors included once)."""
    reg = registry()
    rtype = resource.get("resourceType", "Resource")
    claimed = [u for u in (resource.get("meta") or {}).get("profile", ()) if u in reg.profiles]
    issues: list[Issue] = []
    unknown = [u for u in (resource.get("meta") or {}).get("profile", ()) if u not in reg.profiles]
    for url in unknown:
        issues.append(Issue("warning", f"{rtype}.meta.profile", f"profile {url} is not known here; not checked"))
    covered = set().union(*(reg.ancestors(u) for u in claimed)) if claimed else set()
    for url in claimed:
        if url in covered:
            continue
        profile = reg.profiles[url]
        if profile.type != rtype:
            issues.append(Issue("error", rtype, f"profile {url} constrains {profile.type}", url))
            continue
        check = _Check(reg, url, resolve)
        check.elements(profile.root, resource, rtype)
        issues.extend(check.issues)
    return issues


def validate_bundle(bundle: dict) -> list[Issue]:
    """Issues of every entry (paths prefixed ``Bundle.entry[i].resource``) and of in-bundle references."""
    entries = bundle.get("entry") or []
    by_url = {e.get("fullUrl"): (e.get("resource") or {}).get("resourceType") for e in entries if e.get("fullUrl")}
    issues: list[Issue] = []
    if len(by_url) != len([e for e in entries if e.get("fullUrl")]):
        issues.append(Issue("error", "Bundle.entry", "fullUrl values are not unique"))
    for i, entry in enumerate(entries):
        resource = entry.get("resource") or {}
        prefix = f"Bundle.entry[{i}].resource"
        rtype = resource.get("resourceType", "")
        for issue in validate(resource, by_url.get):
            path = prefix + issue.path[len(rtype):] if issue.path.startswith(rtype) else f"{prefix}.{issue.path}"
            issues.append(Issue(issue.severity, path, issue.message, issue.profile))
        for path, ref in _references(resource, prefix):
            if ref.startswith("urn:uuid:") and ref not in by_url:
                issues.append(Issue("error", path, f"reference {ref} does not resolve inside the Bundle"))
        if bundle.get("type") in ("transaction", "batch") and not (entry.get("request") or {}).get("method"):
            issues.append(Issue("error", f"Bundle.entry[{i}].request", "transaction entry without request.method"))
    return issues


def _references(resource: dict, path: str) -> Iterable[tuple[str, str]]:
    """References held by the resource's own elements (``subject``, ``partOf[2]`` …), where resources keep them."""
    for key, value in resource.items():
        if isinstance(value, dict):
            ref = value.get("reference")
            if isinstance(ref, str):
                yield f"{path}.{key}.reference", ref
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                ref = item.get("reference") if isinstance(item, dict) else None
                if isinstance(ref, str):
                    yield f"{path}.{key}[{i}].reference", ref
