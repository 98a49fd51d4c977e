"""FHIR JSON imported through the pipeline (``dacs-fhir import``): what is not FHIR, nests too deep,
breaks a profile it claims or is refused by the store is rejected with a reason, kept in the inbox
as failed, and changes nothing stored."""
from __future__ import annotations

import json

import pytest

from dacs_fhir.composition import build_pipeline
from dacs_fhir.mappers.dicom import parse
from dacs_fhir.mappers.fhir import to_bundle
from dacs_fhir.pipeline import IMPORTED, REJECTED
from dacs_fhir.samples import sample_objects

RDS_SUMMARY = "http://hl7.org/fhir/uv/radiation-dose-summary/StructureDefinition/radiation-dose-summary"


@pytest.fixture
def pipeline(settings):
    settings.broker_url = None
    return build_pipeline(settings)


def _bundle() -> dict:
    return to_bundle(parse(sample_objects()[0][1]), conditional="update")


def _count(pipeline, rtype: str) -> int:
    with pipeline.store.transaction() as tx:
        return tx.search(rtype, [("_summary", "count")]).total


def _import(pipeline, value) -> tuple:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    item = pipeline.inbox.put("file", raw, meta={"name": "test.json"})
    outcome = pipeline.process(item.id)
    return outcome, pipeline.inbox.get(item.id)


def test_a_conforming_bundle_is_imported(pipeline):
    outcome, item = _import(pipeline, _bundle())
    assert outcome.status == IMPORTED and item.status == "done"
    assert _count(pipeline, "Observation") > 0


@pytest.mark.parametrize("case, reason", [
    ("deep", "nest deeper than 100"),
    ("not-json", "invalid FHIR JSON"),
    ("profile", "imported resources break their profiles"),
    ("store", "refused by the store (422)"),
])
def test_bad_imports_are_rejected_with_a_reason_and_nothing_changes(pipeline, case, reason):
    assert _import(pipeline, _bundle())[0].status == IMPORTED
    before = {t: _count(pipeline, t) for t in ("Observation", "Patient", "ImagingStudy")}
    if case == "deep":
        value = b'{"resourceType":"Basic","extension":' + b"[" * 5000 + b"]" * 5000 + b"}"
    elif case == "not-json":
        value = b'{"resourceType": "Patient",'
    elif case == "profile":  # a radiation dose summary without its subject and effective time
        value = _bundle()
        summary = next(e["resource"] for e in value["entry"] if RDS_SUMMARY in e["resource"].get("meta", {}).get("profile", ()))
        summary.pop("subject")
        summary.pop("effectiveDateTime", None)
        summary.pop("effectivePeriod", None)
    else:
        value = {"resourceType": "Patient", "birthDate": "not a date"}
    outcome, item = _import(pipeline, value)
    assert outcome.status == REJECTED and reason in outcome.reason
    assert item.status == "failed" and reason in item.reason
    assert {t: _count(pipeline, t) for t in before} == before
