"""Every corpus dose object -> FHIR Bundle: every resource parses in the R4B models and passes its profiles."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from dacs_fhir import aggregate
from dacs_fhir.mappers import fhir
from dacs_fhir.mappers.dicom import parse as parse_dicom
from dacs_fhir.profiles import validate_bundle

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
FILES = sorted([*CORPUS.glob("rdsr/*.dcm"), *CORPUS.glob("images/*.dcm")]) if CORPUS.is_dir() else []
pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def parse():
    if not (CORPUS / "MANIFEST.md").is_file():
        pytest.skip(f"vendor corpus not found at {CORPUS}")
    return parse_dicom


def _check(bundle: dict) -> None:
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    errors = [str(i) for i in validate_bundle(bundle) if i.severity == "error"]
    assert errors == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_maps_to_valid_profiled_bundle(parse, path):
    report = parse(path.read_bytes())
    for conditional in ("create", "update"):
        bundle = fhir.to_bundle(report, conditional=conditional)
        _check(bundle)
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    summary = next(o for o in observations if fhir.PROFILE_RDS_SUMMARY in o["meta"]["profile"])
    events = [o for o in observations if o is not summary]
    assert len(events) == len(report.events) == len(summary.get("hasMember", ()))
    assert len({o["identifier"][0]["value"] for o in events}) == len(events)
    assert summary["partOf"][0]["identifier"]["value"] == f"urn:oid:{report.study.instance_uid}"
    agd = [c for c in summary["component"] if c["code"]["coding"][0]["code"] == "111637"]
    assert len(agd) == len([m for a in report.accumulated for m in a.all("111637")] + report.all("111637"))
    json.dumps(bundle)  # plain JSON, no model objects


def test_cumulative_reports_of_one_study_map_to_one_valid_summary(parse):
    paths = sorted(CORPUS.glob("rdsr/ct-siemens-somatom-confidence-cumulative-*.dcm"))
    if len(paths) != 3:
        pytest.skip("cumulative Siemens series not in the corpus")
    reports = [parse(p.read_bytes()) for p in paths]
    merged = aggregate.merge_reports(reports)
    assert len(merged) == 1
    bundle = fhir.to_bundle(merged[0], conditional="update")
    _check(bundle)
    keys = {fhir.summary_key(r) for r in reports}
    assert keys == {fhir.summary_key(merged[0])}  # every cumulative report updates the same summary
