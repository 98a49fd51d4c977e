"""Resources are checked against the FHIR R4 model (``fhir.resources.R4B``) before any write."""
from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ValidationError

from . import errors

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


@lru_cache(maxsize=None)
def model_class(rtype: str):
    """The R4B model class of a resource type; InvalidResource for an unknown type."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        cls = get_fhir_model_class(rtype)
    except (KeyError, ValueError, AttributeError, ImportError):
        cls = None
    if cls is None or not issubclass(cls, Resource) or rtype in ("Resource", "DomainResource"):
        raise errors.InvalidResource(f"unknown resource type {rtype!r}", "resourceType")
    return cls


def resource_type(resource) -> str:
    """The ``resourceType`` of a resource dict; InvalidResource when absent or unknown."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise errors.InvalidResource("not a FHIR resource: no resourceType", "resourceType")
    model_class(resource["resourceType"])
    return resource["resourceType"]


def validate(resource: dict) -> str:
    """Parse ``resource`` in the R4 model; InvalidResource names the first offending element path."""
    rtype = resource_type(resource)
    try:
        model = model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = rtype + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise errors.InvalidResource(f"{path}: {first['msg']}", path) from None
    except (TypeError, ValueError) as exc:
        raise errors.InvalidResource(f"{rtype}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                     rtype) from None
    _check_codes(model, rtype)
    return rtype


@lru_cache(maxsize=None)
def _code_rules(cls) -> tuple[tuple[str, str, frozenset], ...]:
    """(field, JSON name, allowed codes) of the required-binding ``code`` elements of ``cls``."""
    rules = []
    for name, f in cls.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        allowed = extra.get("enum_values")
        if allowed and "+" not in allowed:  # "+": the binding is extensible, other codes are valid
            rules.append((name, f.alias or name, frozenset(allowed)))
    return tuple(rules)


def _check_codes(model: BaseModel, path: str) -> None:
    """Codes of required bindings (e.g. Patient.gender, HumanName.use) must be in their value set."""
    for name, alias, allowed in _code_rules(type(model)):
        value = model.__dict__.get(name)
        if value is not None and value not in allowed:
            raise errors.InvalidResource(f"{path}.{alias}: code {str(value)[:40]!r} is not in the required value set",
                                         f"{path}.{alias}")
    for name, value in model.__dict__.items():
        if isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, BaseModel):
                    _check_codes(v, f"{path}.{name}[{i}]")
        elif isinstance(value, BaseModel):
            _check_codes(value, f"{path}.{name}")


@lru_cache(maxsize=None)
def summary_elements(rtype: str) -> frozenset[str]:
    """Elements marked isSummary in the R4 definition of ``rtype`` (for ``_summary=true``)."""
    fields = model_class(rtype).model_fields
    return frozenset(
        (f.alias or name) for name, f in fields.items()
        if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("summary_element_property")
    )


def subset(resource: dict, keep: set[str]) -> dict:
    """The resource with only ``keep`` elements (plus resourceType, id, meta), tagged SUBSETTED."""
    out = {k: v for k, v in resource.items() if k in keep or k in ("resourceType", "id", "meta")}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    out["meta"] = meta
    return out
