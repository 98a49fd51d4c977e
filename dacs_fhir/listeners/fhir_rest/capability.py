"""The CapabilityStatement: exactly the interactions, types and search parameters served
(FHIR R4 capabilitystatement.html). Types and parameters come from the store's definitions, so the
statement cannot claim more than the index holds."""
from __future__ import annotations

from datetime import datetime, timezone

from ... import __version__ as VERSION
from ...store.query import MAX_PARAMETERS, MAX_VALUES
from ...store.searchparams import PARAMS, RESOURCE_COLUMNS, params_of
from .outcomes import MAX_JSON_DEPTH, MAX_OFFSET

RDS = "http://hl7.org/fhir/uv/radiation-dose-summary"
# documentation of the parameters the issue and the RDS IG name; the list itself is the store's
DOCS = {
    ("Observation", "identifier"): "business identifier (RDS IG)",
    ("Observation", "code"): "e.g. 73569-6 for a radiation dose summary (RDS IG)",
    ("Observation", "patient"): "subject when it is a Patient (RDS IG)",
    ("Observation", "device"): "modality device (RDS IG)",
    ("Observation", "part-of"): "the ImagingStudy of the summary (RDS IG)",
    ("Observation", "date"): "effective date (RDS IG)",
    ("Observation", "component-code-value-quantity"): "component code and value, e.g. DCM|113813$gt500 (DLP total > 500)",
    ("Observation", "combo-code-value-quantity"): "code or component code and value",
    ("ImagingStudy", "identifier"): "Study Instance UID as urn:oid:…",
    ("Device", "identifier"): "serial number or AE title",
    ("ServiceRequest", "identifier"): "accession number",
    (None, "_id"): "logical id",
    (None, "_lastUpdated"): "when the current version was stored",
}
PROFILES = {
    "Observation": [f"{RDS}/StructureDefinition/radiation-dose-summary"],
    "Device": [f"{RDS}/StructureDefinition/modality-device"],
}
LIMITS = (f"Limits (400 OperationOutcome beyond them): {MAX_PARAMETERS} parameters per search, {MAX_VALUES} "
          f"comma-separated values per parameter, _getpagesoffset up to {MAX_OFFSET}, _count up to 1000 (a larger "
          f"one is lowered), request bodies nested at most {MAX_JSON_DEPTH} levels.")
TYPE_INTERACTIONS = ["read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"]


def resource_types() -> list[str]:
    """The resource types the store indexes (and so this server serves)."""
    return list(PARAMS)


def search_params(rtype: str) -> list[dict]:
    """CapabilityStatement.rest.resource.searchParam of ``rtype``, from the store's definitions."""
    out = []
    columns = [(name, kind) for name, kind in RESOURCE_COLUMNS.items()]
    for name, kind in [(p.name, p.type) for p in params_of(rtype).values()] + columns:
        entry = {"name": name, "type": kind}
        doc = DOCS.get((rtype, name)) or DOCS.get((None, name))
        if doc:
            entry["documentation"] = doc
        out.append(entry)
    return out


def includes(rtype: str) -> list[str]:
    """``_include`` values: every reference parameter of ``rtype``."""
    return [f"{rtype}:{p.name}" for p in params_of(rtype).values() if p.type == "reference"]


def revincludes(rtype: str) -> list[str]:
    """``_revinclude`` values: reference parameters of other types that may point at ``rtype``."""
    return [f"{other}:{p.name}" for other in PARAMS for p in params_of(other).values()
            if p.type == "reference" and (not p.targets or rtype in p.targets)]


def capability_statement(base: str) -> dict:
    """CapabilityStatement of this server at ``base``."""
    resources = []
    for rtype in resource_types():
        entry = {
            "type": rtype,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-match",
            "conditionalUpdate": True,
            "conditionalDelete": "not-supported",
            "searchParam": search_params(rtype),
        }
        if rtype in PROFILES:
            entry["supportedProfile"] = PROFILES[rtype]
        if includes(rtype):
            entry["searchInclude"] = includes(rtype)
        if revincludes(rtype):
            entry["searchRevInclude"] = revincludes(rtype)
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(timezone.utc).date().isoformat(),
        "publisher": "dacs-fhir",
        "kind": "instance",
        "software": {"name": "dacs-fhir", "version": VERSION},
        "implementation": {"description": "dacs-fhir dose archive", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "implementationGuide": [f"{RDS}/ImplementationGuide/hl7.fhir.uv.radiation-dose-summary"],
        "rest": [{
            "mode": "server",
            "documentation": "Unknown search parameters are ignored with a warning (Prefer: handling=lenient, "
                             "the default) or refused with 400 (Prefer: handling=strict). Pages: _count and "
                             "_getpagesoffset; also _sort (e.g. -date), _include, _revinclude, _summary=count, _elements. "
                             + LIMITS,
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
        }],
    }
